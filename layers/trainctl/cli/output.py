"""What every command shares: the consoles, exit codes, one-line failures, and the client factory it is given."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console

from trainctl.aws.clients import ClientFactory

# Wide enough for the decision tables when output goes to a pipe or a CI log.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)

EXIT_FAILED = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class CliState:
    """Handed to every command through typer's context object: tests and the sandbox pass their own factory."""

    make_factory: Callable[[], ClientFactory] = ClientFactory


def factory_of(ctx: typer.Context) -> ClientFactory:
    state = ctx.find_root().obj
    return (state if isinstance(state, CliState) else CliState()).make_factory()


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    err_console.print(f"[red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code)


def emit(as_json: bool, payload: Any, show: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2, default=str))
    else:
        show()
