"""The `trainctl` command line: the same domain code as the Lambdas, against any AWS endpoint."""

from __future__ import annotations

# Before every other import: Ctrl-C during the slow ones below is one line and exit 130, not a traceback.
import trainctl.cli.interrupts  # noqa: F401  # isort: skip

import os
import sys
from dataclasses import replace
from importlib import metadata
from typing import Annotated

import typer

from trainctl.cli import automation, organization, report
from trainctl.cli.commands import ebs, instances, resources, transfer_command
from trainctl.cli.data import data
from trainctl.cli.environment import unknown_variables
from trainctl.cli.errors import TrainctlGroup
from trainctl.cli.output import EXIT_USAGE, Output, console, fail, fit_consoles, output_format, state_of, warn
from trainctl.cli.providers import register as register_providers
from trainctl.cli.session import adopt_aws_region, check_profile, check_regions

app = typer.Typer(
    cls=TrainctlGroup,
    help="trainctl: a guardrail for ML training on AWS. Dry-run unless you say --enforce.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Exit codes: 0 done; 1 refused or failed (an AWS error, a refusal, a failed action, missing credentials or "
        "region, an unknown profile, an unreachable endpoint, a bad TRAINCTL_* setting); 2 wrong usage (an option, "
        "an argument, a value, a region name, an event file; or a confirmation nobody can give off a terminal); "
        "130 interrupted."
    ),
)


def version() -> str:
    try:
        return metadata.version("trainctl")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"trainctl {version()}")
        raise typer.Exit()


@app.callback()
def start(
    ctx: typer.Context,
    profile: Annotated[
        str | None, typer.Option("--profile", help="AWS profile to use (the same as AWS_PROFILE).", metavar="NAME")
    ] = None,
    output: Output = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only results and errors: no notes, no progress.")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_show_version, is_eager=True),
    ] = False,
) -> None:
    """trainctl: a guardrail for ML training on AWS. Dry-run unless you say --enforce."""
    # Tests and the sandbox hand in their own state; a person gets the standard AWS environment.
    state = state_of(ctx)
    if profile is not None:
        if not profile.strip():
            raise fail("--profile needs a profile name", EXIT_USAGE)
        if state.make_factory is None:
            check_profile(profile)
        os.environ["AWS_PROFILE"] = profile
    adopt_aws_region(os.environ)
    fit_consoles(os.environ)
    chosen = output_format(ctx, output, False) if output else None
    ctx.obj = replace(state, output=chosen, quiet=quiet or state.quiet)
    for warning in unknown_variables(os.environ):
        warn(warning)


@app.command()
def sandbox(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    organization: Annotated[
        bool,
        typer.Option(
            "--organization", help="An Organization's story instead: member accounts swept through their spoke roles."
        ),
    ] = False,
    output: Output = None,
) -> None:
    """The whole guardrail on a local AWS emulator: seed a training fleet, sweep it dry-run, then enforced."""
    fmt = output_format(ctx, output, as_json)
    if fmt == "csv":
        raise fail("the sandbox tells a story: --output table or json, not csv", EXIT_USAGE)
    if organization:
        # Cold start: as below, moto's server and its Step Functions interpreter, only for this story.
        from trainctl.cli.sandbox_organization import run_organization_sandbox

        sys.exit(run_organization_sandbox(console, as_json=fmt == "json"))
    # Cold start: the sandbox pulls in moto's server; the other commands never need it.
    from trainctl.cli.sandbox_run import run_sandbox

    sys.exit(run_sandbox(console, as_json=fmt == "json"))


@app.command()
def emulator(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Loopback port to serve on.", min=1, max=65535)] = 5000,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="Home region (first) and more where the stack is made.")
    ] = None,
    seed: Annotated[bool, typer.Option("--seed", help="Seed the sandbox's training fleet to sweep.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the endpoint and environment as JSON.")] = False,
    output: Output = None,
) -> None:
    """A local AWS emulator as the sandbox runs it (no default AMIs or snapshots, workflows that run) until Ctrl-C."""
    fmt = output_format(ctx, output, as_json)
    regions = check_regions(region, environ={"AWS_ENDPOINT_URL": "emulated"}) or ("us-east-1",)
    # Cold start: the emulator brings moto's server and Step Functions interpreter, about 1.5 s of imports.
    from trainctl.cli.emulator import run_emulator

    sys.exit(run_emulator(console, port=port, regions=regions, seed=seed, as_json=fmt != "table"))


app.command()(automation.sweep)
app.command()(automation.cost)
app.command()(automation.prewarm)
app.command()(automation.invoke)
app.command("report")(report.report)
app.add_typer(ebs, name="ebs")
app.add_typer(instances, name="instances")
app.add_typer(resources, name="resources")
app.command("transfer")(transfer_command)
app.add_typer(data, name="data")
register_providers(app)
app.add_typer(organization.org, name="org")


def run() -> None:
    app()


if __name__ == "__main__":
    run()
