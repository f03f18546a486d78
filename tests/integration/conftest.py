"""Fixtures shared by the integration tests."""

from typing import Any

from click.testing import Result
from typer.testing import CliRunner

from tests.integration.workflow_faults import workflow_fault
from trainctl.aws.clients import ClientFactory
from trainctl.cli.main import app
from trainctl.cli.output import CliState

__all__ = ["run_cli", "workflow_fault"]


def run_cli(factory: ClientFactory, args: list[str], **kwargs: Any) -> Result:
    """The command line with the client factory handed in through typer's context object, as a test's own."""
    return CliRunner().invoke(app, args, obj=CliState(make_factory=lambda: factory), **kwargs)
