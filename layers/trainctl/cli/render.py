"""Readable terminal output for every table, at the width at hand; --json and --output csv never go through here.

Ids, money and instants are never cut or wrapped. When the columns do not fit, the least important ones are left
out, first those with the same value on every row, and a line under the table says what was left out and that
the JSON has everything. Every value is text, never rich markup: a tag reading `[red]x` prints as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from rich import box
from rich.console import Console
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

from trainctl.cli.output import plain_text
from trainctl.core.durations import format_duration
from trainctl.cost.prices.price_file import MAX_AGE_DAYS
from trainctl.cost.run import CostResult
from trainctl.sweep.run import SweepResult

ACTION_STYLE = {
    "keep": "green",
    "mark": "yellow",
    "unmark": "cyan",
    "delete": "red",
    "terminate": "red",
    "stop": "magenta",
}
# A column at or above this priority is never left out, even if the table then runs wider than the terminal.
ESSENTIAL = 100


@dataclass(frozen=True)
class Col:
    """A column: its header, how much it matters, and whether its values may wrap."""

    header: str
    priority: int
    whole: bool = False  # ids, money, instants: never cut, never wrapped
    min_width: int = 10  # a wrapping column narrower than this reads badly
    justify: str = "left"


Cell = str | Text


@dataclass(frozen=True)
class Fitted:
    title: str | None
    table: Table
    width: int  # what the table needs: the console's width, or more when even its essential columns are wider
    left_out: tuple[str, ...]
    same_everywhere: dict[str, str]  # a left-out column whose rows all say one thing: header -> that thing

    def footnote(self, width: int) -> str:
        if not self.left_out:
            return ""
        said = [f"{h} {self.same_everywhere[h]}" for h in self.left_out if h in self.same_everywhere]
        others = [h for h in self.left_out if h not in self.same_everywhere]
        parts = []
        if said:
            parts.append("every row: " + ", ".join(said))
        if others:
            parts.append(f"not shown at {width} columns: {', '.join(others)} (--output json has everything)")
        return "; ".join(parts)


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _text(cell: Cell) -> Text:
    return cell if isinstance(cell, Text) else Text(cell)


# A word up to this long (a protection's name, an id) is never split over lines; a longer one (an ARN) may be.
WORD_LIMIT = 24


@dataclass(frozen=True)
class _Extent:
    longest_line: int
    longest_word: int

    @classmethod
    def of(cls, texts: Sequence[str]) -> _Extent:
        lines = [line for text in texts for line in text.splitlines()] or [""]
        words = [word for line in lines for word in line.split()] or [""]
        return cls(max(len(line) for line in lines), max(len(word) for word in words))


def _bounds(column: Col, extent: _Extent) -> tuple[int, int]:
    """(narrowest, widest) a column may be: a whole one exactly its longest value, a wrapping one no narrower than
    its comfort width or its longest word (up to WORD_LIMIT), no wider than its longest line."""
    if column.whole:
        return extent.longest_line, extent.longest_line
    narrowest = max(column.min_width, min(extent.longest_word, WORD_LIMIT))
    return min(narrowest, extent.longest_line), extent.longest_line


def _build(columns: Sequence[Col], rows: Sequence[Sequence[Cell]], keep: Sequence[int], widths: Sequence[int]) -> Table:
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        header_style="bold",
    )
    for index, width in zip(keep, widths, strict=True):
        column = columns[index]
        table.add_column(
            column.header,
            width=width,
            no_wrap=column.whole,
            overflow="fold",
            justify=column.justify,  # type: ignore[arg-type]
        )
    for row in rows:
        table.add_row(*(_text(row[i]) for i in keep))
    return table


def _gaps(count: int) -> int:
    """Characters a table spends between its columns (collapsed padding, no edges)."""
    return 2 * max(0, count - 1)


def _widths(columns: Sequence[Col], extents: Sequence[_Extent], keep: Sequence[int], width: int) -> list[int] | None:
    """Each kept column's width, the most important wrapping columns widened first; None when they cannot fit."""
    bounds = {i: _bounds(columns[i], extents[i]) for i in keep}
    chosen = {i: bounds[i][0] for i in keep}
    spare = width - _gaps(len(keep)) - sum(chosen.values())
    if spare < 0:
        return None
    for i in sorted(keep, key=lambda i: -columns[i].priority):
        grow = min(spare, bounds[i][1] - chosen[i])
        chosen[i] += grow
        spare -= grow
    return [chosen[i] for i in keep]


def fit(title: str | None, columns: Sequence[Col], rows: Sequence[Sequence[Cell]], console: Console) -> Fitted:
    """The table with as many columns as fit the console's width, by priority; `title` goes above it."""
    width = console.width
    keep = list(range(len(columns)))
    extents = [_Extent.of([columns[i].header, *(_plain(row[i]) for row in rows)]) for i in keep]
    distinct = {i: {_plain(row[i]) for row in rows} for i in keep}
    while True:
        widths = _widths(columns, extents, keep, width)
        if widths is not None:
            break
        optional = [i for i in keep if columns[i].priority < ESSENTIAL]
        if not optional:
            # Even the essential columns are wider than the terminal: ids stay whole, the lines run long.
            widths = [_bounds(columns[i], extents[i])[1] for i in keep]
            width = sum(widths) + _gaps(len(keep))
            break
        # Uniform columns go first (the footnote says their one value), then the least important.
        drop = min(optional, key=lambda i: (len(distinct[i]) > 1 or not rows, columns[i].priority))
        keep.remove(drop)
    left_out = tuple(c.header for i, c in enumerate(columns) if i not in keep)
    same = {
        columns[i].header: next(iter(distinct[i]))
        for i in range(len(columns))
        if i not in keep and len(distinct[i]) == 1 and next(iter(distinct[i])) not in ("", "-")
    }
    return Fitted(title, _build(columns, rows, keep, widths), max(width, console.width), left_out, same)


def print_table(console: Console, title: str | None, columns: Sequence[Col], rows: Sequence[Sequence[Cell]]) -> Fitted:
    fitted = fit(title, columns, rows, console)
    if title:
        console.print(Text(title, style="bold"))
    if rows and fitted.width > console.width:
        # Wider than the terminal even so: laid out at the width it needs (the terminal wraps the lines), since
        # rich would otherwise squeeze the ids.
        console.print(
            Segments(console.render(fitted.table, console.options.update_width(fitted.width))), soft_wrap=True
        )
    elif rows:
        console.print(fitted.table)
    else:
        console.print(Text("  none", style="dim"))
    footnote = fitted.footnote(console.width)
    if footnote and rows:
        console.print(Text(footnote, style="dim"))
    return fitted


def counts(values: Mapping[str, Any]) -> str:
    """{'keep': 10, 'mark': 11} as a person writes it: 10 keep, 11 mark."""
    return ", ".join(f"{n} {name}" for name, n in values.items()) or "none"


def usd(value: float | None, digits: int = 2) -> Text:
    return Text("unpriced", style="red") if value is None else Text(f"${value:,.{digits}f}")


def action_text(action: str) -> Text:
    return Text(action, style=ACTION_STYLE.get(action, ""))


# ----------------------------------------------------------------------------------------------------- sweep

SWEEP_COLUMNS = (
    Col("resource", ESSENTIAL, whole=True),
    Col("action", ESSENTIAL, whole=True),
    Col("reasons", 90, min_width=12),
    Col("protections", 85, min_width=12),
    Col("owner", 50, min_width=8),
    Col("detail", 45, min_width=24),
    Col("outcome", 40, whole=True),
    Col("region", 30, whole=True),
    Col("type", 20, whole=True),
)


def sweep_rows(result: SweepResult) -> list[list[Cell]]:
    return [
        [
            d.resource_id,
            action_text(d.action),
            ", ".join(d.reasons) or "-",
            ", ".join(d.protections) or "-",
            d.owner or "-",
            d.detail or "-",
            d.outcome,
            d.region,
            d.resource_type,
        ]
        for d in sorted(result.decisions, key=lambda d: (d.region, d.resource_type, d.resource_id))
    ]


def sweep_summary(result: SweepResult) -> str:
    summary = result.summary()
    return (
        f"{'dry-run' if result.dry_run else 'enforced'} at {result.to_json()['at']}: "
        f"scanned {summary['scanned']}, in scope {summary['in_scope']}, candidates {summary['candidates']}; "
        f"actions: {counts(_mapping(summary['actions']))}; protections: {counts(_mapping(summary['protections']))}; "
        f"outcomes: {counts(_mapping(summary['outcomes']))}"
    )


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def print_sweep(console: Console, result: SweepResult, title: str, *, quiet: bool = False) -> None:
    print_table(console, title, SWEEP_COLUMNS, sweep_rows(result))
    console.print(Text(sweep_summary(result), style="bold"))
    for warning in result.plan.warnings:
        console.print(Text.assemble(("warning: ", "yellow"), warning))
    if not quiet:
        for note in result.notes:
            console.print(Text(note, style="dim"))


def sweep_csv_rows(result: SweepResult) -> list[dict[str, Any]]:
    return [d.to_json() for d in result.decisions]


# ------------------------------------------------------------------------------------------------------ cost

COST_COLUMNS = (
    Col("resource", ESSENTIAL, whole=True),
    Col("per hour", ESSENTIAL, whole=True, justify="right"),
    Col("since made", 90, whole=True, justify="right"),
    Col("provider", 85, whole=True),
    Col("what", 80, min_width=22),
    Col("owner", 60, min_width=8),
    Col("flags", 40, min_width=12),
    Col("price source", 35, min_width=10),
    Col("region", 30, whole=True),
    Col("type", 20, whole=True),
)


def price_file_line(result: CostResult) -> Text | None:
    """The price file's date and age, whenever it priced anything here; red once it is older than it may be."""
    from_file = result.lookups.get("file", 0) > 0 or any(
        "price-file" in cost.price_source.split("+") for cost in result.resources
    )
    if not from_file:
        return None
    as_of = result.price_file_as_of
    try:
        age = (result.at.date() - date.fromisoformat(as_of[:10])).days
    except ValueError:
        return Text(f"priced from the price file of {as_of}", style="yellow")
    text = f"priced from the price file of {as_of}, {age} day{'' if age == 1 else 's'} old"
    if age > MAX_AGE_DAYS:
        return Text(f"{text}: older than {MAX_AGE_DAYS} days, regenerate it with `make prices`", style="red")
    return Text(text, style="dim")


def print_cost(console: Console, result: CostResult, title: str, *, quiet: bool = False) -> None:
    summary = result.to_json()
    rows: list[list[Cell]] = [
        [
            cost.resource_id,
            usd(cost.hourly_usd, 4),
            usd(cost.accumulated_usd),
            cost.provider,
            ", ".join(filter(None, (cost.description, cost.accelerator_text()))),
            cost.owner,
            ", ".join(cost.flags) or "-",
            cost.price_source,
            cost.region,
            cost.resource_type,
        ]
        for cost in result.resources
    ]
    print_table(console, title, COST_COLUMNS, rows)
    headline = Text(
        f"burning ${summary['hourly_usd']:,.2f}/hour, ${summary['daily_usd']:,.2f} over the next 24 hours "
        f"at {summary['at']}",
        style="bold",
    )
    if not summary["complete"]:
        headline.append(f"; {len(summary['unpriced'])} unpriced, so the totals are low", style="red")
    console.print(headline)
    for breach in result.breaches:
        console.print(Text.assemble(("breach: ", "red"), breach.headline()))
    # Said even when quiet: a figure from the file is only as good as the file's date.
    file_line = price_file_line(result)
    if file_line is not None:
        console.print(file_line)
    if not quiet:
        console.print(Text(f"price look-ups: {counts(summary['pricing']['lookups'])}", style="dim"))
        for note in result.notes:
            console.print(Text(note, style="dim"))


# ---------------------------------------------------------------------------------------------- a handler's result


def records_of(result: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    """The result's lists of records (a sweep's decisions, a cost check's resources), by key."""
    return {
        key: value
        for key, value in result.items()
        if isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value)
    }


def result_csv_rows(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A row per record when the result holds one list of records, as `trainctl sweep` prints; else one row."""
    records = records_of(result)
    if len(records) == 1:
        return next(iter(records.values()))
    return [result]


def print_result(console: Console, result: Mapping[str, Any], title: str) -> None:
    """A handler's result as tables: its fields and values, then a table per list of records."""
    records = records_of(result)
    fields = [[key, plain_text(value) or "-"] for key, value in result.items() if key not in records]
    print_table(console, title, (Col("field", ESSENTIAL, whole=True), Col("value", ESSENTIAL, min_width=20)), fields)
    for key, items in records.items():
        headers = list(dict.fromkeys(header for item in items for header in item))
        # The first field names the record (an id): whole and kept; the others by their order, wrapped as needed.
        columns = [Col(header, ESSENTIAL if i == 0 else 90 - i, whole=i == 0) for i, header in enumerate(headers)]
        rows: list[list[Cell]] = [[plain_text(item.get(header)) or "-" for header in headers] for item in items]
        print_table(console, key, columns, rows)


def duration(value: Any) -> str:
    """A timedelta in the words of the settings (24h, 5m); anything else as it is."""
    return format_duration(value) if isinstance(value, timedelta) else str(value)
