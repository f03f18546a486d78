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

FUNCTION_PREFIX = "trainctl-"


class InProcessLambda:
    def __init__(self, environment: Mapping[str, str]) -> None:
        self._environment = dict(environment)
        self.invocations: list[str] = []

    def invoke(self, FunctionName: str, Payload: Any = None, **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's names
        from trainctl.cli.main import LocalContext, load_handler

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
