"""Shared fixtures: a clean fake AWS environment, moto in-process, event files through one helper."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.handlers
import pytest
from moto import mock_aws

from tests.aws_calls import CallLedger
from trainctl.aws.clients import ClientFactory, is_read
from trainctl.cli.ebs_initialisation import emulated_initialisation
from trainctl.cli.ssm_agent import SsmAgents, emulated_agents

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


# Every botocore session built from here on hears every call: moto hooks in the same way.
CALLS = CallLedger()
botocore.handlers.BUILTIN_HANDLERS.append(("before-call", CALLS.record))


@pytest.fixture(autouse=True)
def calls_are_declared() -> Iterator[None]:
    """Each AWS call a test makes through trainctl's code is an action its module declared (PERMISSIONS)."""
    before = len(CALLS.undeclared)
    yield
    undeclared = sorted(set(CALLS.undeclared[before:]))
    assert not undeclared, "undeclared AWS calls:\n" + "\n".join(undeclared)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # For a person filling in declarations: TRAINCTL_TEST_CALLS=path writes what each module called.
    target = os.environ.get("TRAINCTL_TEST_CALLS_OUT")
    if target:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        Path(f"{target}.{worker}").write_text("\n".join(sorted(f"{m} {a}" for m, a in CALLS.seen)))


def load_event(function: str, case: str) -> Any:
    return json.loads((EVENTS / function / f"{case}.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach a real account: fake credentials, no endpoint, no profile, no trainctl settings."""
    import os

    for key in list(os.environ):
        if key.startswith(("TRAINCTL_", "AWS_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "trainctl")


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def factory(aws: None) -> ClientFactory:
    return ClientFactory("us-east-1")


@pytest.fixture
def ssm_agents(aws: None) -> Iterator[SsmAgents]:
    """The emulated SSM agents: an instance told what it runs answers the training check as its agent would."""
    with emulated_agents(SsmAgents()) as agents:
        yield agents


@pytest.fixture
def ebs_initialisation() -> Iterator[None]:
    """moto remembers CreateVolume's VolumeInitializationRate and answers DescribeVolumeStatus as EBS initialises a
    restored volume, from its CreateTime on the (travellable) system clock."""
    with emulated_initialisation():
        yield


class WriteForbidden(AssertionError):
    pass


def forbid_writes(factory: ClientFactory) -> list[str]:
    """Make every write call through this factory fail loudly; returns the list of attempts."""
    attempts: list[str] = []

    def refuse(model: Any, **_: Any) -> None:
        if not is_read(model.name):
            attempts.append(model.name)
            raise WriteForbidden(f"write call {model.name} during a dry-run")

    factory.register("before-call", refuse)
    return attempts
