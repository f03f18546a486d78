"""`trainctl sweep`, `cost`, `prewarm` and `invoke`: the automation's own runs, from a terminal.

What can be checked locally is checked first (options, regions, settings, the function's name, the event), so a
mistake fails at once rather than after a network timeout.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from botocore.exceptions import NoRegionError
from pydantic import ValidationError
from rich.text import Text

from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.environment import check_settings, person
from trainctl.cli.errors import describe_validation, humanise
from trainctl.cli.local_run import check_event, check_function, invoke_handler
from trainctl.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    AsJson,
    Output,
    OutputFormat,
    console,
    emit,
    fail,
    note,
    output_format,
    state_of,
    warn,
)
from trainctl.cli.prewarm_run import (
    DEFAULT_TIMEOUT_SECONDS,
    EMULATOR_STALL_SECONDS,
    follow,
    in_flags,
    interrupted,
    refusal,
    start_prewarm,
)
from trainctl.cli.render import print_cost, print_result, print_sweep, result_csv_rows, sweep_csv_rows
from trainctl.cli.server_clock import server_time
from trainctl.cli.session import check_regions, factory_of
from trainctl.core import names
from trainctl.core.clock import Clock, fixed_clock, parse_instant
from trainctl.core.durations import InvalidDuration, format_duration, parse_duration
from trainctl.core.errors import TrainctlError
from trainctl.core.settings import CostSettings, SweepSettings
from trainctl.core.text import one_line
from trainctl.cost.run import (
    CostEffects,
    CostResult,
    ProviderCosts,
    has_price_list_api,
    price_book_for,
    run_cost_check,
)
from trainctl.cost.store import DynamoDbCostStore
from trainctl.prewarm.rules import InvalidRequest, parse_request
from trainctl.sweep.rules import SweepPlan
from trainctl.sweep.run import SweepResult, effects_for, run_sweep

if TYPE_CHECKING:
    from trainctl.providers.sweep import ProviderSweepResult

# Sweep or cost settings: both carry the regions a command runs in.
RegionalSettings = TypeVar("RegionalSettings", SweepSettings, CostSettings)

Regions = Annotated[
    list[str] | None, typer.Option("--region", help="Region; repeat for more (default: AWS_REGION, the profile's).")
]
Region = Annotated[
    list[str] | None, typer.Option("--region", help="Region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's).")
]


PAST_TOLERANCE = timedelta(minutes=5)


def _instant(at: str | None) -> datetime | None:
    try:
        return parse_instant(at) if at else None
    except ValueError as exc:
        raise fail(f"--at {at}: not an ISO-8601 instant such as 2027-01-31T09:00:00Z ({exc})", EXIT_USAGE) from exc


def home_factory(ctx: typer.Context, regions: tuple[str, ...], environ: dict[str, str]) -> ClientFactory:
    """The factory whose home region is the first --region, else the AWS environment's, else TRAINCTL_REGIONS'."""
    configured = [r.strip() for r in environ.get("TRAINCTL_REGIONS", "").split(",") if r.strip()]
    factory = factory_of(ctx, regions[0] if regions else None)
    if factory.default_region:
        return factory
    if configured:
        return factory_of(ctx, configured[0])
    raise NoRegionError()


def now_from_aws(ctx: typer.Context, factory: ClientFactory, region: str | None) -> Clock:
    """The laptop's clock, or AWS's where they differ by more than a minute (then said on stderr)."""
    measured = server_time(factory, state_of(ctx).local_clock, region)
    message = measured.message()
    if message:
        note(ctx, message, style="yellow")
    return measured.clock


def sweep_once(factory: ClientFactory, settings: SweepSettings, clock: Clock, environ: dict[str, str]) -> SweepResult:
    resources = None
    if not settings.dry_run:
        # Only enforcement needs the ledger, topic and document; a dry-run makes no write call at all.
        resources = stack_resources.resolve(factory, environ, settings.regions)
        if resources is None:
            raise TrainctlError(
                f"stack {names.STACK_NAME} is not deployed here: --enforce needs its ledger. "
                "Run without --enforce for a read-only preview."
            )
        settings = settings.model_copy(
            update={
                "ledger_table": resources.ledger_table,
                "topic_arn": resources.topic_arn,
                "training_document": resources.training_document,
            }
        )
    effects = effects_for(factory, settings)
    return run_sweep(factory, settings, clock, ledger=effects.ledger, notifier=effects.notifier, lease=effects.lease)


def sweep(
    ctx: typer.Context,
    region: Regions = None,
    enforce: Annotated[bool, typer.Option(help="Act: mark, unmark, delete, stop, terminate.")] = False,
    at: Annotated[str | None, typer.Option(help="Preview the sweep at a future ISO-8601 instant.")] = None,
    ignore_min_age: Annotated[
        bool,
        typer.Option(
            "--ignore-min-age",
            help="Treat young resources as old enough (never trainctl:persistent or any other protection).",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", hidden=True, help="Deprecated: the same as --ignore-min-age.")
    ] = False,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="aws, runpod or lyceum; repeat for more (default: AWS and every configured provider).",
        ),
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account", help="A covered account to sweep through its spoke role; repeat for more.", metavar="ID"
        ),
    ] = None,
    all_accounts: Annotated[
        bool, typer.Option("--all-accounts", help="Every account the organization settings cover (TRAINCTL_ORG_*).")
    ] = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Find forgotten instances, volumes and snapshots (and RunPod's and Lyceum's pods, volumes, VMs and runs);
    dry-run unless --enforce."""
    fmt = output_format(ctx, output, as_json)
    regions = check_regions(region)
    if at and enforce:
        raise fail("--at previews a moment and cannot be combined with --enforce", EXIT_USAGE)
    instant = _instant(at)
    # A laptop's clock may be minutes off AWS's; an instant further back than that is in the past for any clock.
    if instant is not None and instant < state_of(ctx).local_clock() - PAST_TOLERANCE:
        raise fail(f"--at {at}: in the past; a sweep previews now or a future moment", EXIT_USAGE)
    if force:
        warn("--force is deprecated here: it means --ignore-min-age")
        ignore_min_age = True
    environ = dict(os.environ)
    check_settings(environ)
    if account or all_accounts:
        # Cold start: the organization's code loads only when accounts are swept.
        from trainctl.cli.organization import check_accounts, exit_for, print_organization_sweep, sweep_organization

        if account and all_accounts:
            raise fail("--account and --all-accounts: give one or the other", EXIT_USAGE)
        if set(provider or ()) - {"aws"}:
            raise fail("--account and --all-accounts sweep AWS accounts only: leave out --provider", EXIT_USAGE)
        accounts = check_accounts(account)
        settings = SweepSettings.from_env(environ, regions=regions or None, dry_run=not enforce)
        if ignore_min_age:
            settings = settings.model_copy(update={"min_age": timedelta(0)})
        factory, settings, clock = _where_and_when(ctx, regions, environ, settings, instant)
        payload, children = sweep_organization(factory, settings, clock, environ, accounts=accounts, regions=regions)
        title = "trainctl sweep (organization, dry-run)" if settings.dry_run else "trainctl sweep (organization)"
        rows = [{k: v for k, v in c.items() if k not in ("summary", "owners", "notes")} for c in children]
        emit(fmt, payload, lambda: print_organization_sweep(children, title), rows=rows)
        exit_for(children)
        return
    swept = providers_to_sweep(provider, environ)
    settings = SweepSettings.from_env(environ, regions=regions or None, dry_run=not enforce)
    if ignore_min_age:
        settings = settings.model_copy(update={"min_age": timedelta(0)})
    factory, settings, clock = _where_and_when(ctx, regions, environ, settings, instant)
    aws_result = sweep_once(factory, settings, clock, environ) if "aws" in swept else None
    others = [provider_sweep_once(name, factory, settings, clock, environ) for name in swept if name != "aws"]
    result = combined_sweep(aws_result, others, settings, clock)
    shown = result.to_json() if not others else {**result.to_json(), "providers": [_provider_line(o) for o in others]}
    emit(
        fmt,
        shown,
        lambda: print_sweep(console, result, "trainctl sweep", quiet=state_of(ctx).quiet),
        rows=sweep_csv_rows(result),
    )
    errors = [o.error for o in others if o.error]
    for error in errors:
        warn(error)
    if errors or any(d.outcome == "failed" for d in result.decisions):
        raise typer.Exit(EXIT_FAILED)


PROVIDERS = ("aws", "runpod", "lyceum")


def providers_to_sweep(asked: list[str] | None, environ: dict[str, str]) -> tuple[str, ...]:
    """The providers asked for, each checked to be configured; by default AWS and every configured provider."""
    # Providers' settings load here, not at module level: an AWS-only command's cold start does not grow.
    from trainctl.lyceum.settings import load_lyceum_settings
    from trainctl.providers.keys import KEY_VARIABLES
    from trainctl.runpod.settings import RunpodSettings

    scopes = {
        "runpod": (RunpodSettings.from_env(environ).scoped, "TRAINCTL_RUNPOD_NAME_PREFIX or TRAINCTL_RUNPOD_IDS"),
        "lyceum": (load_lyceum_settings(environ).configured, "TRAINCTL_LYCEUM_NAME_PREFIX or TRAINCTL_LYCEUM_IDS"),
    }

    def has_key(name: str) -> bool:
        return bool(environ.get(KEY_VARIABLES[name], "").strip())

    if not asked:
        return ("aws", *(name for name, (scoped, _) in scopes.items() if scoped and has_key(name)))
    for name in asked:
        if name not in PROVIDERS:
            raise fail(f"--provider {one_line(name, 40)}: use aws, runpod or lyceum", EXIT_USAGE)
        if name != "aws" and not scopes[name][0]:
            raise fail(f"--provider {name}: nothing of it is in scope: set {scopes[name][1]}", EXIT_USAGE)
        if name != "aws" and not has_key(name):
            raise fail(f"--provider {name}: no API key: set {KEY_VARIABLES[name]}", EXIT_USAGE)
    return tuple(dict.fromkeys(asked))


def provider_sweep_once(
    name: str, factory: ClientFactory, settings: SweepSettings, clock: Clock, environ: dict[str, str]
) -> ProviderSweepResult:
    """One provider's sweep with its key from the environment; its failure is its own line, never the AWS sweep's."""
    # Loaded only when a provider is swept: an AWS-only command's cold start does not grow.
    from trainctl.aws.notifications import SnsNotifier
    from trainctl.providers.dispatch import provider_settings, run_provider_sweep
    from trainctl.providers.keys import key_from_environment
    from trainctl.providers.sweep import ProviderLedger, failed_sweep

    try:
        if not settings.dry_run:
            resources = stack_resources.resolve(factory, environ, settings.regions)
            if resources is None:
                raise TrainctlError(
                    f"{name}: stack {names.STACK_NAME} is not deployed here: --enforce needs its ledger"
                )
            settings = settings.model_copy(
                update={"ledger_table": resources.ledger_table, "topic_arn": resources.topic_arn}
            )
        ledger = ProviderLedger(factory.dynamodb(), settings.ledger_table, name)
        topic = settings.topic_arn
        notifier = SnsNotifier(factory.sns(), topic) if topic and not settings.dry_run else None
        key = key_from_environment(environ, name)
        chosen = provider_settings(name, environ)
        return run_provider_sweep(name, chosen, key, settings, clock, ledger=ledger, notifier=notifier)
    except TrainctlError as exc:
        return failed_sweep(name, settings, clock(), exc)


def combined_sweep(
    aws: SweepResult | None, others: list[ProviderSweepResult], settings: SweepSettings, clock: Clock
) -> SweepResult:
    """One result in today's shape: the AWS sweep's, with each provider's decisions, counts and notes after it."""
    parts = ([aws] if aws is not None else []) + [o.result for o in others]
    if aws is not None and not others:
        return aws
    at = parts[0].at if parts else clock()
    plan = SweepPlan(
        at=at,
        decisions=tuple(d for part in parts for d in part.plan.decisions),
        scanned=sum(part.plan.scanned for part in parts),
        in_scope=sum(part.plan.in_scope for part in parts),
        warnings=tuple(w for part in parts for w in part.plan.warnings),
    )
    return SweepResult(
        sweep_id=",".join(part.sweep_id for part in parts),
        dry_run=settings.dry_run,
        at=at,
        regions=(*(aws.regions if aws is not None else ()), *(o.provider for o in others)),
        plan=plan,
        decisions=tuple(d for part in parts for d in part.decisions),
        recorded=all(part.recorded for part in parts),
        notified=any(part.notified for part in parts),
        notes=tuple(n for part in parts for n in part.notes),
    )


def _provider_line(result: ProviderSweepResult) -> dict[str, object]:
    return {
        "provider": result.provider,
        "sweep_id": result.result.sweep_id,
        "error": result.error,
        "recorded": result.result.recorded,
        "notified": result.result.notified,
        "summary": result.result.summary(),
    }


def cost(
    ctx: typer.Context,
    region: Regions = None,
    at: Annotated[str | None, typer.Option(help="Estimate at another ISO-8601 instant (accumulated cost).")] = None,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="aws, runpod or lyceum; repeat for more (default: AWS and every configured provider).",
        ),
    ] = None,
    account: Annotated[
        list[str] | None,
        typer.Option(
            "--account", help="A covered account to price through its spoke role; repeat for more.", metavar="ID"
        ),
    ] = None,
    all_accounts: Annotated[
        bool, typer.Option("--all-accounts", help="Every account the organization settings cover (TRAINCTL_ORG_*).")
    ] = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Estimate the money burning now: per hour, per day, and per resource since it was made (AWS, RunPod and
    Lyceum)."""
    fmt = output_format(ctx, output, as_json)
    regions = check_regions(region)
    instant = _instant(at)
    environ = dict(os.environ)
    check_settings(environ)
    if account or all_accounts:
        cost_accounts(ctx, fmt, account, all_accounts, provider, regions, environ, instant)
        return
    priced = providers_to_sweep(provider, environ)
    factory, settings, clock = _where_and_when(
        ctx, regions, environ, CostSettings.from_env(environ, regions=regions or None), instant
    )
    others = [provider_costs_once(name, environ, clock()) for name in priced if name != "aws"]
    result = cost_once(factory, settings, clock, environ, providers=others, aws="aws" in priced)
    emit(
        fmt,
        result.to_json(),
        lambda: print_cost(console, result, "trainctl cost", quiet=state_of(ctx).quiet),
        rows=result.to_json()["resources"],
    )
    # As the sweep does: each provider that failed is one line, the rest is priced, and the exit says so.
    for error in result.provider_errors:
        warn(error)
    if result.provider_errors:
        raise typer.Exit(EXIT_FAILED)


def cost_accounts(
    ctx: typer.Context,
    fmt: OutputFormat,
    account: list[str] | None,
    all_accounts: bool,
    provider: list[str] | None,
    regions: tuple[str, ...],
    environ: dict[str, str],
    instant: datetime | None,
) -> None:
    """`cost --account ID` / `--all-accounts`: each account's burn through its spoke role, per account and owner."""
    # Cold start: the organization's code loads only when accounts are priced.
    from trainctl.cli.organization import (
        check_accounts,
        cost_organization,
        exit_for_cost,
        organization_settings,
        print_organization_cost,
    )

    if account and all_accounts:
        raise fail("--account and --all-accounts: give one or the other", EXIT_USAGE)
    if set(provider or ()) - {"aws"}:
        raise fail("--account and --all-accounts price AWS accounts only: leave out --provider", EXIT_USAGE)
    accounts = check_accounts(account)
    # No organization covered: said before anything is asked of AWS, its clock included.
    organization_settings(environ, regions)
    chosen = CostSettings.from_env(environ, regions=regions or None)
    factory, settings, clock = _where_and_when(ctx, regions, environ, chosen, instant)
    shown = cost_organization(factory, settings, clock, environ, accounts=accounts, regions=regions)
    rows = [{"account": a, **burn} for a, burn in shown["accounts"].items()]
    emit(fmt, shown, lambda: print_organization_cost(shown, "trainctl cost (organization)"), rows=rows)
    exit_for_cost(shown)


def provider_costs_once(name: str, environ: dict[str, str], at: datetime) -> ProviderCosts:
    """One provider priced with its key from the environment; its failure is its own line, never AWS's."""
    # Loaded only when a provider is priced: an AWS-only command's cold start does not grow.
    from trainctl.providers.cost import provider_costs
    from trainctl.providers.dispatch import provider_settings
    from trainctl.providers.keys import key_from_environment

    try:
        key = key_from_environment(environ, name)
        return provider_costs(name, provider_settings(name, environ), key, at)
    except TrainctlError as exc:
        return ProviderCosts(name, error=str(exc))


def cost_once(
    factory: ClientFactory,
    settings: CostSettings,
    clock: Clock,
    environ: dict[str, str],
    *,
    providers: list[ProviderCosts] | None = None,
    aws: bool = True,
) -> CostResult:
    """A report: reads the price table and state history where the stack has them, and alerts nobody."""
    resources = stack_resources.resolve(factory, environ, settings.regions)
    if resources is not None:
        settings = settings.model_copy(
            update={"ledger_table": resources.ledger_table, "price_table": resources.price_table}
        )
    book = price_book_for(
        factory, settings, clock, use_table=resources is not None, use_api=has_price_list_api(environ)
    )
    history = DynamoDbCostStore(factory.dynamodb(), settings.ledger_table) if resources is not None else None
    return run_cost_check(
        factory, settings, clock, book, CostEffects(history=history), providers=providers or (), aws=aws
    )


def _where_and_when(
    ctx: typer.Context,
    regions: tuple[str, ...],
    environ: dict[str, str],
    settings: RegionalSettings,
    instant: datetime | None,
) -> tuple[ClientFactory, RegionalSettings, Clock]:
    """The client factory, the settings in the session's region when none was asked for, and the clock (an
    instant given, else AWS's own time)."""
    factory = home_factory(ctx, regions, environ)
    if not regions and "TRAINCTL_REGIONS" not in environ and factory.default_region:
        settings = settings.model_copy(update={"regions": (factory.default_region,)})
    clock = fixed_clock(instant) if instant else now_from_aws(ctx, factory, settings.regions[0])
    return factory, settings, clock


def duration_option(name: str, value: str) -> timedelta:
    """A duration option (`--timeout 30m`): longer than 0s, or a one-line usage error naming the option."""
    try:
        parsed = parse_duration(value)
    except InvalidDuration as exc:
        raise fail(f"{name} {value}: {humanise(str(exc))}", EXIT_USAGE) from exc
    if parsed <= timedelta(0):
        raise fail(f"{name} {value}: must be longer than 0s", EXIT_USAGE)
    return parsed


@contextmanager
def progress_line(ctx: typer.Context, enabled: bool) -> Iterator[Any]:
    """A line that says what is being waited for: redrawn in place on a terminal, else printed once a minute."""
    if not enabled or state_of(ctx).quiet:
        yield None
        return
    if console.is_terminal:
        with console.status("starting", spinner="dots") as status:
            yield lambda text: status.update(Text(text, style="dim"))
        return
    last = [0.0]

    def every_minute(text: str) -> None:
        seconds = float(text.split("s", 1)[0] or 0)
        if seconds - last[0] >= 60:
            last[0] = seconds
            console.print(Text(f"  still waiting: {text.strip()}", style="dim"))

    yield every_minute


def prewarm(
    ctx: typer.Context,
    volume_id: Annotated[
        str | None, typer.Argument(help="The EBS volume to fill, e.g. vol-0123456789abcdef0 (not with --snapshot).")
    ] = None,
    s3_uri: Annotated[str | None, typer.Argument(help="What to copy onto it: s3://bucket/prefix/.")] = None,
    mount_point: Annotated[str, typer.Option(help="Where the worker mounts it while copying.")] = "/mnt/prewarm",
    instance_id: Annotated[
        str | None, typer.Option(help="Use this running instance (in the volume's zone) instead of a worker.")
    ] = None,
    snapshot_after: Annotated[
        bool, typer.Option("--snapshot-after", help="Snapshot the volume once it is filled, to restore it next time.")
    ] = False,
    allow_persistent: Annotated[
        bool, typer.Option("--allow-persistent", help="Fill a volume tagged trainctl:persistent (it is overwritten).")
    ] = False,
    snapshot: Annotated[
        str | None,
        typer.Option(
            "--snapshot",
            metavar="SNAPSHOT_ID",
            help="Instead of copying from S3: restore a new volume from this snapshot, initialised by EBS (no worker).",
        ),
    ] = None,
    zone: Annotated[str | None, typer.Option(help="With --snapshot: the new volume's zone, e.g. us-east-1a.")] = None,
    size: Annotated[
        int | None, typer.Option(help="With --snapshot: size in GiB (default: the snapshot's).", min=1, max=65536)
    ] = None,
    volume_type: Annotated[
        str, typer.Option("--type", help="With --snapshot: gp3, gp2, io1, io2, st1 or sc1.")
    ] = "gp3",
    initialization_rate: Annotated[
        int, typer.Option(help="With --snapshot: MiB/s at which EBS initialises the volume, 100 to 300.")
    ] = 300,
    timeout: Annotated[
        str, typer.Option(help="Stop following after this long, e.g. 30m or 6h (the workflow goes on).")
    ] = format_duration(timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)),
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Fill an EBS volume from S3, or restore one from a snapshot at a provisioned initialisation rate (--snapshot),
    with the pre-warm workflow, and follow it."""
    fmt = output_format(ctx, output, as_json)
    regions = check_regions(region, command="prewarm", single=True)
    limit = duration_option("--timeout", timeout)
    asked = _prewarm_request(
        volume_id, s3_uri, mount_point, instance_id, snapshot_after, snapshot, zone, size, volume_type,
        initialization_rate,
    )  # fmt: skip
    # Who asks, and whether a persistent volume may be overwritten: the workflow checks both against the volume.
    asked["owner"] = person(os.environ)
    asked["force"] = allow_persistent
    try:
        request = parse_request(asked)
    except InvalidRequest as exc:
        raise fail(in_flags(humanise(str(exc))), EXIT_USAGE) from exc
    factory = home_factory(ctx, regions, dict(os.environ))
    home = regions[0] if regions else factory.default_region
    resources = stack_resources.resolve(factory, os.environ, (home or "us-east-1",))
    if resources is None or not resources.prewarm_state_machine:
        raise TrainctlError(f"stack {names.STACK_NAME} with its pre-warm workflow is not deployed here")
    execution = start_prewarm(factory, resources.prewarm_state_machine, request)
    table = fmt == "table"
    if table:
        what = f"pre-warm of {volume_id} from {s3_uri}" if snapshot is None else f"restore of {snapshot} in {zone}"
        console.print(Text(f"{what}: {execution}"))
    stall = EMULATOR_STALL_SECONDS if stack_resources.is_emulator(os.environ) else None
    try:
        with progress_line(ctx, table) as on_wait:
            result = follow(
                factory,
                execution,
                console if table else None,
                timeout_seconds=limit.total_seconds(),
                stall_seconds=stall,
                on_wait=on_wait,
            )
    except KeyboardInterrupt:
        fail(interrupted(execution), EXIT_INTERRUPTED)
        # Not typer.Exit(130): the root command would add its own "interrupted" line to this one.
        raise SystemExit(EXIT_INTERRUPTED) from None
    _show_prewarm(fmt, result, execution, timeout)


def _prewarm_request(
    volume_id: str | None,
    s3_uri: str | None,
    mount_point: str,
    instance_id: str | None,
    snapshot_after: bool,
    snapshot: str | None,
    zone: str | None,
    size: int | None,
    volume_type: str,
    initialization_rate: int,
) -> dict[str, Any]:
    """The workflow's input from the command line: VOLUME_ID S3_URI, or --snapshot with --zone; never both."""
    if snapshot is None:
        if volume_id is None or s3_uri is None:
            raise fail("give VOLUME_ID and S3_URI to copy from S3, or --snapshot SNAPSHOT_ID --zone ZONE", EXIT_USAGE)
        return {
            "volume_id": volume_id,
            "s3_uri": s3_uri,
            "mount_point": mount_point,
            "instance_id": instance_id,
            "snapshot": snapshot_after,
        }
    if volume_id is not None or s3_uri is not None:
        raise fail("--snapshot restores a new volume: give no VOLUME_ID or S3_URI with it", EXIT_USAGE)
    if zone is None:
        raise fail("--snapshot needs --zone, the new volume's availability zone (e.g. us-east-1a)", EXIT_USAGE)
    spec = {"snapshot_id": snapshot, "zone": zone, "size_gib": size, "volume_type": volume_type}
    # The request's own checks name --instance-id and --snapshot-after if they come along: nothing runs on a worker.
    return {
        "volume": {**spec, "initialization_rate": initialization_rate},
        "instance_id": instance_id,
        "snapshot": snapshot_after,
    }


def _show_prewarm(fmt: Any, result: dict[str, Any], execution: str, timeout: str) -> None:
    """The final status (and what was measured), or one line in words for a refused request."""
    refused = result["status"] == "FAILED" and result["error"] == "InvalidRequest"

    def show() -> None:
        status = result["status"]
        line = Text(status, style="green" if status == "SUCCEEDED" else "red")
        line.append(f" after {result['state_transitions']} state transitions")
        if result["error"] and not refused:
            line.append(f": {result['error']}: {humanise(refusal(result['cause']))}")
        output = result["output"] if isinstance(result["output"], dict) else {}
        measured = (output.get("report") or {}).get("detail")
        if measured:
            volume = (output.get("plan") or {}).get("volume_id")
            line.append(f"; {volume}: {measured}" if volume else f"; {measured}")
        console.print(line)

    emit(fmt, result, show, rows={k: v for k, v in result.items() if k != "output"})
    if result["stalled"]:
        raise fail(f"stopped following {execution}: {result['stalled']}")
    if result["timed_out"]:
        raise fail(
            f"still {result['status']} after {timeout}: stopped following, the workflow goes on "
            f"(aws stepfunctions describe-execution --execution-arn {execution})"
        )
    if refused:
        raise fail(f"pre-warm refused: {humanise(refusal(result['cause'])).removeprefix('pre-warm request refused: ')}")
    if result["status"] != "SUCCEEDED":
        raise typer.Exit(EXIT_FAILED)


def check_prewarm_source(s3_uri: str) -> None:
    """The S3 URI a pre-warm will read, checked as the workflow will, before anything is created for it."""
    try:
        # Any well-formed volume id: only the URI is in question here.
        parse_request({"volume_id": "vol-0123456789abcdef0", "s3_uri": s3_uri})
    except InvalidRequest as exc:
        raise fail(humanise(str(exc)), EXIT_USAGE) from exc


def invoke(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(help="Function folder name, e.g. cleanup_sweep.")],
    event: Annotated[Path, typer.Option("--event", help="Event JSON file, e.g. events/cleanup_sweep/scheduled.json.")],
    region: Regions = None,
    logs: Annotated[
        bool, typer.Option("--logs", help="Show the handler's structured logs and metrics on stderr.")
    ] = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Run a Lambda handler locally: the same code as deployed."""
    fmt = output_format(ctx, output, as_json)
    regions = check_regions(region)
    try:
        check_function(function)
    except TrainctlError as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    try:
        payload = json.loads(event.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise fail(f"cannot read event {event}: {reason}", EXIT_USAGE) from exc
    try:
        check_event(function, payload)
    except ValueError as exc:  # InvalidEvent, InvalidRequest
        cause = exc.__cause__

        message = (
            describe_validation(cause, str(exc).split(":", 1)[0]) if isinstance(cause, ValidationError) else str(exc)
        )
        raise fail(f"{humanise(message)} (event {event})", EXIT_USAGE) from exc
    if regions:
        # The handler builds its own clients and reads its own settings, as in Lambda.
        os.environ["AWS_DEFAULT_REGION"] = regions[0]
        os.environ.setdefault("TRAINCTL_REGIONS", ",".join(regions))
    factory = home_factory(ctx, regions, dict(os.environ))
    result = invoke_handler(factory, function, payload, logs=logs)
    if not isinstance(result, dict):  # every handler returns an object; a bare value still prints as itself
        result = {"result": result}
    emit(
        fmt, result, lambda: print_result(console, result, f"trainctl invoke {function}"), rows=result_csv_rows(result)
    )
