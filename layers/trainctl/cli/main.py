"""The `trainctl` command line: the same domain code as the Lambdas, against any AWS endpoint."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from trainctl.cli import automation
from trainctl.cli.commands import ebs, instances, resources, transfer_command
from trainctl.cli.output import CliState, console
from trainctl.cli.sandbox_run import run_sandbox

app = typer.Typer(
    help="trainctl: a guardrail for ML training on AWS. Dry-run unless you say --enforce.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def start(ctx: typer.Context) -> None:
    """trainctl: a guardrail for ML training on AWS. Dry-run unless you say --enforce."""
    # Tests and the sandbox hand in their own state; a person gets the standard AWS environment.
    if ctx.obj is None:
        ctx.obj = CliState()


@app.command()
def sandbox(
    as_json: Annotated[bool, typer.Option("--json", help="Print each sweep as JSON instead of tables.")] = False,
) -> None:
    """The whole guardrail on a local AWS emulator: seed a training fleet, sweep it dry-run, then enforced."""
    sys.exit(run_sandbox(console, as_json=as_json))


app.command()(automation.sweep)
app.command()(automation.cost)
app.command()(automation.prewarm)
app.command()(automation.invoke)
app.add_typer(ebs, name="ebs")
app.add_typer(instances, name="instances")
app.add_typer(resources, name="resources")
app.command("transfer")(transfer_command)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
