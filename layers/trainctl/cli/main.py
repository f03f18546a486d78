"""The `trainctl` command line: the same domain code as the Lambdas, against any AWS endpoint."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import types
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from trainctl.aws import stack_resources
from trainctl.aws.clients import ClientFactory
from trainctl.core import names
from trainctl.core.clock import fixed_clock, parse_instant, system_clock
from trainctl.core.errors import TrainctlError
from trainctl.core.settings import CostSettings, SweepSettings
from trainctl.cost.run import CostEffects, CostResult, has_price_list_api, price_book_for, run_cost_check
from trainctl.cost.store import DynamoDbCostStore
from trainctl.sweep.run import SweepResult, effects_for, run_sweep

app = typer.Typer(
    help="trainctl: a guardrail for ML training on AWS. Dry-run unless you say --enforce.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Wide enough for the decision tables when output goes to a pipe or a CI log.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


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


@app.command()
def sweep(
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
        factory = ClientFactory()
        if not region and "TRAINCTL_REGIONS" not in environ and factory.default_region:
            settings = settings.model_copy(update={"regions": (factory.default_region,)})
        result = sweep_once(factory, settings, instant, environ)
    except TrainctlError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        from trainctl.cli.render import print_sweep

        print_sweep(console, result, "trainctl sweep")
    if any(d.outcome == "failed" for d in result.decisions):
        raise typer.Exit(EXIT_FAILED)


@app.command()
def cost(
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
        factory = ClientFactory()
        if not region and "TRAINCTL_REGIONS" not in environ and factory.default_region:
            settings = settings.model_copy(update={"regions": (factory.default_region,)})
        result = cost_once(factory, settings, instant, environ)
    except TrainctlError as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
    else:
        from trainctl.cli.render import print_cost

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


@app.command()
def prewarm(
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
    from trainctl.cli.prewarm_run import follow, start_prewarm
    from trainctl.prewarm.rules import InvalidRequest, parse_request

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
        factory = ClientFactory()
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


@dataclass
class LocalContext:
    """What a Lambda context offers the handlers, for running them locally."""

    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:trainctl-local"
    aws_request_id: str = "local-invoke"
    timeout: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        self._deadline = datetime.now().timestamp() + self.timeout.total_seconds()

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - datetime.now().timestamp()) * 1000)


def load_handler(function: str) -> types.ModuleType:
    path = FUNCTIONS_DIR / function / "handler.py"
    if not function.isidentifier() or not path.is_file():
        known = sorted(p.name for p in FUNCTIONS_DIR.iterdir() if (p / "handler.py").is_file())
        raise TrainctlError(f"no function {function!r}; known: {', '.join(known)}")
    spec = importlib.util.spec_from_file_location(f"trainctl_functions.{function}.handler", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke_handler(function: str, event: Any) -> Any:
    """Run a handler in-process with the stack's resources wired in (or as a read-only preview)."""
    factory = ClientFactory()
    regions = SweepSettings.from_env(os.environ).regions
    resources = stack_resources.resolve(factory, os.environ, regions)
    if resources is None:
        os.environ["TRAINCTL_DRY_RUN"] = "true"
        err_console.print(
            f"[yellow]stack {names.STACK_NAME} is not deployed here: read-only preview, nothing recorded[/]"
        )
    else:
        os.environ.setdefault("TRAINCTL_LEDGER_TABLE", resources.ledger_table)
        os.environ.setdefault("TRAINCTL_TOPIC_ARN", resources.topic_arn)
        os.environ.setdefault("TRAINCTL_TRAINING_DOCUMENT", resources.training_document)
        os.environ.setdefault("TRAINCTL_PRICE_TABLE", resources.price_table)
        if resources.recovery_state_machine:
            os.environ.setdefault("TRAINCTL_RECOVERY_STATE_MACHINE_ARN", resources.recovery_state_machine)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "trainctl")
    module = load_handler(function)
    # Locally, the handler's structured logs and EMF lines go to stderr: stdout carries only the result.
    from trainctl.aws.observability import logger

    # Assigned, not setStream(): that flushes the previous stream, which may be closed by now.
    logger.registered_handler.stream = sys.stderr  # type: ignore[attr-defined]
    with contextlib.redirect_stdout(sys.stderr):
        return module.lambda_handler(event, LocalContext(function_name=f"trainctl-{function}"))


@app.command()
def invoke(
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
        result = invoke_handler(function, payload)
    except (TrainctlError, ValueError) as exc:
        raise fail(str(exc)) from exc
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        console.print_json(json.dumps(result, default=str))


@app.command()
def sandbox(
    as_json: Annotated[bool, typer.Option("--json", help="Print each sweep as JSON instead of tables.")] = False,
) -> None:
    """The whole guardrail on a local AWS emulator: seed a training fleet, sweep it dry-run, then enforced."""
    from trainctl.cli.sandbox_run import run_sandbox

    sys.exit(run_sandbox(console, as_json=as_json))


def _register_hand_commands() -> None:
    from trainctl.cli.commands import ebs, instances, resources, transfer_command

    app.add_typer(ebs, name="ebs")
    app.add_typer(instances, name="instances")
    app.add_typer(resources, name="resources")
    app.command("transfer")(transfer_command)


_register_hand_commands()


def run() -> None:
    app()


if __name__ == "__main__":
    run()
