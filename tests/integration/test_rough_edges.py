"""The rough edges a newcomer met (issue 26, items 1-11), each with what a user expects."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_hand_commands import HANDED, call
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources

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
