"""`trainctl sweep`, `cost`, `prewarm` and `invoke`: the automation's own runs, from a terminal."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.local_run import invoke_handler
from trainctl.cli.output import EXIT_FAILED, EXIT_USAGE, console, factory_of, fail
from trainctl.cli.prewarm_run import follow, start_prewarm
from trainctl.cli.render import print_cost, print_sweep
from trainctl.core import names
from trainctl.core.clock import fixed_clock, parse_instant, system_clock
from trainctl.core.errors import TrainctlError
from trainctl.core.settings import CostSettings, SweepSettings
from trainctl.cost.run import CostEffects, CostResult, has_price_list_api, price_book_for, run_cost_check
from trainctl.cost.store import DynamoDbCostStore
from trainctl.prewarm.rules import InvalidRequest, parse_request
from trainctl.sweep.run import SweepResult, effects_for, run_sweep


def sweep_once(
    factory: ClientFactory, settings: SweepSettings, at: datetime | None, environ: dict[str, str]
) -> SweepResult:
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
    clock = fixed_clock(at) if at else system_clock
    effects = effects_for(factory, settings)
    return run_sweep(factory, settings, clock, ledger=effects.ledger, notifier=effects.notifier, lease=effects.lease)


def sweep(
    ctx: typer.Context,
    region: Annotated[list[str] | None, typer.Option("--region", help="Region to sweep; repeat for more.")] = None,
    enforce: Annotated[bool, typer.Option(help="Act: mark, unmark, delete, stop, terminate.")] = False,
    at: Annotated[str | None, typer.Option(help="Preview the sweep at a future ISO-8601 instant.")] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Ignore the minimum age (never trainctl:persistent or any other protection)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Find forgotten instances, volumes and snapshots; dry-run unless --enforce."""
    if at and enforce:
        raise fail("--at previews a moment and cannot be combined with --enforce", EXIT_USAGE)
    try:
        instant = parse_instant(at) if at else None
    except ValueError as exc:
        raise fail(f"--at {at!r} is not an ISO-8601 instant: {exc}", EXIT_USAGE) from exc
    environ = dict(os.environ)
    try:
        settings = SweepSettings.from_env(environ, regions=tuple(region) if region else None, dry_run=not enforce)
        if force:
            settings = settings.model_copy(update={"min_age": timedelta(0)})
        factory = factory_of(ctx)
        if not region and "TRAINCTL_REGIONS" not in environ and factory.default_region:
            settings = settings.model_copy(update={"regions": (factory.default_region,)})
        result = sweep_once(factory, settings, instant, environ)
    except TrainctlError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        print_sweep(console, result, "trainctl sweep")
    if any(d.outcome == "failed" for d in result.decisions):
        raise typer.Exit(EXIT_FAILED)


def cost(
    ctx: typer.Context,
    region: Annotated[list[str] | None, typer.Option("--region", help="Region to price; repeat for more.")] = None,
    at: Annotated[str | None, typer.Option(help="Estimate at another ISO-8601 instant (accumulated cost).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Estimate the money burning now: per hour, per day, and per resource since it was made."""
    try:
        instant = parse_instant(at) if at else None
    except ValueError as exc:
        raise fail(f"--at {at!r} is not an ISO-8601 instant: {exc}", EXIT_USAGE) from exc
    environ = dict(os.environ)
    try:
        settings = CostSettings.from_env(environ, regions=tuple(region) if region else None)
        factory = factory_of(ctx)
        if not region and "TRAINCTL_REGIONS" not in environ and factory.default_region:
            settings = settings.model_copy(update={"regions": (factory.default_region,)})
        result = cost_once(factory, settings, instant, environ)
    except TrainctlError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        print_cost(console, result, "trainctl cost")


def cost_once(
    factory: ClientFactory, settings: CostSettings, at: datetime | None, environ: dict[str, str]
) -> CostResult:
    """A report: reads the price table and state history where the stack has them, and alerts nobody."""
    resources = stack_resources.resolve(factory, environ, settings.regions)
    clock = fixed_clock(at) if at else system_clock
    if resources is not None:
        settings = settings.model_copy(
            update={"ledger_table": resources.ledger_table, "price_table": resources.price_table}
        )
    book = price_book_for(
        factory, settings, clock, use_table=resources is not None, use_api=has_price_list_api(environ)
    )
    history = DynamoDbCostStore(factory.dynamodb(), settings.ledger_table) if resources is not None else None
    return run_cost_check(factory, settings, clock, book, CostEffects(history=history))


def prewarm(
    ctx: typer.Context,
    volume_id: Annotated[str, typer.Argument(help="The EBS volume to fill, e.g. vol-0123456789abcdef0.")],
    s3_uri: Annotated[str, typer.Argument(help="What to copy onto it: s3://bucket/prefix/.")],
    mount_point: Annotated[str, typer.Option(help="Where the worker mounts it while copying.")] = "/mnt/prewarm",
    instance_id: Annotated[
        str | None, typer.Option(help="Use this running instance (in the volume's zone) instead of a worker.")
    ] = None,
    snapshot: Annotated[bool, typer.Option(help="Snapshot the volume once it is filled.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the final status and output as JSON.")] = False,
) -> None:
    """Fill an EBS volume from S3 (and initialise a restored one) with the pre-warm workflow, and follow it."""
    try:
        request = parse_request(
            {
                "volume_id": volume_id,
                "s3_uri": s3_uri,
                "mount_point": mount_point,
                "instance_id": instance_id,
                "snapshot": snapshot,
            }
        )
    except InvalidRequest as exc:
        raise fail(str(exc), EXIT_USAGE) from exc
    try:
        factory = factory_of(ctx)
        resources = stack_resources.resolve(factory, os.environ, (factory.default_region or "us-east-1",))
        if resources is None or not resources.prewarm_state_machine:
            raise TrainctlError(f"stack {names.STACK_NAME} with its pre-warm workflow is not deployed here")
        execution = start_prewarm(factory, resources.prewarm_state_machine, request)
        if not as_json:
            console.print(f"pre-warm of {volume_id} from {s3_uri}: {execution}")
        result = follow(factory, execution, None if as_json else console)
    except TrainctlError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        colour = "green" if result["status"] == "SUCCEEDED" else "red"
        console.print(
            f"[{colour}]{result['status']}[/] after {result['state_transitions']} state transitions"
            + (f": {result['error']}: {result['cause']}" if result["error"] else "")
        )
    if result["status"] != "SUCCEEDED":
        raise typer.Exit(EXIT_FAILED)


def invoke(
    ctx: typer.Context,
    function: Annotated[str, typer.Argument(help="Function folder name, e.g. cleanup_sweep.")],
    event: Annotated[Path, typer.Option("--event", help="Event JSON file, e.g. events/cleanup_sweep/scheduled.json.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the handler's result as JSON.")] = False,
) -> None:
    """Run a Lambda handler locally: the same code as deployed."""
    try:
        payload = json.loads(event.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise fail(f"cannot read event {event}: {exc}", EXIT_USAGE) from exc
    try:
        result = invoke_handler(factory_of(ctx), function, payload)
    except (TrainctlError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        console.print_json(json.dumps(result, default=str))
