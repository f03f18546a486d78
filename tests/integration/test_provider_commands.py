"""`trainctl runpod …`, `trainctl lyceum …` and `trainctl aws …` against the providers' emulators and moto.

Every hand command goes through the same protections as `ebs delete` and `instances terminate`: a locked pod, a
mounted network volume and an unreadable entry are refused by name whatever is waived; outside the scope or
someone else's needs the waiver that names it; then it shows what it will do and asks. A wrong or revoked key is
one line naming the provider and the variable, never the key.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import typer.main
from click.testing import Result
from typer.testing import CliRunner

from tests.integration.conftest import run_cli
from tests.integration.fleet import seed_account
from trainctl.aws.clients import ClientFactory
from trainctl.cli import main as cli
from trainctl.cli.lyceum_emulator import EMULATOR_KEY as LYCEUM_KEY
from trainctl.cli.lyceum_emulator import LyceumEmulator, serve
from trainctl.cli.output import EXIT_FAILED, EXIT_USAGE, CliState
from trainctl.cli.runpod_emulator import EMULATOR_KEY as RUNPOD_KEY
from trainctl.cli.runpod_emulator import RunpodEmulator

runner = CliRunner()


def invoke(args: list[str], *, answer: str | None = None) -> Result:
    """The command line as a person runs it; with `answer`, on a terminal that types it."""
    state = CliState(interactive=answer is not None)
    return runner.invoke(cli.app, args, obj=state, input=answer)


def error_line(result: Result, code: int) -> str:
    """The one error line of a refusal: the documented exit code, no traceback, nothing on stdout."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert result.stdout.strip() == "", result.stdout
    return errors[0]


# ------------------------------------------------------------------------------------------------ RunPod


@dataclass
class RunpodAccount:
    emulator: RunpodEmulator
    ids: dict[str, str]

    def status(self, pod_id: str) -> str | None:
        pod = self.emulator.pods.get(pod_id)
        return pod.status if pod else None

    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.emulator.calls if call[0] != "GET"]


@pytest.fixture
def runpod(monkeypatch: pytest.MonkeyPatch) -> Iterator[RunpodAccount]:
    """An account of ana's, bo's and nobody's pods and volumes; the person at the keyboard is ana."""
    emulator = RunpodEmulator()
    data = emulator.seed_volume("train-ana-data", size_gb=200)
    ids = {
        "data": data,
        "orphan": emulator.seed_volume("train-ana-old"),
        "bos_volume": emulator.seed_volume("train-bo-scratch"),
        "outside_volume": emulator.seed_volume("personal-scratch"),
    }
    ids["idle"] = emulator.seed_pod("train-ana-idle", gpu_util=(1.0, 2.0), volume_ids=[data])
    ids["exited"] = emulator.seed_pod("train-ana-done", status="EXITED")
    ids["bos"] = emulator.seed_pod("train-bo-busy", gpu_util=(97.0,))
    ids["locked"] = emulator.seed_pod("train-ana-locked", locked=True)
    ids["outside"] = emulator.seed_pod("notebook-cy")
    with emulator.serving() as url:
        monkeypatch.setenv("TRAINCTL_RUNPOD_API_URL", url)
        monkeypatch.setenv("TRAINCTL_RUNPOD_NAME_PREFIX", "train-")
        monkeypatch.setenv("TRAINCTL_RUNPOD_OWNER_PATTERN", "^train-(?P<owner>[a-z]+)-")
        monkeypatch.setenv("RUNPOD_API_KEY", RUNPOD_KEY)
        monkeypatch.setenv("TRAINCTL_OWNER", "ana")
        yield RunpodAccount(emulator, ids)


def test_pods_list_reads_every_pod_with_its_owner_cost_and_lock(runpod: RunpodAccount) -> None:
    runpod.emulator.seed_raw_pod({"id": "pododd", "name": "train-odd", "status": "HIBERNATING"})
    listed = invoke(["runpod", "pods", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = {row["pod_id"]: row for row in json.loads(listed.stdout)}
    ids = runpod.ids
    assert set(rows) == {ids["idle"], ids["exited"], ids["bos"], ids["locked"], ids["outside"], "pododd"}
    idle = rows[ids["idle"]]
    assert (idle["owner"], idle["hourly_usd"], idle["gpu_util"], idle["network_volume_ids"]) == (
        "ana",
        2.0,
        [1.0, 2.0],
        [ids["data"]],
    )
    assert rows[ids["locked"]]["locked"] and not rows[ids["outside"]]["in_scope"]
    assert rows[ids["exited"]]["hourly_usd"] == 0.0 and rows[ids["exited"]]["up_hours"] is None
    assert rows["pododd"]["status"] == "unreadable" and "HIBERNATING" in rows["pododd"]["problem"]
    # The providers' settings are read, so no warning calls them unknown.
    assert "not a trainctl setting" not in listed.stderr, listed.stderr


def test_provider_tables_fit_80_columns_with_every_id_whole(
    runpod: RunpodAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    runpod.emulator.seed_raw_pod({"id": "pododd", "name": "train-odd", "status": "HIBERNATING"})
    for args in (["runpod", "pods", "list"], ["runpod", "volumes", "list"]):
        table = runner.invoke(cli.app, args, obj=CliState(), env={"COLUMNS": "80"})
        assert table.exit_code == 0, table.output
        assert max(len(line) for line in table.stdout.splitlines()) <= 80, table.stdout
        listed = json.loads(invoke([*args, "--json"]).stdout)
        id_key = "pod_id" if args[1] == "pods" else "volume_id"
        for row in listed:
            assert row[id_key] in table.stdout, row[id_key]
    assert "unreadable pododd" in invoke(["runpod", "pods", "list"]).stdout
    csv = invoke(["runpod", "volumes", "list", "--output", "csv"])
    assert csv.exit_code == 0 and csv.stdout.splitlines()[0].startswith("volume_id,name,status,size_gb")


def test_volumes_list_names_the_pods_that_mount_each(runpod: RunpodAccount) -> None:
    rows = {row["volume_id"]: row for row in json.loads(invoke(["runpod", "volumes", "list", "--json"]).stdout)}
    assert rows[runpod.ids["data"]]["mounted_by"] == [runpod.ids["idle"]]
    assert rows[runpod.ids["orphan"]]["mounted_by"] == [] and rows[runpod.ids["orphan"]]["size_gb"] == 100
    assert rows[runpod.ids["bos_volume"]]["owner"] == "bo" and not rows[runpod.ids["outside_volume"]]["in_scope"]


def test_stop_shows_the_pod_then_stops_it_and_reads_it_back(runpod: RunpodAccount) -> None:
    pod = runpod.ids["idle"]
    stopped = invoke(["runpod", "pods", "stop", pod, "--yes", "--json"])
    assert stopped.exit_code == 0, stopped.output
    assert json.loads(stopped.stdout)["outcome"] == "done" and runpod.status(pod) == "EXITED"
    assert f"stop {pod}: 'train-ana-idle', RUNNING, $2.0000/h" in stopped.stderr
    assert "keep billing" in stopped.stderr


def test_a_stop_that_raced_the_users_own_is_already_done(runpod: RunpodAccount) -> None:
    pod = runpod.ids["idle"]
    runpod.emulator.race_user_stop(pod)
    raced = invoke(["runpod", "pods", "stop", pod, "--yes", "--json"])
    assert raced.exit_code == 0, raced.output
    assert json.loads(raced.stdout)["outcome"] == "already-done" and runpod.status(pod) == "EXITED"


def test_terminate_ends_the_pod_and_keeps_its_network_volume(runpod: RunpodAccount) -> None:
    pod, data = runpod.ids["idle"], runpod.ids["data"]
    ended = invoke(["runpod", "pods", "terminate", pod, "--yes", "--json"])
    assert ended.exit_code == 0, ended.output
    result = json.loads(ended.stdout)
    assert result["outcome"] == "done" and result["kept_network_volumes"] == [data]
    assert pod not in runpod.emulator.pods and data in runpod.emulator.volumes
    assert f"kept: network volume {data}" in ended.stderr


def test_delete_removes_an_unmounted_volume_of_ones_own(runpod: RunpodAccount) -> None:
    orphan = runpod.ids["orphan"]
    deleted = invoke(["runpod", "volumes", "delete", orphan, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert orphan not in runpod.emulator.volumes and f"deleted {orphan}" in deleted.stdout


def test_a_locked_pod_is_refused_by_name_whatever_is_waived(runpod: RunpodAccount) -> None:
    pod = runpod.ids["locked"]
    for verb in ("stop", "terminate"):
        args = ["runpod", "pods", verb, pod, "--allow-out-of-scope", "--allow-other-owner", "--yes"]
        said = error_line(invoke(args), EXIT_FAILED)
        assert pod in said and "it is locked" in said
    assert runpod.status(pod) == "RUNNING" and runpod.writes() == []


def test_a_mounted_network_volume_is_refused_by_the_pod_that_mounts_it(runpod: RunpodAccount) -> None:
    data, pod = runpod.ids["data"], runpod.ids["idle"]
    args = ["runpod", "volumes", "delete", data, "--allow-out-of-scope", "--allow-other-owner", "--yes"]
    said = error_line(invoke(args), EXIT_FAILED)
    assert f"pod {pod} mounts it" in said
    assert data in runpod.emulator.volumes and runpod.writes() == []


def test_an_unreadable_pod_is_refused_by_name_and_keeps_every_volume(runpod: RunpodAccount) -> None:
    runpod.emulator.seed_raw_pod({"id": "pododd", "name": "train-odd", "status": "HIBERNATING"})
    said = error_line(invoke(["runpod", "pods", "terminate", "pododd", "--yes"]), EXIT_FAILED)
    assert "pododd not terminated" in said and "unreadable" in said and "HIBERNATING" in said
    # What that pod mounts is unknown: not even an orphan may go while it cannot be read.
    said = error_line(invoke(["runpod", "volumes", "delete", runpod.ids["orphan"], "--yes"]), EXIT_FAILED)
    assert "pod pododd is unreadable" in said
    assert runpod.ids["orphan"] in runpod.emulator.volumes and runpod.writes() == []


def test_out_of_scope_needs_its_waiver_and_still_asks(runpod: RunpodAccount) -> None:
    pod = runpod.ids["outside"]
    said = error_line(invoke(["runpod", "pods", "stop", pod, "--yes"]), EXIT_FAILED)
    assert "outside trainctl's scope" in said and "--allow-out-of-scope to go ahead" in said
    assert runpod.status(pod) == "RUNNING"
    unasked = invoke(["runpod", "pods", "stop", pod, "--allow-out-of-scope"])
    assert "pass --yes" in error_line(unasked, EXIT_USAGE) and runpod.status(pod) == "RUNNING"
    assert "waived: it is outside trainctl's scope" in unasked.stderr
    done = invoke(["runpod", "pods", "stop", pod, "--allow-out-of-scope", "--yes"])
    assert done.exit_code == 0, done.output
    assert runpod.status(pod) == "EXITED"


def test_another_owners_pod_and_volume_need_their_waiver(runpod: RunpodAccount) -> None:
    pod, volume = runpod.ids["bos"], runpod.ids["bos_volume"]
    said = error_line(invoke(["runpod", "pods", "terminate", pod, "--yes"]), EXIT_FAILED)
    assert "its owner is bo, not ana" in said and "--allow-other-owner to go ahead" in said
    said = error_line(invoke(["runpod", "volumes", "delete", volume, "--yes"]), EXIT_FAILED)
    assert "--allow-other-owner" in said
    assert pod in runpod.emulator.pods and volume in runpod.emulator.volumes and runpod.writes() == []
    assert invoke(["runpod", "volumes", "delete", volume, "--allow-other-owner", "--yes"]).exit_code == 0
    assert volume not in runpod.emulator.volumes


def test_no_confirmation_changes_nothing_and_a_yes_at_the_terminal_goes_ahead(runpod: RunpodAccount) -> None:
    pod = runpod.ids["idle"]
    off_terminal = invoke(["runpod", "pods", "terminate", pod])
    assert "not on a terminal" in error_line(off_terminal, EXIT_USAGE)
    assert f"terminate {pod}" in off_terminal.stderr  # what it would have done is shown first
    declined = invoke(["runpod", "pods", "terminate", pod], answer="n\n")
    assert declined.exit_code == EXIT_FAILED and "nothing was changed" in declined.stderr
    assert runpod.status(pod) == "RUNNING" and runpod.writes() == []
    agreed = invoke(["runpod", "pods", "terminate", pod], answer="y\n")
    assert agreed.exit_code == 0, agreed.output
    assert pod not in runpod.emulator.pods


def test_a_stop_of_an_exited_pod_is_already_done_without_a_call(runpod: RunpodAccount) -> None:
    stopped = invoke(["runpod", "pods", "stop", runpod.ids["exited"], "--json"])
    assert stopped.exit_code == 0 and json.loads(stopped.stdout)["outcome"] == "already-done"
    assert runpod.writes() == []


@pytest.mark.parametrize("echo", [False, True])
def test_a_revoked_key_is_one_line_naming_runpod_and_its_variable(runpod: RunpodAccount, echo: bool) -> None:
    runpod.emulator.echo_key_in_errors = echo
    runpod.emulator.revoke_key()
    for args in (["runpod", "pods", "list"], ["runpod", "volumes", "delete", runpod.ids["orphan"], "--yes"]):
        result = invoke(args)
        said = error_line(result, EXIT_FAILED)
        assert "runpod refused the API key in RUNPOD_API_KEY" in said
        assert RUNPOD_KEY not in result.output


def test_a_wrong_key_never_appears_and_no_key_names_the_variable(
    runpod: RunpodAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_wrong_key_1234567890")
    runpod.emulator.echo_key_in_errors = True
    wrong = invoke(["runpod", "pods", "list"])
    assert "RUNPOD_API_KEY" in error_line(wrong, EXIT_FAILED) and "rpa_wrong_key" not in wrong.output
    monkeypatch.delenv("RUNPOD_API_KEY")
    assert "set RUNPOD_API_KEY" in error_line(invoke(["runpod", "pods", "list"]), EXIT_FAILED)
    assert runpod.emulator.calls == [("GET", "/v2/pods")]  # the missing key asked nothing


def test_a_malformed_id_is_wrong_usage_before_any_call(runpod: RunpodAccount) -> None:
    said = error_line(invoke(["runpod", "pods", "stop", "../pods", "--yes"]), EXIT_USAGE)
    assert "not a RunPod pod id" in said and runpod.emulator.calls == []
    said = error_line(invoke(["runpod", "pods", "stop", "podnothere", "--yes"]), EXIT_FAILED)
    assert "no RunPod pod podnothere" in said


# ------------------------------------------------------------------------------------------------ Lyceum


@dataclass
class LyceumAccount:
    emulator: LyceumEmulator
    ids: dict[str, str]

    def writes(self) -> list[Any]:
        return [call for call in self.emulator.calls if call.method != "GET"]


@pytest.fixture
def lyceum(monkeypatch: pytest.MonkeyPatch) -> Iterator[LyceumAccount]:
    """The sandbox's Lyceum story (alice, bob and carol's VMs, one outside, runs) with alice at the keyboard."""
    emulator = LyceumEmulator()
    ids = emulator.seed_story()
    with serve(emulator) as url:
        monkeypatch.setenv("TRAINCTL_LYCEUM_API_URL", url)
        monkeypatch.setenv("TRAINCTL_LYCEUM_NAME_PREFIX", "team-")
        monkeypatch.setenv("TRAINCTL_LYCEUM_OWNER_PATTERN", "^team-(?P<owner>[a-z]+)-")
        monkeypatch.setenv("LYCEUM_API_KEY", LYCEUM_KEY)
        monkeypatch.setenv("TRAINCTL_OWNER", "alice")
        yield LyceumAccount(emulator, ids)


def test_vms_list_reads_owner_scope_and_unpriced(lyceum: LyceumAccount) -> None:
    lyceum.emulator.add_raw_vm({"vm_id": "vm-odd", "name": "team-odd", "status": "hibernating"}, "vm-odd")
    rows = {row["vm_id"]: row for row in json.loads(invoke(["lyceum", "vms", "list", "--json"]).stdout)}
    past = rows[lyceum.ids["past_ttl"]]
    assert (past["owner"], past["in_scope"], past["hourly_usd"], past["price_source"]) == (
        "alice",
        True,
        None,
        "unpriced",
    )
    assert past["age_hours"] == pytest.approx(80, abs=0.2)
    assert not rows[lyceum.ids["out_of_scope"]]["in_scope"] and rows["vm-odd"]["status"] == "unreadable"
    table = runner.invoke(cli.app, ["lyceum", "vms", "list"], obj=CliState(), env={"COLUMNS": "80"})
    assert max(len(line) for line in table.stdout.splitlines()) <= 80, table.stdout
    assert all(vm_id in table.stdout for vm_id in rows)


def test_terminate_a_vm_of_ones_own(lyceum: LyceumAccount) -> None:
    vm = lyceum.ids["past_ttl"]
    ended = invoke(["lyceum", "vms", "terminate", vm, "--yes", "--json"])
    assert ended.exit_code == 0, ended.output
    assert json.loads(ended.stdout)["outcome"] == "done" and vm not in lyceum.emulator.vms
    assert "Lyceum has no stop" in ended.stderr


def test_lyceum_refusals_out_of_scope_other_owner_unreadable_and_unconfirmed(lyceum: LyceumAccount) -> None:
    lyceum.emulator.add_raw_vm({"vm_id": "vm-odd", "name": "team-odd", "status": "hibernating"}, "vm-odd")
    outside, bobs = lyceum.ids["out_of_scope"], lyceum.ids["idle"]
    assert "--allow-out-of-scope" in error_line(invoke(["lyceum", "vms", "terminate", outside, "--yes"]), 1)
    said = error_line(invoke(["lyceum", "vms", "terminate", bobs, "--yes"]), EXIT_FAILED)
    assert "its owner is bob, not alice" in said and "--allow-other-owner" in said
    said = error_line(invoke(["lyceum", "vms", "terminate", "vm-odd", "--allow-out-of-scope", "--yes"]), 1)
    assert "vm-odd not terminated" in said and "unreadable" in said
    assert "not on a terminal" in error_line(invoke(["lyceum", "vms", "terminate", lyceum.ids["past_ttl"]]), 2)
    assert lyceum.writes() == [] and {outside, bobs, lyceum.ids["past_ttl"]} <= set(lyceum.emulator.vms)


def test_runs_list_and_abort(lyceum: LyceumAccount) -> None:
    rows = {row["run_id"]: row for row in json.loads(invoke(["lyceum", "runs", "list", "--json"]).stdout)}
    run = lyceum.ids["run_past_cap"]
    assert set(rows) == {run, lyceum.ids["run_fresh"]} and rows[run]["running_hours"] == pytest.approx(30, abs=0.2)
    aborted = invoke(["lyceum", "runs", "abort", run, "--yes", "--json"])
    assert aborted.exit_code == 0, aborted.output
    assert json.loads(aborted.stdout)["outcome"] == "done" and lyceum.emulator.runs[run]["status"] == "aborted"


def test_a_run_outside_the_scope_needs_its_waiver(lyceum: LyceumAccount) -> None:
    run = lyceum.emulator.add_run(created_at=datetime.now(UTC) - timedelta(hours=1), file_name="private.py")
    said = error_line(invoke(["lyceum", "runs", "abort", run, "--yes"]), EXIT_FAILED)
    assert "--allow-out-of-scope" in said and lyceum.emulator.runs[run]["status"] == "running"


@pytest.mark.parametrize("echo", [False, True])
def test_a_revoked_lyceum_key_is_one_line_naming_lyceum_and_its_variable(lyceum: LyceumAccount, echo: bool) -> None:
    lyceum.emulator.echo_key_in_errors = echo
    lyceum.emulator.revoke(LYCEUM_KEY)
    result = invoke(["lyceum", "vms", "terminate", lyceum.ids["past_ttl"], "--yes"])
    said = error_line(result, EXIT_FAILED)
    assert "lyceum refused the API key in LYCEUM_API_KEY" in said and LYCEUM_KEY not in result.output
    assert lyceum.writes() == []


def test_no_lyceum_key_names_the_variable(lyceum: LyceumAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LYCEUM_API_KEY")
    assert "set LYCEUM_API_KEY" in error_line(invoke(["lyceum", "runs", "list"]), EXIT_FAILED)
    assert lyceum.emulator.calls == []


# ------------------------------------------------------------------------------------------------ aws …


def test_aws_ebs_list_is_ebs_list(factory: ClientFactory) -> None:
    seed_account(factory)
    for group, leaf in (("ebs", "list"), ("instances", "list"), ("resources", "summary")):
        today = run_cli(factory, [group, leaf, "--json"])
        original = run_cli(factory, ["aws", group, leaf, "--json"])
        assert today.exit_code == original.exit_code == 0, original.output
        assert json.loads(original.stdout) == json.loads(today.stdout) and json.loads(today.stdout)


def test_every_aws_command_is_todays_command_under_the_original_name() -> None:
    root: Any = typer.main.get_command(cli.app)

    def leaves(command: Any, path: tuple[str, ...]) -> dict[tuple[str, ...], Any]:
        if hasattr(command, "commands"):
            found: dict[tuple[str, ...], Any] = {}
            for name, child in command.commands.items():
                found.update(leaves(child, (*path, name)))
            return found
        return {path: inspect.unwrap(command.callback)}

    under_aws = leaves(root.commands["aws"], ())
    assert {path[0] for path in under_aws} == {"ebs", "instances", "resources", "data", "transfer"}
    for path, callback in under_aws.items():
        assert leaves(root, ())[path] is callback, path
    helped = invoke(["-h"]).stdout
    panel = [line.strip("│ ").split(" ", 1)[0] for line in helped.splitlines() if line.startswith("│ ")]
    assert panel.count("aws") == 1 and {"runpod", "lyceum", "ebs"} <= set(panel)
