"""`trainctl report`: what the sweeps did, read back from the ledger, per owner and in total, and why.

The aggregation is the report room's (trainctl.report: what is counted and how dollars avoided is estimated); this
module is the command and its rendering.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from trainctl.aws.observability import logger
from trainctl.cli import stack_resources
from trainctl.cli.automation import duration_option, home_factory
from trainctl.cli.environment import check_settings
from trainctl.cli.errors import humanise
from trainctl.cli.output import EXIT_USAGE, AsJson, Output, console, emit, fail, output_format, state_of
from trainctl.cli.render import ESSENTIAL, Cell, Col, action_text, print_table, usd
from trainctl.cli.session import check_regions
from trainctl.core import names
from trainctl.core.clock import Clock, format_instant, parse_instant
from trainctl.core.durations import InvalidDuration, parse_duration
from trainctl.core.errors import TrainctlError
from trainctl.core.settings import CostSettings
from trainctl.core.text import counted
from trainctl.cost.run import has_price_list_api, price_book_for
from trainctl.report.rules import EVADING_AFTER, NO_OWNER, Report, Tally, days_or_duration
from trainctl.report.run import build_report

DEFAULT_SINCE = "30d"
DEFAULT_NOTICED_AFTER = "7d"
# Rows of the per-resource table; the JSON lists them all.
SHOWN_ACTED = 20


# -------------------------------------------------------------------------------------------------- printing

OWNER_COLUMNS = (
    Col("owner", ESSENTIAL, min_width=10),
    Col("marked", 90, whole=True, justify="right"),
    Col("stopped", 90, whole=True, justify="right"),
    Col("terminated", 90, whole=True, justify="right"),
    Col("deleted", 90, whole=True, justify="right"),
    Col("kept", 90, whole=True, justify="right"),
    Col("avoided", ESSENTIAL, whole=True, justify="right"),
    Col("unpriced", 85, whole=True, justify="right"),
    Col("failed", 60, whole=True, justify="right"),
    Col("unmarked", 50, whole=True, justify="right"),
)
WHY_COLUMNS = (
    Col("why", ESSENTIAL, whole=True),
    Col("kind", 70, whole=True),
    Col("resources", ESSENTIAL, whole=True, justify="right"),
    Col("by owner", 80, min_width=20),
)
EVADING_COLUMNS = (
    Col("resource", ESSENTIAL, whole=True),
    Col("kept as", ESSENTIAL, whole=True),
    Col("owner", 90, min_width=10),
    Col("days", ESSENTIAL, whole=True, justify="right"),
    Col("since", 40, whole=True),
)
ACTED_COLUMNS = (
    Col("resource", ESSENTIAL, whole=True),
    Col("action", ESSENTIAL, whole=True),
    Col("avoided", ESSENTIAL, whole=True, justify="right"),
    Col("owner", 90, min_width=10),
    Col("what", 85, min_width=24),
    Col("per hour", 60, whole=True, justify="right"),
    Col("region", 30, whole=True),
    Col("at", 20, whole=True),
)


def _count(n: int) -> str:
    return str(n) if n else "-"


def _avoided_cell(each: Tally) -> Text:
    if not each.priced and not each.unpriced:
        return Text("-")
    return usd(each.avoided)


def owner_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    shown = list(report.owners) + ([report.total] if len(report.owners) != 1 else [])
    for each in shown:
        counted = each.to_json()
        row: list[Cell] = [
            each.owner,
            _count(counted["marked"]),
            _count(counted["stopped"]),
            _count(counted["terminated"]),
            _count(counted["deleted"]),
            _count(counted["kept"]),
            _avoided_cell(each),
            _count(counted["unpriced"]),
            _count(counted["failed"]),
            _count(counted["unmarked"]),
        ]
        if each is report.total:
            row = [Text(cell.plain if isinstance(cell, Text) else cell, style="bold") for cell in row]
        rows.append(row)
    return rows


def _why(each: Tally, kind: str) -> dict[str, set[str]]:
    return each.reasons if kind == "reason" else each.protections


def why_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for kind in ("reason", "protection"):
        for name, ids in sorted(_why(report.total, kind).items(), key=lambda item: (-len(item[1]), item[0])):
            owners = [(t.owner, len(_why(t, kind).get(name, ()))) for t in report.owners]
            by_owner = ", ".join(f"{owner} {n}" for owner, n in sorted(owners, key=lambda o: -o[1]) if n)
            rows.append([name, kind, str(len(ids)), by_owner])
    return rows


def acted_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for each in report.acted[:SHOWN_ACTED]:
        d = each.decision
        money = each.avoided_usd(report.hours)
        what = each.problem if each.hourly_usd is None else f"{each.description}; {each.source}"
        rows.append(
            [
                d.resource_id,
                action_text(d.action),
                usd(money),
                d.owner,
                what,
                usd(each.hourly_usd, 4),
                d.region,
                format_instant(d.at),
            ]
        )
    return rows


def evading_rows(report: Report) -> list[list[Cell]]:
    return [
        [
            e.resource_id,
            e.protection,
            e.owner,
            f"{(e.last_seen - e.first_seen).total_seconds() / 86400:.1f}",
            format_instant(e.first_seen),
        ]
        for e in report.evading
    ]


def headline(report: Report) -> Text:
    total = report.total
    line = Text("dollars avoided: ", style="bold")
    if not total.priced and not total.unpriced:
        line.append("nothing was stopped, terminated or deleted in the window")
        return line
    line.append(f"${total.avoided_usd:,.2f} (estimated)", style="bold")
    line.append(f" from {total.priced} of {total.priced + total.unpriced} stopped, terminated or deleted")
    if total.unpriced:
        line.append(f"; {total.unpriced} unpriced, so the total is low", style="red")
    return line


def print_report(console: Console, report: Report, title: str, *, quiet: bool = False) -> None:
    who = f" for {report.owner}" if report.owner else ""
    sweeps, decisions = counted(len(report.sweeps), "sweep"), counted(len(report.decisions), "decision")
    console.print(
        Text(
            f"{title}: {sweeps} and {decisions}{who} from "
            f"{format_instant(report.since)} ({report.window}) to {format_instant(report.until)}",
            style="bold",
        )
    )
    print_table(console, "per owner (resources; avoided is an estimate)", OWNER_COLUMNS, owner_rows(report))
    print_table(console, "why: the resources each reason and protection applied to", WHY_COLUMNS, why_rows(report))
    shown = min(len(report.acted), SHOWN_ACTED)
    more = f" (the {shown} largest of {len(report.acted)})" if len(report.acted) > shown else ""
    print_table(console, f"stopped, terminated and deleted{more}", ACTED_COLUMNS, acted_rows(report))
    if report.evading:
        print_table(
            console,
            f"kept for over {days_or_duration(EVADING_AFTER)} as unreadable or min-age: fix or tell their owners",
            EVADING_COLUMNS,
            evading_rows(report),
        )
    console.print(headline(report))
    if report.not_managed_by_ssm:
        console.print(
            Text(
                f"instances SSM does not manage: {report.not_managed_by_ssm}; an idle one is kept, never "
                "stopped (README: Instances SSM does not manage)",
                style="yellow",
            )
        )
    console.print(Text(f"the estimate: {report.assumption()}", style="dim"))
    if not quiet:
        lookups = ", ".join(f"{n} {link}" for link, n in sorted(report.lookups.items())) or "none"
        console.print(Text(f"price look-ups: {lookups}; price file as of {report.price_file_as_of}", style="dim"))
        console.print(Text(f"read: {report.read.how()}", style="dim"))
        if report.read.unreadable:
            unreadable = counted(report.read.unreadable, "ledger item")
            console.print(Text(f"{unreadable} could not be read as decisions", style="red"))


# ------------------------------------------------------------------------------------------------ the command


@contextmanager
def domain_logs_kept_off_stdout() -> Iterator[None]:
    """The price chain logs for Lambda, as JSON on stdout (a Price List API it may not call, say); here stdout
    carries the report alone, and what became of each price is in the report itself."""
    handler = logger.registered_handler
    before = handler.stream  # type: ignore[attr-defined]
    # Assigned, not setStream(): that flushes the previous stream (as trainctl invoke does).
    handler.stream = io.StringIO()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        handler.stream = before  # type: ignore[attr-defined]


def window_start(value: str, now: datetime) -> datetime:
    """--since: a duration back from now (30d), or an ISO-8601 instant."""
    try:
        return now - parse_duration(value)
    except InvalidDuration as duration_error:
        try:
            return parse_instant(value)
        except ValueError:
            raise fail(
                f"--since {value}: {humanise(str(duration_error))}, or an instant such as 2027-01-01T00:00:00Z",
                EXIT_USAGE,
            ) from duration_error


def report(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option(help="How far back: a duration (30d, 12h) or an ISO-8601 instant.")
    ] = DEFAULT_SINCE,
    owner: Annotated[str | None, typer.Option(help=f"Only this owner's resources ({NO_OWNER} for none).")] = None,
    noticed_after: Annotated[
        str,
        typer.Option(
            "--noticed-after",
            help="Dollars avoided assumes what a sweep stopped or deleted would have cost this long before someone "
            "noticed it.",
        ),
    ] = DEFAULT_NOTICED_AFTER,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="The ledger's region (default: AWS_REGION, the profile's).")
    ] = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """What the sweeps marked, stopped, terminated, deleted and kept, and why, per owner; dollars avoided."""
    fmt = output_format(ctx, output, as_json)
    regions = check_regions(region, command="report", single=True)
    clock: Clock = state_of(ctx).local_clock
    now = clock()
    start = window_start(since, now)
    if start >= now:
        raise fail(f"--since {since}: that is not in the past", EXIT_USAGE)
    noticed = duration_option("--noticed-after", noticed_after)
    if owner is not None and not owner.strip():
        raise fail("--owner needs a name", EXIT_USAGE)
    environ = dict(os.environ)
    check_settings(environ)
    settings = CostSettings.from_env(environ, regions=regions or None)
    factory = home_factory(ctx, regions, environ)
    home = regions[0] if regions else factory.default_region or settings.regions[0]
    resources = stack_resources.resolve(factory, environ, (home,))
    if resources is None:
        raise TrainctlError(f"stack {names.STACK_NAME} is not deployed here: there is no ledger to report on")
    settings = settings.model_copy(
        update={"ledger_table": resources.ledger_table, "price_table": resources.price_table}
    )
    book = price_book_for(factory, settings, clock, use_table=True, use_api=has_price_list_api(environ))
    with domain_logs_kept_off_stdout():
        result = build_report(
            factory,
            resources.ledger_table,
            book,
            since=start,
            until=now,
            window=since,
            owner=owner,
            noticed_after=noticed,
        )
    emit(
        fmt,
        result.to_json(),
        lambda: print_report(console, result, "trainctl report", quiet=state_of(ctx).quiet),
        rows=result.csv_rows(),
    )
