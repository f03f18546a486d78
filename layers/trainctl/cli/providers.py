"""`trainctl runpod …` and `trainctl lyceum …`: the GPU providers' resources by hand, under the same protections as
`trainctl ebs delete` and `instances terminate`; and `trainctl aws …`, today's AWS commands under the original
tool's shape.

The key comes from RUNPOD_API_KEY or LYCEUM_API_KEY and goes nowhere but the provider's Authorization header: a
missing, wrong or revoked key is one line naming the provider and the variable, never the key. Neither provider
has tags, so scope is TRAINCTL_<PROVIDER>_NAME_PREFIX or _IDS and the owner is read from the name by the team's
pattern. A destructive command refuses, whatever is waived: a locked pod, a network volume a pod or a serverless
endpoint mounts (or that an unreadable pod or endpoint might mount) and anything whose answer is not in the
documented shape, each by name. Outside the scope or someone else's needs `--allow-out-of-scope` or
`--allow-other-owner`; then it shows what it will do and asks (`--yes` for scripts; off a terminal without `--yes`
nothing happens).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.text import Text

from trainctl.cli.commands import (
    Yes,
    ebs,
    instances,
    resources,
    transfer_command,
)
from trainctl.cli.data import data as data_group
from trainctl.cli.environment import person
from trainctl.cli.output import EXIT_FAILED, EXIT_USAGE, AsJson, Output, confirm, console, emit, fail, output_format
from trainctl.cli.output import warn as warn_line
from trainctl.cli.render import ESSENTIAL, Col, print_table
from trainctl.core.clock import format_instant, system_clock
from trainctl.core.errors import TrainctlError
from trainctl.core.text import one_line
from trainctl.handwork.ownership import ALLOW_OTHER_OWNER, ALLOW_OUT_OF_SCOPE, Problem, Waivers
from trainctl.handwork.refusals import NotFound, Refused
from trainctl.lyceum import act as lyceum_act
from trainctl.lyceum.client import KEY_VARIABLE as LYCEUM_KEY_VARIABLE
from trainctl.lyceum.client import LyceumClient
from trainctl.lyceum.read import LyceumInventory, read_inventory
from trainctl.lyceum.settings import LyceumSettings, load_lyceum_settings
from trainctl.providers.http import ProviderKeyRejected
from trainctl.providers.keys import KEY_VARIABLES, key_from_environment
from trainctl.runpod import act as runpod_act
from trainctl.runpod.client import RunpodClient, connect, read_account
from trainctl.runpod.read import Pod, RunpodInventory
from trainctl.runpod.settings import RunpodSettings

__all__ = ["aws", "lyceum", "register", "runpod"]

AllowOutOfScope = Annotated[
    bool,
    typer.Option("--allow-out-of-scope", help="Allow one outside the name prefix and ids in scope (it still asks)."),
]
AllowOtherOwner = Annotated[
    bool, typer.Option("--allow-other-owner", help="Allow one whose name says another owner (it still asks).")
]
# A person waits at a terminal: a rate limit that asks for longer than this is said, not sat out.
PATIENCE_S = 60.0
_PROVIDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_NAME = 48  # a provider's resource name in a plan line or a refusal: one bounded line

runpod = typer.Typer(help="RunPod pods and network volumes by hand (key: RUNPOD_API_KEY), under the protections.")
runpod_pods = typer.Typer(help="RunPod pods: list them, stop one (its disk stays and bills), or terminate one.")
runpod_volumes = typer.Typer(help="RunPod network volumes: list them with who mounts them, or delete one.")
runpod.add_typer(runpod_pods, name="pods")
runpod.add_typer(runpod_volumes, name="volumes")
lyceum = typer.Typer(help="Lyceum VMs and runs by hand (key: LYCEUM_API_KEY), under the protections.")
lyceum_vms = typer.Typer(help="Lyceum VMs: list them, or terminate one (Lyceum has no stop that keeps the disk).")
lyceum_runs = typer.Typer(help="Lyceum serverless runs: list the live ones, or abort one.")
lyceum.add_typer(lyceum_vms, name="vms")
lyceum.add_typer(lyceum_runs, name="runs")
aws = typer.Typer(help="The AWS commands under the original tool's names: `aws ebs list` is `ebs list`.")
# The same Typer apps as the top-level groups: one callback behind each pair of names, never a copy.
aws.add_typer(ebs, name="ebs")
aws.add_typer(instances, name="instances")
aws.add_typer(resources, name="resources")
aws.add_typer(data_group, name="data")
aws.command("transfer")(transfer_command)


def register(app: typer.Typer) -> None:
    """The providers' groups and the `aws` alias group on the root command."""
    app.add_typer(runpod, name="runpod")
    app.add_typer(lyceum, name="lyceum")
    app.add_typer(aws, name="aws")


# ------------------------------------------------------------------------------------------------ shared


def check_provider_id(value: str, what: str) -> None:
    """Checked before any call: a provider id is letters, digits, _ and -; anything else is wrong usage."""
    if not _PROVIDER_ID.match(value):
        raise fail(f"{one_line(value, 64)}: not a {what} (letters, digits, _ and - only)", EXIT_USAGE)


@contextmanager
def refused_key_in_words(provider: str) -> Iterator[None]:
    """A wrong or revoked key is one line naming the provider and the variable it came from; never the key."""
    try:
        yield
    except ProviderKeyRejected:
        variable = KEY_VARIABLES[provider]
        raise TrainctlError(
            f"{provider} refused the API key in {variable} (wrong, revoked or not allowed): set {variable} to a valid "
            "key"
        ) from None


def _hours(seconds: float) -> str:
    hours = max(0.0, seconds) / 3600
    return f"{hours:,.1f}h" if hours < 48 else f"{hours / 24:,.1f}d"


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:,.4f}"


def _scope_words(in_scope: bool, prefix_variable: str, ids_variable: str) -> str:
    return "in scope" if in_scope else f"outside the scope (not by {prefix_variable} nor {ids_variable})"


def hand_problems(
    *, in_scope: bool, holder: str | None, me: str | None, prefix_variable: str, ids_variable: str
) -> list[Problem]:
    """What a destructive provider command needs a waiver for: outside the scope, or another's by the name."""
    problems = []
    if not in_scope:
        problems.append(
            Problem(
                f"it is outside trainctl's scope (neither {prefix_variable} nor {ids_variable})", ALLOW_OUT_OF_SCOPE
            )
        )
    if holder and holder != me:
        whose = f"its name says its owner is {one_line(holder, 64)}, not {one_line(me, 64) if me else 'you'}"
        problems.append(Problem(whose, ALLOW_OTHER_OWNER))
    return problems


def refuse_unwaived(
    resource_id: str, verb: str, refusals: Sequence[str], problems: Sequence[Problem], waivers: Waivers
) -> None:
    """Refusals no flag waives first, then the problems whose waiver was not given: nothing was changed."""
    said = [*refusals, *(str(p) for p in waivers.unwaived(problems))]
    if said:
        raise Refused(f"{resource_id} not {verb}: {'; '.join(said)}")


def _unreadable_refusal(problem: str, provider: str) -> str:
    return (
        f"{provider}'s answer for it is not in the documented shape ({one_line(problem, 160)}): protected as unreadable"
    )


def _finish(fmt: Any, result: dict[str, Any], done: Callable[[], None]) -> None:
    """Print the outcome; a failed action is exit 1 after its result is shown."""
    emit(fmt, result, done)
    if result["outcome"] == "failed":
        raise typer.Exit(EXIT_FAILED)
    if result["outcome"] == "not-confirmed":
        warn_line(f"{result['id']}: {result['detail']}")


def refuse_unreadable(resource_id: str, verb: str, provider: str, unreadable: Iterable[tuple[str, str]]) -> None:
    """An entry whose answer was not in the documented shape is refused by name, whatever is waived."""
    for label, problem in unreadable:
        if label == resource_id:
            raise Refused(f"{resource_id} not {verb}: {_unreadable_refusal(problem, provider)}")


def refuse_ask_act(
    ctx: typer.Context,
    fmt: Any,
    *,
    resource_id: str,
    action: str,
    done: str,
    provider: str,
    refusals: Sequence[str],
    problems: Sequence[Problem],
    waivers: Waivers,
    plan: Sequence[str],
    yes: bool,
    act: Callable[[], dict[str, Any]],
) -> None:
    """Every destructive provider command's flow: refuse what is not waived, show the plan and ask, act under the
    key's words, then print what was read back (`act` returns the outcome's fields)."""
    refuse_unwaived(resource_id, done, refusals, problems, waivers)
    confirm(
        ctx,
        [*plan, *(f"waived: {p.text}" for p in waivers.waived(problems))],
        f"{action.capitalize()} {resource_id}?",
        yes=yes,
    )
    with refused_key_in_words(provider):
        fields = act()
    result: dict[str, Any] = {"id": resource_id, "action": action, **fields}
    _finish(fmt, result, lambda: console.print(Text(_outcome_words(resource_id, done, result))))


# ------------------------------------------------------------------------------------------------ RunPod

RUNPOD_PREFIX, RUNPOD_IDS = "TRAINCTL_RUNPOD_NAME_PREFIX", "TRAINCTL_RUNPOD_IDS"


def _runpod(patience_s: float = PATIENCE_S) -> tuple[RunpodClient, RunpodSettings]:
    settings = RunpodSettings.from_env(os.environ)
    key = key_from_environment(os.environ, "runpod")
    return connect(settings, key, patience_s=patience_s), settings


def _runpod_account() -> tuple[RunpodClient, RunpodSettings, RunpodInventory]:
    client, settings = _runpod()
    with refused_key_in_words("runpod"):
        return client, settings, read_account(client, settings, system_clock())


POD_COLUMNS = (
    Col("pod", ESSENTIAL, whole=True),
    Col("status", 95, whole=True),
    Col("per hour", ESSENTIAL, whole=True, justify="right"),
    Col("GPU %", 85, whole=True, justify="right"),
    Col("owner", 80, min_width=8),
    Col("L", 75, whole=True),
    Col("up", 70, whole=True, justify="right"),
    Col("name", 60, min_width=12),
    Col("scope", 50, whole=True),
    Col("network volumes", 40, min_width=12),
)


def _pod_row(pod: Pod, now: datetime) -> dict[str, Any]:
    running_since = pod.started_at if pod.status == "RUNNING" else None
    return {
        "pod_id": pod.resource_id,
        "name": pod.name,
        "status": pod.status,
        "hourly_usd": pod.hourly_usd,
        "locked": pod.locked,
        "in_scope": pod.in_scope,
        "owner": pod.owner,
        "created_at": format_instant(pod.instance.first_launch_time or pod.instance.launch_time),
        "up_hours": round((now - running_since).total_seconds() / 3600, 1) if running_since else None,
        "gpu_util": list(pod.gpu_util),
        "network_volume_ids": list(pod.network_volume_ids),
        "problem": None,
    }


def _unreadable_rows(unreadable: Iterable[tuple[str, str]], id_key: str) -> list[dict[str, Any]]:
    return [{id_key: label, "status": "unreadable", "problem": problem} for label, problem in unreadable]


def _runpod_unreadable(inventory: RunpodInventory, kind: str) -> list[tuple[str, str]]:
    """(label, problem) of each entry of this kind RunPod answered outside the documented shape."""
    return [(u.label, u.problem) for u in inventory.unreadable if u.resource_type == kind]


def _lyceum_unreadable(inventory: LyceumInventory, kind: str) -> list[tuple[str, str]]:
    """(label, problem) of each entry of this kind Lyceum answered outside the documented shape."""
    return [(u.label, u.problem) for u in inventory.unreadable if u.kind == kind]


def _gpu(row: dict[str, Any]) -> str:
    util = row.get("gpu_util") or []
    return f"{max(util):.0f}" if util else "-"


def _problem_lines(rows: Iterable[dict[str, Any]], key: str) -> None:
    for row in rows:
        if row.get("problem"):
            console.print(Text(f"unreadable {row[key]}: {row['problem']} (protected, never acted on)", style="yellow"))


@runpod_pods.command("list")
def runpod_pods_list(ctx: typer.Context, as_json: AsJson = False, output: Output = None) -> None:
    """Pods: status, cost per hour, GPU utilisation, owner by the name, locked, uptime and network volumes."""
    fmt = output_format(ctx, output, as_json)
    _client, _settings, inventory = _runpod_account()
    now = inventory.read_at
    rows = [_pod_row(p, now) for p in sorted(inventory.pods, key=lambda p: p.resource_id)]
    rows += _unreadable_rows(_runpod_unreadable(inventory, "instance"), "pod_id")

    def show() -> None:
        print_table(
            console,
            "RunPod pods",
            POD_COLUMNS,
            [
                [
                    r["pod_id"],
                    r["status"],
                    _usd(r.get("hourly_usd")) if r["status"] != "unreadable" else "-",
                    _gpu(r),
                    r.get("owner") or "-",
                    "L" if r.get("locked") else "",
                    _hours(r["up_hours"] * 3600) if r.get("up_hours") is not None else "-",
                    r.get("name") or "-",
                    "-" if r["status"] == "unreadable" else "in" if r.get("in_scope") else "out",
                    ", ".join(r.get("network_volume_ids") or []) or "-",
                ]
                for r in rows
            ],
        )
        console.print(Text("L: locked (RunPod refuses to stop it; so does trainctl)", style="dim"))
        _problem_lines(rows, "pod_id")

    emit(fmt, rows, show)


def _runpod_fields(outcome: runpod_act.ActionResult) -> dict[str, Any]:
    return {"outcome": outcome.outcome, "status_after": outcome.status_after, "detail": outcome.detail}


def _lyceum_fields(outcome: lyceum_act.Outcome) -> dict[str, Any]:
    return {"outcome": outcome.result, "detail": outcome.detail}


def _hand_pod(pod_id: str, verb: str) -> tuple[RunpodClient, RunpodInventory, Pod]:
    client, _settings, inventory = _runpod_account()
    refuse_unreadable(pod_id, verb, "RunPod", _runpod_unreadable(inventory, "instance"))
    pod = next((p for p in inventory.pods if p.resource_id == pod_id), None)
    if pod is None or pod.status == "TERMINATED":
        raise NotFound(f"no RunPod pod {pod_id} (RUNPOD_API_KEY's account lists none by that id)")
    return client, inventory, pod


def _pod_words(pod: Pod, now: datetime) -> str:
    owner = f"owner {one_line(pod.owner, 64)} by its name" if pod.owner else "no owner in its name"
    up = f", up {_hours((now - pod.started_at).total_seconds())}" if pod.status == "RUNNING" and pod.started_at else ""
    util = f", GPU {'/'.join(f'{u:.0f}%' for u in pod.gpu_util)}" if pod.gpu_util else ""
    scope = _scope_words(pod.in_scope, RUNPOD_PREFIX, RUNPOD_IDS)
    return f"{one_line(pod.name, _NAME)!r}, {pod.status}, {_usd(pod.hourly_usd)}/h{up}{util}, {owner}, {scope}"


def _pod_refusals_and_problems(pod: Pod) -> tuple[list[str], list[Problem]]:
    refusals = []
    if pod.locked:
        refusals.append("it is locked (RunPod's `locked`): unlock it in RunPod first")
    problems = hand_problems(
        in_scope=pod.in_scope,
        holder=pod.owner,
        me=person(os.environ),
        prefix_variable=RUNPOD_PREFIX,
        ids_variable=RUNPOD_IDS,
    )
    return refusals, problems


@runpod_pods.command("stop")
def runpod_pods_stop(
    ctx: typer.Context,
    pod_id: str,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    yes: Yes = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Stop a pod: shows it and asks. Its disk stays and still bills. Refuses a locked pod; one outside the scope
    or someone else's needs the override that names it."""
    fmt = output_format(ctx, output, as_json)
    check_provider_id(pod_id, "RunPod pod id")
    client, inventory, pod = _hand_pod(pod_id, "stopped")
    if pod.status == "EXITED":
        stopped = {"id": pod_id, "action": "stop", "outcome": "already-done", "status_after": "EXITED", "detail": ""}
        emit(fmt, stopped, lambda: console.print(Text(f"{pod_id} is already stopped")))
        return
    refusals, problems = _pod_refusals_and_problems(pod)
    refuse_ask_act(
        ctx,
        fmt,
        resource_id=pod_id,
        action="stop",
        done="stopped",
        provider="runpod",
        refusals=refusals,
        problems=problems,
        waivers=Waivers.of(allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner),
        plan=[
            f"stop {pod_id}: {_pod_words(pod, inventory.read_at)}",
            "its disk and what it holds stay, and keep billing until the pod is terminated",
        ],
        yes=yes,
        act=lambda: _runpod_fields(runpod_act.stop_pod(client, pod_id)),
    )


@runpod_pods.command("terminate")
def runpod_pods_terminate(
    ctx: typer.Context,
    pod_id: str,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    yes: Yes = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Terminate a pod: shows what goes and what stays, and asks. Its own disk goes; network volumes it mounts
    stay. Refuses a locked pod; one outside the scope or someone else's needs the override that names it."""
    fmt = output_format(ctx, output, as_json)
    check_provider_id(pod_id, "RunPod pod id")
    client, inventory, pod = _hand_pod(pod_id, "terminated")
    refusals, problems = _pod_refusals_and_problems(pod)
    plan = [f"terminate {pod_id}: {_pod_words(pod, inventory.read_at)}"]
    plan.append("its own disk and what it holds are gone for good")
    if pod.network_volume_ids:
        plan.append(f"kept: network volume {', '.join(pod.network_volume_ids)} (billed until deleted)")
    refuse_ask_act(
        ctx,
        fmt,
        resource_id=pod_id,
        action="terminate",
        done="terminated",
        provider="runpod",
        refusals=refusals,
        problems=problems,
        waivers=Waivers.of(allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner),
        plan=plan,
        yes=yes,
        act=lambda: {
            **_runpod_fields(runpod_act.terminate_pod(client, pod_id)),
            "kept_network_volumes": list(pod.network_volume_ids),
        },
    )


def _outcome_words(resource_id: str, done: str, result: dict[str, Any]) -> str:
    if result["outcome"] == "done":
        return f"{done} {resource_id}"
    if result["outcome"] in ("already-done", "gone"):
        return f"{resource_id} was already {done}" + (f" ({result['detail']})" if result.get("detail") else "")
    if result["outcome"] == "not-confirmed":
        return f"asked RunPod: {resource_id} not yet {done} when read back"
    return f"{resource_id} not {done}: {result.get('detail') or 'the provider refused'}"


VOLUME_COLUMNS = (
    Col("network volume", ESSENTIAL, whole=True),
    Col("size", 95, whole=True, justify="right"),
    Col("mounted by", 90, min_width=12),
    Col("owner", 80, min_width=8),
    Col("data centre", 70, whole=True),
    Col("name", 60, min_width=12),
    Col("scope", 50, whole=True),
)


@runpod_volumes.command("list")
def runpod_volumes_list(ctx: typer.Context, as_json: AsJson = False, output: Output = None) -> None:
    """Network volumes: size, data centre, the pods that mount them, owner by the name and scope."""
    fmt = output_format(ctx, output, as_json)
    _client, _settings, inventory = _runpod_account()
    rows: list[dict[str, Any]] = [
        {
            "volume_id": v.resource_id,
            "name": v.name,
            "status": "readable",
            "size_gb": v.volume.size_gib,
            "data_center": v.data_center,
            "mounted_by": list(v.mounted_by),
            "owner": v.owner,
            "in_scope": v.in_scope,
            "problem": None,
        }
        for v in sorted(inventory.volumes, key=lambda v: v.resource_id)
    ]
    rows += _unreadable_rows(_runpod_unreadable(inventory, "volume"), "volume_id")

    def show() -> None:
        print_table(
            console,
            "RunPod network volumes",
            VOLUME_COLUMNS,
            [
                [
                    r["volume_id"],
                    f"{r['size_gb']} GB" if r.get("size_gb") is not None else "unreadable",
                    ", ".join(r.get("mounted_by") or []) or "-",
                    r.get("owner") or "-",
                    r.get("data_center") or "-",
                    r.get("name") or "-",
                    "-" if r.get("problem") else "in" if r.get("in_scope") else "out",
                ]
                for r in rows
            ],
        )
        if not inventory.mounts_known:
            console.print(Text("a pod is unreadable: what it mounts is unknown", style="yellow"))
        _problem_lines(rows, "volume_id")

    emit(fmt, rows, show)


@runpod_volumes.command("delete")
def runpod_volumes_delete(
    ctx: typer.Context,
    volume_id: str,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    yes: Yes = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Delete a network volume and its data: shows it and asks. Refuses one a pod or a serverless endpoint mounts
    (or might: an unreadable pod or endpoint); one outside the scope or someone else's needs the override that names
    it."""
    fmt = output_format(ctx, output, as_json)
    check_provider_id(volume_id, "RunPod network volume id")
    client, _settings, inventory = _runpod_account()
    refuse_unreadable(volume_id, "deleted", "RunPod", _runpod_unreadable(inventory, "volume"))
    volume = next((v for v in inventory.volumes if v.resource_id == volume_id), None)
    if volume is None:
        raise NotFound(f"no RunPod network volume {volume_id} (RUNPOD_API_KEY's account lists none by that id)")
    refusals = []
    if volume.mounted_by:
        refusals.append(f"pod {', '.join(volume.mounted_by)} mounts it: terminate that pod first")
    unread = [label for label, _problem in _runpod_unreadable(inventory, "instance")]
    if unread:
        refusals.append(f"pod {', '.join(unread)} is unreadable, so whether it mounts this volume is unknown")
    if volume.endpoint_mounts:
        endpoints = ", ".join(volume.endpoint_mounts)
        refusals.append(f"serverless endpoint {endpoints} mounts it: take it off that endpoint first")
    refusals += [
        f"{problem}, so whether a serverless endpoint mounts it is unknown" for problem in inventory.endpoint_problems
    ]
    problems = hand_problems(
        in_scope=volume.in_scope,
        holder=volume.owner,
        me=person(os.environ),
        prefix_variable=RUNPOD_PREFIX,
        ids_variable=RUNPOD_IDS,
    )
    owner = f"owner {one_line(volume.owner, 64)} by its name" if volume.owner else "no owner in its name"
    refuse_ask_act(
        ctx,
        fmt,
        resource_id=volume_id,
        action="delete",
        done="deleted",
        provider="runpod",
        refusals=refusals,
        problems=problems,
        waivers=Waivers.of(allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner),
        plan=[
            f"delete {volume_id}: {one_line(volume.name, _NAME)!r}, {volume.volume.size_gib} GB in "
            f"{one_line(volume.data_center, 32)}, no pod or serverless endpoint mounts it, {owner}, "
            f"{_scope_words(volume.in_scope, RUNPOD_PREFIX, RUNPOD_IDS)}",
            "its data is gone for good",
        ],
        yes=yes,
        act=lambda: _runpod_fields(runpod_act.delete_network_volume(client, volume_id)),
    )


# ------------------------------------------------------------------------------------------------ Lyceum

LYCEUM_PREFIX, LYCEUM_IDS = "TRAINCTL_LYCEUM_NAME_PREFIX", "TRAINCTL_LYCEUM_IDS"


def _lyceum_account() -> tuple[LyceumClient, LyceumSettings, LyceumInventory]:
    settings = load_lyceum_settings(os.environ)
    client = LyceumClient.connect(settings.lyceum_api_url, os.environ.get(LYCEUM_KEY_VARIABLE), patience_s=PATIENCE_S)
    with refused_key_in_words("lyceum"):
        return client, settings, read_inventory(client, settings, system_clock())


VM_COLUMNS = (
    Col("vm", ESSENTIAL, whole=True),
    Col("status", 95, whole=True),
    Col("per hour", ESSENTIAL, whole=True, justify="right"),
    Col("owner", 85, min_width=8),
    Col("age", 80, whole=True, justify="right"),
    Col("profile", 70, whole=True),
    Col("name", 60, min_width=12),
    Col("scope", 50, whole=True),
    Col("billed", 40, whole=True, justify="right"),
)


@lyceum_vms.command("list")
def lyceum_vms_list(ctx: typer.Context, as_json: AsJson = False, output: Output = None) -> None:
    """VMs: status, hardware profile, owner by the name, age and scope (Lyceum publishes no hourly price)."""
    fmt = output_format(ctx, output, as_json)
    _client, _settings, inventory = _lyceum_account()
    now = system_clock()
    rows: list[dict[str, Any]] = [
        {
            "vm_id": vm.vm_id,
            "name": vm.name,
            "status": vm.status,
            "hardware_profile": vm.instance.instance_type,
            "hourly_usd": vm.hourly_usd,
            "price_source": vm.price_source,
            "billed": vm.billed,
            "owner": vm.owner,
            "in_scope": vm.in_scope,
            "created_at": format_instant(vm.instance.launch_time),
            "age_hours": round((now - vm.instance.launch_time).total_seconds() / 3600, 1),
            "problem": None,
        }
        for vm in sorted(inventory.vms, key=lambda vm: vm.vm_id)
    ]
    rows += _unreadable_rows(_lyceum_unreadable(inventory, "vm"), "vm_id")

    def show() -> None:
        print_table(
            console,
            "Lyceum VMs",
            VM_COLUMNS,
            [
                [
                    r["vm_id"],
                    r["status"],
                    "-" if r.get("problem") else _usd(r.get("hourly_usd")),
                    r.get("owner") or "-",
                    _hours(r["age_hours"] * 3600) if r.get("age_hours") is not None else "-",
                    r.get("hardware_profile") or "-",
                    r.get("name") or "-",
                    "-" if r.get("problem") else "in" if r.get("in_scope") else "out",
                    "-" if r.get("billed") is None else f"{r['billed']:g}",
                ]
                for r in rows
            ],
        )
        _problem_lines(rows, "vm_id")

    emit(fmt, rows, show)


@lyceum_vms.command("terminate")
def lyceum_vms_terminate(
    ctx: typer.Context,
    vm_id: str,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    yes: Yes = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Terminate a VM: shows it and asks. Its disk goes with it (Lyceum has no stop). One outside the scope or
    someone else's needs the override that names it; an unreadable one is refused."""
    fmt = output_format(ctx, output, as_json)
    check_provider_id(vm_id, "Lyceum VM id")
    client, _settings, inventory = _lyceum_account()
    refuse_unreadable(vm_id, "terminated", "Lyceum", _lyceum_unreadable(inventory, "vm"))
    vm = next((v for v in inventory.vms if v.vm_id == vm_id), None)
    if vm is None or vm.status == "terminated":
        raise NotFound(f"no Lyceum VM {vm_id} (LYCEUM_API_KEY's organisation lists none by that id)")
    problems = hand_problems(
        in_scope=vm.in_scope,
        holder=vm.owner,
        me=person(os.environ),
        prefix_variable=LYCEUM_PREFIX,
        ids_variable=LYCEUM_IDS,
    )
    owner = f"owner {one_line(vm.owner, 64)} by its name" if vm.owner else "no owner in its name"
    age = _hours((system_clock() - vm.instance.launch_time).total_seconds())
    refuse_ask_act(
        ctx,
        fmt,
        resource_id=vm_id,
        action="terminate",
        done="terminated",
        provider="lyceum",
        refusals=[],
        problems=problems,
        waivers=Waivers.of(allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner),
        plan=[
            f"terminate {vm_id}: {one_line(vm.name, _NAME)!r}, {vm.status}, "
            f"{one_line(vm.instance.instance_type, 32)}, made {age} ago, {owner}, "
            f"{_scope_words(vm.in_scope, LYCEUM_PREFIX, LYCEUM_IDS)}",
            "its disk and what it holds are gone for good (Lyceum has no stop that keeps them)",
        ],
        yes=yes,
        act=lambda: _lyceum_fields(lyceum_act.terminate_vm(client, vm_id)),
    )


RUN_COLUMNS = (
    Col("run", ESSENTIAL, whole=True),
    Col("status", 95, whole=True),
    Col("running for", 90, whole=True, justify="right"),
    Col("profile", 70, whole=True),
    Col("file", 60, min_width=12),
    Col("scope", 50, whole=True),
)


@lyceum_runs.command("list")
def lyceum_runs_list(ctx: typer.Context, as_json: AsJson = False, output: Output = None) -> None:
    """Live serverless runs: status, time since submission, hardware profile, file and scope."""
    fmt = output_format(ctx, output, as_json)
    _client, _settings, inventory = _lyceum_account()
    now = system_clock()
    rows: list[dict[str, Any]] = [
        {
            "run_id": run.run_id,
            "status": run.status,
            "created_at": format_instant(run.started),
            "running_hours": round((now - run.started).total_seconds() / 3600, 1),
            "hardware_profile": run.hardware_profile,
            "file_name": run.file_name,
            "in_scope": run.in_scope,
            "problem": None,
        }
        for run in sorted(inventory.runs, key=lambda run: run.run_id)
    ]
    rows += _unreadable_rows(_lyceum_unreadable(inventory, "run"), "run_id")

    def show() -> None:
        print_table(
            console,
            "Lyceum runs",
            RUN_COLUMNS,
            [
                [
                    r["run_id"],
                    r["status"],
                    _hours(r["running_hours"] * 3600) if r.get("running_hours") is not None else "-",
                    r.get("hardware_profile") or "-",
                    r.get("file_name") or "-",
                    "-" if r.get("problem") else "in" if r.get("in_scope") else "out",
                ]
                for r in rows
            ],
        )
        _problem_lines(rows, "run_id")

    emit(fmt, rows, show)


@lyceum_runs.command("abort")
def lyceum_runs_abort(
    ctx: typer.Context,
    run_id: str,
    allow_out_of_scope: AllowOutOfScope = False,
    yes: Yes = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Abort a live run: shows it and asks. One outside the scope needs --allow-out-of-scope; an unreadable one is
    refused."""
    fmt = output_format(ctx, output, as_json)
    check_provider_id(run_id, "Lyceum run id")
    client, _settings, inventory = _lyceum_account()
    refuse_unreadable(run_id, "aborted", "Lyceum", _lyceum_unreadable(inventory, "run"))
    run = next((r for r in inventory.runs if r.run_id == run_id), None)
    if run is None:
        raise NotFound(f"no live Lyceum run {run_id} (LYCEUM_API_KEY's organisation lists none live by that id)")
    problems = hand_problems(
        in_scope=run.in_scope, holder=None, me=None, prefix_variable=LYCEUM_PREFIX, ids_variable=LYCEUM_IDS
    )
    refuse_ask_act(
        ctx,
        fmt,
        resource_id=run_id,
        action="abort",
        done="aborted",
        provider="lyceum",
        refusals=[],
        problems=problems,
        waivers=Waivers.of(allow_out_of_scope=allow_out_of_scope),
        plan=[
            f"abort {run_id}: {one_line(run.file_name, _NAME)!r}, {run.status} on "
            f"{one_line(run.hardware_profile, 32)}, submitted {format_instant(run.started)}, "
            f"{_scope_words(run.in_scope, LYCEUM_PREFIX, LYCEUM_IDS)}",
            "a hard stop: what it has not written out is lost",
        ],
        yes=yes,
        act=lambda: _lyceum_fields(lyceum_act.abort_run(client, run_id)),
    )
