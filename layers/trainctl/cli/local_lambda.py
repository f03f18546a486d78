"""Lambda tasks of a workflow run by moto's Step Functions interpreter, dispatched to the handlers in-process.

moto would run them in Docker; here the interpreter's Lambda client is swapped for one that calls
functions/<name>/handler.py directly, with the same payload in and out and the same error shape.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from trainctl.cli.local_run import LocalContext, load_handler

FUNCTION_PREFIX = "trainctl-"


class InProcessLambda:
    def __init__(self, environment: Mapping[str, str]) -> None:
        self._environment = dict(environment)
        self.invocations: list[str] = []

    def invoke(self, FunctionName: str, Payload: Any = None, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        name = FunctionName.rsplit(":", 1)[-1]
        folder = name.removeprefix(FUNCTION_PREFIX)
        event = json.loads(Payload.decode() if isinstance(Payload, bytes) else Payload or "{}")
        self.invocations.append(folder)
        saved = {key: os.environ.get(key) for key in self._environment}
        os.environ.update(self._environment)
        try:
            result = load_handler(folder).lambda_handler(event, LocalContext(function_name=name))
            return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": io.BytesIO(json.dumps(result).encode())}
        except Exception as exc:  # a Lambda reports any error as its payload; the workflow's Catch decides
            error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(json.dumps(error).encode())}
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@contextmanager
def lambda_tasks_in_process(environment: Mapping[str, str]) -> Iterator[InProcessLambda]:
    # Cold start: moto's Step Functions interpreter costs about 1.7 s; only emulated workflows need it.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils as module

    # The interpreter builds its Lambda client through this module-level name; it is swapped, then restored.
    lambda_eval_utils: Any = module
    dispatcher = InProcessLambda(environment)
    original = lambda_eval_utils.boto_client_for

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if service == "lambda":
            return dispatcher
        return original(region=region, service=service, state_credentials=state_credentials)

    lambda_eval_utils.boto_client_for = client_for
    try:
        yield dispatcher
    finally:
        lambda_eval_utils.boto_client_for = original


def forget_finished_workers() -> None:
    """moto deep-copies a state machine with its past executions on every start, and a finished execution
    still holds its worker's locks: dropping the finished workers lets a state machine run more than once."""
    # Cold start: as above, moto's interpreter only when a workflow ran.
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    for account in stepfunctions_parser_backends.values():
        for backend in account.values():
            for machine in backend.state_machines:
                for execution in getattr(machine, "executions", []):
                    if execution.exec_status != ExecutionStatus.RUNNING and execution.exec_worker:
                        execution.exec_worker = None


@contextmanager
def failing_sdk_call(operation: str, code: str = "InjectedFailure") -> Iterator[None]:
    """Make one SDK operation of the emulated workflows fail: their clients come from boto3's default session."""
    # Cold start: boto3 (resources and all) is only needed when a test injects a failure.
    import boto3

    def fail(model: Any, **_: Any) -> Any:
        if model.name != operation:
            return None
        error = {
            "Error": {"Code": code, "Message": f"{operation} failed (injected)"},
            "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "injected"},
        }
        return _Status(400), error

    events = boto3._get_default_session().events
    events.register_first("before-call", fail)
    try:
        yield
    finally:
        events.unregister("before-call", fail)


class _Status:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.headers: dict[str, str] = {}
        self.raw = None
