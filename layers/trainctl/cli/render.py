"""Readable terminal output for sweeps (rich tables); --json output never goes through here."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from trainctl.cleanup import SweepResult

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
