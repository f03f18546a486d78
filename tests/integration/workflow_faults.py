"""Faults in a workflow's own SDK calls: moto's Step Functions interpreter builds its clients from boto3's
default session, so a before-call hook there reaches them and nothing else."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import boto3
import pytest


class WorkflowFault:
    """Answer one operation with an error (or a given response), `times` times (None: always)."""

    def __init__(self, operation: str, code: str, times: int | None, response: dict[str, Any] | None) -> None:
        self.operation = operation
        self.code = code
        self.times = times
        self.response = response
        self.hits = 0

    def __call__(self, model: Any, **_: Any) -> Any:
        if model.name != self.operation or (self.times is not None and self.hits >= self.times):
            return None
        self.hits += 1
        if self.response is not None:
            ok = {**self.response, "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "injected"}}
            return types.SimpleNamespace(status_code=200, headers={}, raw=None), ok
        error = {
            "Error": {"Code": self.code, "Message": "injected"},
            "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "injected"},
        }
        return types.SimpleNamespace(status_code=400, headers={}, raw=None), error


@pytest.fixture
def workflow_fault() -> Iterator[Any]:
    installed: list[WorkflowFault] = []
    events = boto3._get_default_session().events

    def install(
        operation: str,
        code: str = "InjectedFailure",
        *,
        times: int | None = None,
        response: dict[str, Any] | None = None,
    ) -> WorkflowFault:
        fault = WorkflowFault(operation, code, times, response)
        events.register_first("before-call", fault)
        installed.append(fault)
        return fault

    yield install
    for fault in installed:
        events.unregister("before-call", fault)
