"""`trainctl data plan` and `trainctl data loader`: choose how training reads its data, then write its loader.

Everything that can be refused is refused before the first AWS call: the dataset's form or size, the epochs, the
instance type (the price file and the data table must know it), the zone (it must lie in the region at hand).
A listing of millions of objects shows its progress on stderr; Ctrl-C stops it with one line and exit 130.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from botocore.exceptions import BotoCoreError, ClientError, NoRegionError
from rich.text import Text

from trainctl.cli.output import (
    EXIT_USAGE,
    AsJson,
    Output,
    console,
    emit,
    err_console,
    fail,
    note,
    output_format,
    state_of,
    warn,
)
from trainctl.cli.render import ESSENTIAL, Cell, Col, print_table
from trainctl.cli.session import check_regions, factory_of
from trainctl.core.accelerators import accelerators_for
from trainctl.core.settings import SweepSettings
from trainctl.cost.prices.price_file import load_price_file
from trainctl.data.loader import LOADER_STRATEGIES, LoaderRefused, choose, loader_script
from trainctl.data.rules import GB, GIB, Dataset, Plan, PlanRefused, check_inputs, plan
from trainctl.data.run import (
    DatasetUnreadable,
    dataset_prefix,
    ebs_prices,
    fleet_for,
    measure_dataset,
    past_cache_fills,
    past_prewarms,
)
from trainctl.data.table import load_data_table

data = typer.Typer(help="Data loading: plan the strategy for a dataset, then write the DataLoader for it.")

_SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>B|KB|MB|GB|TB|PB|KiB|MiB|GiB|TiB|PiB)?$", re.IGNORECASE)
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": GB,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": GIB,
    "tib": 2**40,
    "pib": 2**50,
}
PROGRESS_EVERY_SECONDS = 10.0  # off a terminal, one progress line this often


def parse_size(text: str) -> int:
    """'2TB', '50 GB', '500GiB' or a number of bytes; anything else is a refusal in words."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise PlanRefused(f"--size {text}: a size such as 50GB, 2TB or 500GiB (or a number of bytes)")
    unit = (match["unit"] or "b").lower()
    return int(float(match["number"]) * _UNITS[unit])


def seconds_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def usd_text(value: float | None) -> str:
    if value is None:
        return "unpriced"
    if not math.isfinite(value):
        return "-"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else "<$0.01"


def size_text(size: int) -> str:
    for unit, scale in (("TB", 10**12), ("GB", GB), ("MB", 10**6)):
        if size >= scale:
            return f"{size / scale:,.1f} {unit}"
    return f"{size:,} bytes"


PLAN_COLUMNS = (
    Col("strategy", ESSENTIAL, min_width=16),
    Col("1st epoch", ESSENTIAL, whole=True, justify="right"),
    Col("per epoch", 90, whole=True, justify="right"),
    Col("data path", 80, whole=True, justify="right"),
    Col("waiting", 70, whole=True, justify="right"),
    Col("total", ESSENTIAL, whole=True, justify="right"),
)


def plan_rows(result: Plan) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for e in result.estimates:
        mark = "* " if e.strategy == result.recommended else ""
        if not e.available:
            rows.append([Text(f"{mark}{e.label}", style="dim"), "no", "-", "-", "-", "-"])
            continue
        rows.append(
            [
                Text(f"{mark}{e.label}", style="bold" if mark else ""),
                seconds_text(e.first_epoch_seconds),
                seconds_text(e.epoch_read_seconds),
                usd_text(e.data_path_usd),
                usd_text(e.waiting_usd),
                usd_text(e.total_usd),
            ]
        )
    return rows


def print_plan(result: Plan, *, quiet: bool) -> None:
    d, f = result.dataset, result.fleet
    where = d.uri or "given size"
    console.print(
        Text(
            f"{where}: {size_text(d.size_bytes)} in {d.objects:,} objects; {result.epochs} epoch(s) on "
            f"{f.count} x {f.instance_type} in {f.zone} at ${f.hourly_usd:,.2f}/h each",
            style="bold",
        )
    )
    print_table(console, None, PLAN_COLUMNS, plan_rows(result))
    console.print(Text(f"recommended: {result.why}", style="bold green"))
    if quiet:
        return
    console.print(
        Text(
            "waiting: the fleet's hours before the first epoch plus every epoch's reads (as if no read overlapped "
            "compute), at the instance's hourly price; data path: what the strategy itself costs",
            style="dim",
        )
    )
    for e in result.estimates:
        if not e.available:
            console.print(Text(f"{e.label}: not possible: {e.why_not}", style="dim"))
            continue
        console.print(Text(f"{e.label}: " + "; ".join(e.assumptions), style="dim"))
        if e.unpriced:
            console.print(Text(f"  unpriced: {', '.join(e.unpriced)}", style="yellow"))
    console.print(
        Text(f"figures from the data table of {result.table_as_of} (trainctl/data/figures.json)", style="dim")
    )


class _Progress:
    """Objects and bytes listed so far: redrawn in place on a terminal, else a line every ten seconds."""

    def __init__(self, ctx: typer.Context) -> None:
        self.quiet = state_of(ctx).quiet
        self.status: Any = None
        self.last = time.monotonic()

    def __enter__(self) -> _Progress:
        if not self.quiet and err_console.is_terminal:
            self.status = err_console.status("listing the dataset", spinner="dots")
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(None, None, None)

    def __call__(self, objects: int, size: int) -> None:
        if self.quiet:
            return
        text = f"listed {objects:,} objects, {size_text(size)}"
        if self.status is not None:
            self.status.update(Text(text, style="dim"))
        elif time.monotonic() - self.last >= PROGRESS_EVERY_SECONDS:
            self.last = time.monotonic()
            err_console.print(Text(text, style="dim"), highlight=False)


def _home_region(region: list[str] | None) -> str | None:
    chosen = check_regions(region, command="data plan", single=True)
    if chosen:
        return chosen[0]
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None


@data.command("plan")
def data_plan(
    ctx: typer.Context,
    dataset: Annotated[
        str | None, typer.Argument(help="The dataset's s3://bucket/prefix/ (measured by a listing).", metavar="S3_URI")
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="The dataset's size instead of a listing: 50GB, 2TB, 500GiB.", metavar="SIZE")
    ] = None,
    objects: Annotated[int | None, typer.Option(help="How many objects it holds (with --size).")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs the training reads the dataset.")] = 1,
    instance_type: Annotated[
        str, typer.Option("--instance-type", help="The training instances' type, e.g. p5.48xlarge.", metavar="TYPE")
    ] = "",
    count: Annotated[int, typer.Option(help="How many instances train together.")] = 1,
    zone: Annotated[
        str | None, typer.Option(help="Their availability zone (default: the region's a zone).", metavar="ZONE")
    ] = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="Region (default: AWS_REGION).")] = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Compare the data-loading strategies for a dataset and a fleet, and recommend one, with the arithmetic."""
    fmt = output_format(ctx, output, as_json)
    if (dataset is None) == (size is None):
        raise fail("give the dataset's s3:// URI, or --size and --objects, not both", EXIT_USAGE)
    if size is not None and objects is None:
        raise fail("--size needs --objects: S3's request rate bounds a dataset of many small objects", EXIT_USAGE)
    if dataset is not None and objects is not None:
        raise fail("--objects goes with --size; a listed dataset is counted", EXIT_USAGE)
    if not instance_type:
        raise fail("--instance-type is needed, e.g. --instance-type p5.48xlarge", EXIT_USAGE)
    try:
        size_bytes = parse_size(size) if size is not None else 1
        check_inputs(size_bytes=size_bytes, objects=objects if objects is not None else 1, epochs=epochs, count=count)
        home = _home_region(region)
        defaulted = False
        if zone is None:
            if home is None:
                raise NoRegionError()
            zone = f"{home}a"
            defaulted = True
        table = load_data_table()
        prices = load_price_file()
        fleet = fleet_for(instance_type, count, zone, table, prices, home_region=home)
        if dataset is not None:
            dataset_prefix(dataset)  # the form, before the listing: a malformed URI makes no call
    except PlanRefused as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    factory = factory_of(ctx, fleet.region)
    if dataset is not None:
        try:
            with _Progress(ctx) as progress:
                measured = measure_dataset(factory.client("s3", fleet.region), dataset, progress=progress)
        except DatasetUnreadable as exc:
            raise fail(str(exc)) from None
    else:
        assert objects is not None
        measured = Dataset(size_bytes, objects)
    # Only resources in scope teach the plan: the scope tag as the sweep reads it.
    scope_tag = SweepSettings.from_env(os.environ).scope_tag
    try:
        past = past_prewarms(factory.ec2(fleet.region), scope_tag=scope_tag)
    except (ClientError, BotoCoreError) as exc:
        warn(f"past pre-warms could not be read, so none is learnt from: {exc}")
        past = None
    try:
        past_fills = past_cache_fills(factory.ec2(fleet.region), scope_tag=scope_tag, table=table)
    except (ClientError, BotoCoreError) as exc:
        warn(f"past cache fills could not be read, so none is learnt from: {exc}")
        past_fills = None
    result = plan(measured, fleet, epochs, table, ebs_prices(prices, fleet.region), past, past_fills)
    if defaulted:  # said once the plan stands, so that a refusal stays one line
        note(ctx, f"--zone not given: planning for {zone}")
    emit(fmt, result.to_json(), lambda: print_plan(result, quiet=state_of(ctx).quiet), rows=_csv_rows(result))


def _csv_rows(result: Plan) -> list[dict[str, Any]]:
    rows = []
    for estimate in result.estimates:
        row = estimate.to_json()
        row["recommended"] = estimate.strategy == result.recommended
        rows.append(row)
    return rows


@data.command("loader")
def data_loader(
    ctx: typer.Context,
    strategy: Annotated[
        str, typer.Option(help="prewarmed-ebs, existing-ebs, direct-s3 or local-cache.", metavar="STRATEGY")
    ] = "",
    dataset: Annotated[
        str, typer.Option(help="The s3:// URI (direct-s3, local-cache) or the volume's mount point.", metavar="WHERE")
    ] = "",
    instance_type: Annotated[
        str, typer.Option("--instance-type", help="The training instance's type, e.g. g5.xlarge.", metavar="TYPE")
    ] = "",
    objects: Annotated[int | None, typer.Option(help="Objects in the dataset (the plan's count).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Samples per batch.")] = 32,
    cache_dir: Annotated[
        str, typer.Option("--cache-dir", help="local-cache: where the cache lives.", metavar="PATH")
    ] = "/mnt/cache",
    script: Annotated[
        Path | None, typer.Option("--script", help="Write the script here (default: print it).", metavar="FILE")
    ] = None,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="The bucket's region (default: AWS_REGION).")
    ] = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Write a PyTorch DataLoader script for a strategy: plain Python you own, its assumptions in comments."""
    fmt = output_format(ctx, output, as_json)
    if strategy not in LOADER_STRATEGIES:
        raise fail(f"--strategy {strategy or '(none)'}: use {', '.join(LOADER_STRATEGIES)}", EXIT_USAGE)
    if not dataset:
        raise fail("--dataset is needed: an s3:// URI or a mount point", EXIT_USAGE)
    if not instance_type:
        raise fail("--instance-type is needed, e.g. --instance-type g5.xlarge", EXIT_USAGE)
    if objects is not None and objects < 1:
        raise fail("--objects: at least 1", EXIT_USAGE)
    facts = load_data_table().instances.get(instance_type)
    if facts is None:
        raise fail(f"--instance-type {instance_type}: the data table has no vCPU figures for it", EXIT_USAGE)
    home = _home_region(region)
    if home is None:
        raise NoRegionError()
    if script is not None and script.exists():
        raise fail(f"{script} exists already: nothing was written (remove it or choose another --script)", EXIT_USAGE)
    accelerators = accelerators_for(instance_type)
    try:
        choice = choose(
            strategy,
            dataset,
            facts=facts,
            accelerators=accelerators.count if accelerators else 0.0,
            region=home,
            objects=objects,
            batch_size=batch_size,
            cache_dir=cache_dir,
        )
    except LoaderRefused as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    text = loader_script(choice)
    if script is not None:
        script.write_text(text, encoding="utf-8")
        emit(fmt, {**choice.to_json(), "script": str(script)}, lambda: note(ctx, f"wrote {script}", style="green"))
        return
    emit(fmt, {**choice.to_json(), "script_text": text}, lambda: typer.echo(text, nl=False))
