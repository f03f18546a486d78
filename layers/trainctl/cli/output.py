"""What every command shares: the consoles, exit codes, output formats, notes, confirmations, and the client
factory it is given."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape

from trainctl.aws.clients import ClientFactory
from trainctl.core.clock import Clock, system_clock

# Width is read when printing: COLUMNS (also when piped), else the terminal's, else 80. Tables fit it.
console = Console()
err_console = Console(stderr=True)


def fit_consoles(environ: Mapping[str, str]) -> None:
    """Read COLUMNS now, for this command: rich reads it once, when a console is made."""
    columns = environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else None
    for each in (console, err_console):
        each._width = width


# The exit codes, documented in the README's command-line section.
EXIT_OK = 0
EXIT_FAILED = 1  # refused, failed, or the environment is not usable (credentials, region, endpoint, settings)
EXIT_USAGE = 2  # the command line itself is wrong: an option, an argument, a value, a file
EXIT_INTERRUPTED = 130  # Ctrl-C

OutputFormat = Literal["table", "json", "csv"]
FORMATS: tuple[OutputFormat, ...] = ("table", "json", "csv")

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (the same as --output json).")]
Output = Annotated[
    str | None, typer.Option("--output", "-o", help="table, json or csv (default: table).", metavar="FORMAT")
]


@dataclass(frozen=True)
class CliState:
    """Handed to every command through typer's context object: tests and the sandbox pass their own factory.

    Without a factory of its own, a command builds one from the standard AWS environment, tuned for a person
    waiting at a terminal (short connection timeouts, few retries, and a line saying what it waits for).
    """

    make_factory: Callable[[], ClientFactory] | None = None
    output: OutputFormat | None = None
    quiet: bool = False
    # None: ask for confirmation when stdin is a terminal. Tests say True to answer the question themselves.
    interactive: bool | None = None
    # The laptop's clock; AWS's Date header corrects it where the two disagree (see server_clock).
    local_clock: Clock = system_clock


def state_of(ctx: typer.Context) -> CliState:
    state = ctx.find_root().obj
    return state if isinstance(state, CliState) else CliState()


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    """One line on stderr; the caller raises the returned Exit. The message is text, never markup."""
    err_console.print(f"[red]error:[/] {escape(one_line(message))}", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def one_line(message: str) -> str:
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def note(ctx: typer.Context | None, message: str, style: str = "dim") -> None:
    """Something a person may want to know, on stderr; --quiet leaves it out. Plain text, not markup."""
    if ctx is not None and state_of(ctx).quiet:
        return
    err_console.print(escape(message), style=style, soft_wrap=True, highlight=False)


def warn(message: str) -> None:
    """A warning is shown even with --quiet."""
    err_console.print(f"[yellow]warning:[/] {escape(one_line(message))}", soft_wrap=True, highlight=False)


def output_format(ctx: typer.Context, output: str | None, as_json: bool) -> OutputFormat:
    """--json, else --output, else the root's --output, else a table."""
    if as_json:
        if output not in (None, "json"):
            raise fail(f"--json and --output {output} disagree: pick one", EXIT_USAGE)
        return "json"
    chosen = output or state_of(ctx).output or "table"
    for known in FORMATS:
        if chosen == known:
            return known
    raise fail(f"--output {chosen}: use table, json or csv", EXIT_USAGE)


def to_csv(rows: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> str:
    """Rows of a listing as CSV with a header; every cell plain text (`plain_text`), never JSON."""
    records = [rows] if isinstance(rows, Mapping) else list(rows)
    columns: list[str] = []
    for record in records:
        columns += [key for key in record if key not in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow([plain_text(record.get(column)) for column in columns])
    return buffer.getvalue()


def plain_text(value: Any) -> str:
    """A value as a person reads it in a cell: a list as `a;b`, an object as `key=value;key=value` (a nested one
    in parentheses), every character as itself (a multiplication sign, not JSON's `\\u00d7`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ";".join(_nested(v) for v in value)
    if isinstance(value, Mapping):
        return ";".join(f"{key}={_nested(v)}" for key, v in sorted(value.items(), key=lambda item: str(item[0])))
    return str(value)


def _nested(value: Any) -> str:
    text = plain_text(value)
    return f"({text})" if isinstance(value, Mapping | list | tuple) and text else text


def emit(
    fmt: OutputFormat | bool,
    payload: Any,
    show: Callable[[], None],
    *,
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None = None,
) -> None:
    """JSON (the payload), CSV (the rows, else the payload) or the human view. `True` means JSON."""
    chosen: OutputFormat = "json" if fmt is True else "table" if fmt is False else fmt
    if chosen == "json":
        typer.echo(json.dumps(payload, indent=2, default=str))
    elif chosen == "csv":
        typer.echo(to_csv(rows if rows is not None else payload), nl=False)
    else:
        show()


def interactive(ctx: typer.Context) -> bool:
    chosen = state_of(ctx).interactive
    return sys.stdin.isatty() if chosen is None else chosen


def confirm(ctx: typer.Context, plan: list[str], question: str, *, yes: bool) -> None:
    """Show what a destructive command will do, then ask; --yes answers for scripts. Off a terminal without
    --yes nobody can answer, so nothing happens (exit 2)."""
    for line in plan:
        err_console.print(escape(line), soft_wrap=True, highlight=False)
    if yes:
        return
    if not interactive(ctx):
        raise fail("not on a terminal, so nobody can confirm: pass --yes to go ahead", EXIT_USAGE)
    if not typer.confirm(question, default=False, err=True):
        raise fail("nothing was changed", EXIT_FAILED)
