"""The rough edges a newcomer met (issue 26, items 1-11), each with what a user expects."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from tests.integration.conftest import run_cli
from tests.integration.test_hand_commands import HANDED, call
from trainctl.aws.clients import ClientFactory
from trainctl.cli import main as cli
from trainctl.cli import stack_resources
from trainctl.core.envelopes import Envelope
from trainctl.core.events import (
    InvalidEvent,
    parse_age_guard_event,
    parse_cost_event,
    parse_spot_event,
    parse_sweep_trigger,
)

ROOT = Path(__file__).resolve().parents[2]
TRAINCTL = str(Path(sys.executable).with_name("trainctl"))
REGION = "us-east-1"


@pytest.fixture
def factory(aws: None, monkeypatch: pytest.MonkeyPatch) -> ClientFactory:
    """The emulated account with the stack's resources, handed to the command line as in test_hand_commands."""
    made = ClientFactory(REGION)
    monkeypatch.setitem(HANDED, "factory", made)
    monkeypatch.setenv("TRAINCTL_OWNER", "alice")
    stack_resources.ensure_on_emulator(made, (REGION,))
    return made


# ------------------------------------------------------------------------------- 1. Ctrl-C, from the first moment


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that takes the connection and never answers: a command waits there until interrupted."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_ctrl_c_at_any_moment_of_a_command_is_one_line_and_exit_130(silent_endpoint: str) -> None:
    environ = dict(
        os.environ,
        AWS_ENDPOINT_URL=silent_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
    )
    # From the imports of the first moments to the wait on AWS.
    for delay in (0.1, 0.25, 0.4, 0.6, 0.9, 1.5):
        command = subprocess.Popen(
            [TRAINCTL, "sweep"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        time.sleep(delay)
        command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=60)
        assert (command.returncode, err) == (130, "error: interrupted\n"), (delay, err[-400:])
        assert out == ""


# ------------------------------------------------------------------- 2. everything checked before the first call


def volumes_in(factory: ClientFactory) -> list[str]:
    return [v["VolumeId"] for v in factory.ec2("us-east-1").describe_volumes()["Volumes"]]


def test_ebs_create_with_a_bad_pre_warm_uri_creates_nothing(factory: ClientFactory) -> None:
    refused = call("ebs", "create", "--pre-warm", "notauri")
    assert refused.exit_code == 2 and "s3_uri" in refused.stderr and "s3://" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert volumes_in(factory) == []


# ------------------------------------------------- 11. the envelope's optional fields take their documented default

# The samples each function is documented with, as AWS's documentation and `sam local generate-event` write them.
ENVELOPED = [
    ("cleanup_sweep", "eventbridge_rule.json", parse_sweep_trigger),
    ("cost_alerts", "eventbridge_rule.json", parse_cost_event),
    ("cost_alerts", "instance_stopped.json", parse_cost_event),
    ("age_guard", "run_instances_assumed_role.json", parse_age_guard_event),
    ("age_guard", "instance_running.json", parse_age_guard_event),
    ("spot_interruption", "warning.json", parse_spot_event),
    ("spot_interruption", "rebalance.json", parse_spot_event),
]


@pytest.mark.parametrize(("function", "sample", "parse"), ENVELOPED)
def test_an_event_without_the_envelopes_optional_fields_is_accepted(
    function: str, sample: str, parse: Callable[[object], object]
) -> None:
    whole = json.loads((ROOT / "events" / function / sample).read_text())
    assert "version" in whole  # the sample is a whole envelope; what follows leaves out what may be absent
    bare = {k: v for k, v in whole.items() if k not in ("version", "resources", "time")}
    if whole["detail-type"] == "Scheduled Event":
        bare.pop("detail")
    before = datetime.now(UTC)
    parsed = parse(bare)
    if isinstance(parsed, Envelope):
        assert (parsed.version, parsed.resources) == ("0", [])
        assert parsed.time >= before  # the time EventBridge receives it, as PutEvents documents
    assert type(parsed) is type(parse(whole))


def test_an_event_missing_what_has_no_default_is_still_refused() -> None:
    whole = json.loads((ROOT / "events" / "spot_interruption" / "warning.json").read_text())
    for needed in ("id", "account", "region", "source", "detail"):
        with pytest.raises(InvalidEvent):
            parse_spot_event({k: v for k, v in whole.items() if k != needed})


# ------------------------------------------------------------------------- 8. help in conventional metavars


def every_command_path() -> list[list[str]]:
    """Every command and group of the command line, as the words that name it."""

    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(cli.app), []))


# Arguments in capitals, as VOLUME_ID or [VOLUME_ID], after the options.
USAGE = r" Usage: trainctl[a-z -]* \[OPTIONS\]( [A-Z0-9_\[\]]+| COMMAND \[ARGS\]\.\.\.)* *"


@pytest.mark.parametrize("path", every_command_path(), ids=lambda path: " ".join(path) or "trainctl")
def test_help_names_values_as_people_do(path: list[str]) -> None:
    shown = CliRunner().invoke(cli.app, [*path, "--help"], env={"COLUMNS": "80"}, prog_name="trainctl")
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    # No Python type names, no braces around arguments, no word cut short by a narrow column.
    assert not re.findall(r"<[a-z_ \[\],|]+>|\{[a-z_]+\}|…", text), text
    assert all(len(line) <= 80 for line in text.splitlines()), text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert re.fullmatch(r" Usage: trainctl[a-z -]* \[OPTIONS\]( [A-Z0-9_\[\]]+| COMMAND \[ARGS\]\.\.\.)* *", usage), (
        usage
    )
    for option in ("--region", "--zone", "--size", "--timeout"):
        if f"{option} " in text:
            assert re.search(rf"{option} +[A-Z0-9_]+", text), text


# --------------------------------------------------------------------------------------------- 9. small words


def test_a_malformed_aws_region_is_refused_as_region_is() -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        refused = CliRunner().invoke(cli.app, ["sweep"], env={name: "moon-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
        assert refused.exit_code == 2, refused.output
        assert refused.stderr == f"error: {name}=moon-1: not a region name such as us-east-1\n"


def test_a_bad_duration_is_said_once(factory: ClientFactory) -> None:
    refused = run_cli(factory, ["sweep", "--region", REGION], env={"TRAINCTL_MIN_AGE": "5x"})
    assert refused.exit_code == 1 and refused.stderr.count("5x") == 1, refused.stderr


def test_sweep_at_a_past_instant_is_refused_before_anything(factory: ClientFactory) -> None:
    refused = call("sweep", "--region", REGION, "--at", "2020-01-01T00:00:00Z")
    assert refused.exit_code == 2 and "in the past" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1
