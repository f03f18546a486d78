"""Readable terminal output for sweeps and cost reports (rich tables); --json output never goes through here."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from trainctl.cost.run import CostResult
from trainctl.sweep.run import SweepResult

_ACTION_STYLE = {
    "keep": "green",
    "mark": "yellow",
    "unmark": "cyan",
    "delete": "red",
    "terminate": "red",
    "stop": "magenta",
}


def sweep_table(result: SweepResult, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    for column in ("resource", "type", "region", "owner", "action", "reasons", "protections", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    for d in sorted(result.decisions, key=lambda d: (d.region, d.resource_type, d.resource_id)):
        style = _ACTION_STYLE.get(d.action, "")
        table.add_row(
            d.resource_id,
            d.resource_type,
            d.region,
            d.owner or "-",
            f"[{style}]{d.action}[/]" if style else d.action,
            ", ".join(d.reasons) or "-",
            ", ".join(d.protections) or "-",
            d.outcome,
            d.detail,
        )
    return table


def print_sweep(console: Console, result: SweepResult, title: str) -> None:
    console.print(sweep_table(result, title))
    summary = result.summary()
    console.print(
        f"[bold]{'dry-run' if result.dry_run else 'enforced'}[/] at {result.to_json()['at']}: "
        f"scanned {summary['scanned']}, in scope {summary['in_scope']}, candidates {summary['candidates']}; "
        f"actions {summary['actions']}; protections {summary['protections']}; outcomes {summary['outcomes']}"
    )
    for warning in result.plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for note in result.notes:
        console.print(f"[dim]{note}[/]")


def _usd(value: float | None, digits: int = 2) -> str:
    return "[red]unpriced[/]" if value is None else f"${value:,.{digits}f}"


def print_cost(console: Console, result: CostResult, title: str) -> None:
    summary = result.to_json()
    table = Table(title=title, title_justify="left")
    for column in ("resource", "type", "region", "owner", "what", "per hour", "since made", "price source", "flags"):
        table.add_column(column, overflow="fold")
    for cost in result.resources:
        table.add_row(
            cost.resource_id,
            cost.resource_type,
            cost.region,
            cost.owner,
            cost.description,
            _usd(cost.hourly_usd, 4),
            _usd(cost.accumulated_usd),
            cost.price_source,
            ", ".join(cost.flags) or "-",
        )
    console.print(table)
    console.print(
        f"[bold]burning ${summary['hourly_usd']:,.2f}/hour, ${summary['daily_usd']:,.2f} over the next 24 hours[/] "
        f"at {summary['at']}"
        + ("" if summary["complete"] else f"; [red]{len(summary['unpriced'])} unpriced, so the totals are low[/]")
    )
    for breach in result.breaches:
        console.print(f"[red]breach:[/] {breach.headline()}")
    console.print(
        f"[dim]price look-ups {summary['pricing']['lookups']}; "
        f"price file as of {summary['pricing']['price_file_as_of']}[/]"
    )
    for note in result.notes:
        console.print(f"[dim]{note}[/]")
