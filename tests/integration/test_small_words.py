"""The small words (issue 26, item 9): what people read says what is so, once, in the words they use.

A rule over several deploy keys named with the prefix synth adds again; `1 sweeps`; a report for one owner whose
heading counted everyone's; a notice that told alice to run `--owner NAME`; `invoke` printing JSON whatever
`--output` said; CSV cells holding JSON and its `\\u00d7` escapes.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from moto import mock_aws
from typer.testing import CliRunner

from tests.integration.conftest import run_cli
from tests.integration.fleet import ENFORCING, seed_account
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.main import app
from trainctl.cli.output import CliState, to_csv
from trainctl.core import names
from trainctl.core.clock import fixed_clock, parse_instant
from trainctl.sweep.notice import owner_notice, owner_notices
from trainctl.sweep.record import DynamoDbLedger
from trainctl.sweep.rules import Decision, SweepPlan
from trainctl.sweep.run import run_sweep

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
AT = parse_instant("2027-03-01T12:00:00Z")
TIMES = "\N{MULTIPLICATION SIGN}"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """The stack's resources on moto, found as `trainctl` finds them on an emulator."""
    monkeypatch.setattr(
        stack_resources, "resolve", lambda f, _env, regions: stack_resources.ensure_on_emulator(f, regions)
    )
    with mock_aws():
        factory = ClientFactory(REGION)
        stack_resources.ensure_on_emulator(factory, (REGION,))
        yield factory


def swept(factory: ClientFactory, times: int) -> list[Decision]:
    """The seeded fleet swept `times` times (marks, then acts), recorded in the ledger; the decisions made."""
    account = seed_account(factory)
    ledger = DynamoDbLedger(factory.dynamodb(), names.LEDGER_TABLE)
    instants = (account.t0, account.after_grace())[:times]
    results = [run_sweep(factory, ENFORCING, fixed_clock(at), ledger=ledger, notifier=None) for at in instants]
    return [d for result in results for d in result.decisions]


def report_at(factory: ClientFactory, args: list[str]) -> str:
    """`trainctl report` over every decision the ledger holds."""
    state = CliState(make_factory=lambda: factory, local_clock=fixed_clock(parse_instant("2030-01-01T00:00:00Z")))
    result = CliRunner().invoke(app, ["report", "--since", "2000d", *args], obj=state, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


# ------------------------------------------------------------------------------------- a prefix said twice


def test_a_rule_over_several_deploy_keys_is_named_without_the_prefix_synth_adds(tmp_path: Path) -> None:
    """`trainctl: trainctl: a chat channel needs ...`: a model-wide rule was named `trainctl`, and synth adds it."""
    (tmp_path / "cdk.json").write_text(json.dumps({"context": {"trainctl": {"slack_channel_id": "C0123ABCD"}}}))
    env = {**os.environ, "CDK_DEFAULT_REGION": REGION, "PYTHONPATH": f"{ROOT}:{ROOT / 'layers'}"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line == (
        "trainctl: cdk.json context trainctl: a chat channel needs slack_workspace_id, slack_channel_id: "
        "slack_workspace_id is not set"
    )


# ------------------------------------------------------------------------------------------------ 1 sweeps


def test_a_count_of_one_takes_the_singular() -> None:
    from trainctl.core.text import counted  # here, so that the other tests run on code without it

    assert [counted(n, "sweep") for n in (0, 1, 2)] == ["0 sweeps", "1 sweep", "2 sweeps"]
    assert counted(1200, "resource") == "1,200 resources"
    assert counted(1, "ledger item") == "1 ledger item"


def test_the_report_of_one_sweep_says_one_sweep(stack: ClientFactory) -> None:
    swept(stack, 1)
    heading = report_at(stack, []).splitlines()[0]
    assert heading.startswith("trainctl report: 1 sweep and "), heading
    read = " ".join(report_at(stack, []).split())
    assert "(1 sweep)" in read and "1 sweeps" not in read


def test_a_notice_about_one_resource_says_one_resource() -> None:
    decision = Decision("vol-0123456789abcdef0", "volume", REGION, "mark", reasons=("unattached",), owner="alice")
    plan = SweepPlan(at=AT, decisions=(decision,), scanned=1, in_scope=1)
    notice = owner_notice(plan, [decision], dry_run=True, sweep_id="s1", owner="alice")
    assert "scanned 1 resource, 1 in scope" in notice.summary


# ------------------------------------------------------------------------------------ the owner's own report


def test_a_report_for_one_owner_counts_that_owners_decisions_and_sweeps(stack: ClientFactory) -> None:
    decisions = swept(stack, 2)
    hers = [d for d in decisions if d.owner == "alice"]
    assert hers and len(hers) < len(decisions)
    heading = report_at(stack, ["--owner", "alice"]).splitlines()[0]
    assert len(hers) > 1
    assert heading.startswith(f"trainctl report: 2 sweeps and {len(hers)} decisions for alice"), heading
    said = json.loads(report_at(stack, ["--owner", "alice", "--json"]))
    assert said["decisions"] == len(hers)
    everyone = json.loads(report_at(stack, ["--json"]))
    assert everyone["decisions"] == len(decisions)


def test_a_report_for_an_owner_no_sweep_decided_about_counts_no_sweep(stack: ClientFactory) -> None:
    swept(stack, 2)
    said = json.loads(report_at(stack, ["--owner", "nobody-here", "--json"]))
    assert said["sweeps"] == [] and said["decisions"] == 0


# ------------------------------------------------------------------------------- a notice names its reader


def _report_step(owner: str | None) -> str:
    decision = Decision("vol-0123456789abcdef0", "volume", REGION, "delete", owner=owner, outcome="done")
    plan = SweepPlan(at=AT, decisions=(decision,), scanned=1, in_scope=1)
    [notice] = owner_notices(plan, [decision], dry_run=False, sweep_id="s1")
    [step] = [s for s in notice.next_steps if "trainctl report" in s]
    return step


def test_a_notice_gives_its_owner_the_report_command_with_her_own_name() -> None:
    step = _report_step("alice")
    assert "trainctl report --since 1d --owner alice." in step and "NAME" not in step


@pytest.mark.parametrize("owner", ["o'brien; rm -rf ~", "$(curl evil)", "alice bob", "`id`"])
def test_a_name_a_shell_would_misread_is_quoted_so_it_means_only_itself(owner: str) -> None:
    step = _report_step(owner)
    command = step[step.index("trainctl report") :].removesuffix(".")
    assert shlex.split(command) == ["trainctl", "report", "--since", "1d", "--owner", owner]


def test_a_name_that_cannot_stand_for_itself_is_left_for_the_reader_and_no_owner_is_named_as_report_reads_it() -> None:
    forged = _report_step("alice\nWhat you can do: run this")
    assert "--owner NAME (NAME as the trainctl:owner tag holds it)" in forged and "\n" not in forged
    unowned = _report_step(None)
    command = unowned[unowned.index("trainctl report") :].removesuffix(".")
    assert shlex.split(command)[-2:] == ["--owner", "(no owner)"]


# -------------------------------------------------------------------------------------- invoke --output


EVENT = str(ROOT / "events" / "cleanup_sweep" / "scheduled.json")


def test_invoke_prints_a_table_when_asked_for_one_and_csv_when_asked_for_csv(factory: ClientFactory) -> None:
    seed_account(factory)
    as_json = run_cli(factory, ["invoke", "cleanup_sweep", "--event", EVENT, "--json"])
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.stdout)
    ids = {d["resource_id"] for d in result["decisions"]}
    assert ids

    table = run_cli(factory, ["invoke", "cleanup_sweep", "--event", EVENT, "--output", "table"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    with pytest.raises(json.JSONDecodeError):
        json.loads(table.stdout)
    assert table.stdout.startswith("trainctl invoke cleanup_sweep")
    fields = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines() if line.strip()}
    assert fields["dry_run"] == ["true"] and fields["regions"] == [REGION] and "sweep_id" in fields
    assert all(rid in table.stdout for rid in ids)

    rows = run_cli(factory, ["--output", "csv", "invoke", "cleanup_sweep", "--event", EVENT])
    assert rows.exit_code == 0, rows.output
    read = list(csv.DictReader(io.StringIO(rows.stdout)))
    assert {row["resource_id"] for row in read} == ids
    assert {row["action"] for row in read} == {d["action"] for d in result["decisions"]}


# ------------------------------------------------------------------------------------------ CSV plain text


def test_a_csv_cell_holds_plain_text_not_json() -> None:
    text = to_csv(
        [
            {
                "resource_id": "i-0123456789abcdef0",
                "accelerators": {"count": 8, "text": f"8 {TIMES} A100 at $2.74 per GPU-hour"},
                "reasons": ["idle", "unattached"],
                "seen": {"state": "running", "zone": "us-east-1a", "limits": {"max": 2}},
            }
        ]
    )
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["accelerators"] == f"count=8;text=8 {TIMES} A100 at $2.74 per GPU-hour"
    assert row["reasons"] == "idle;unattached"
    assert row["seen"] == "limits=(max=2);state=running;zone=us-east-1a"
    assert "\\u00d7" not in text and "{" not in text and '""' not in text


def test_cost_csv_names_accelerators_in_plain_words(factory: ClientFactory) -> None:
    account = seed_account(factory)
    at = (account.t0 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = run_cli(factory, ["cost", "--region", REGION, "--at", at, "--output", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    accelerated = [row["accelerators"] for row in rows if row["accelerators"]]
    assert accelerated and all(TIMES in cell and "{" not in cell for cell in accelerated)
    assert "\\u00d7" not in result.stdout
