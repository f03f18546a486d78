"""Shared fixtures: a clean fake AWS environment, moto in-process, event files through one helper."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from trainctl.aws.clients import ClientFactory, is_read

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


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
