"""Faults injected at the botocore level, before anything is sent: botocore's own retries then act."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

from trainctl.aws.clients import ClientFactory


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


EC2_ERROR = (
    "<Response><Errors><Error><Code>{code}</Code><Message>injected</Message></Error></Errors>"
    "<RequestID>injected</RequestID></Response>"
)


class Faults:
    """Fail the first `times` calls of the named operations (None: every call), counting what happened."""

    def __init__(self, factory: ClientFactory) -> None:
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self._rules: list[tuple[str, str, int, int | None, str]] = []
        # First: the emulator answers before-send too, and botocore sends the first answer it gets.
        factory.register("before-send", self._before_send, first=True)

    def fail(self, operation: str, *, code: str, status: int, times: int | None, kind: str = "error") -> None:
        self._rules.append((operation, code, status, times, kind))

    def _before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        operation = _operation_of(request)
        with self._lock:
            for rule_operation, code, status, times, kind in self._rules:
                if rule_operation != operation:
                    continue
                if times is not None and self.injected[operation] >= times:
                    return None
                self.injected[operation] += 1
                if kind == "timeout":
                    raise ReadTimeoutError(endpoint_url=request.url)
                if _is_json(request):
                    body = json.dumps({"__type": code, "message": "injected"}).encode()
                else:
                    body = EC2_ERROR.format(code=code).encode()
                return AWSResponse(request.url, status, {}, _Body(body))
        return None


def _is_json(request: Any) -> bool:
    content_type = request.headers.get("Content-Type", b"")
    text = content_type.decode() if isinstance(content_type, bytes) else str(content_type)
    return "json" in text


def _operation_of(request: Any) -> str:
    target = request.headers.get("X-Amz-Target")
    if target:
        text = target.decode() if isinstance(target, bytes) else str(target)
        return text.rsplit(".", 1)[-1]
    body = request.body
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    for part in str(body or "").split("&"):
        if part.startswith("Action="):
            return part.removeprefix("Action=")
    return "unknown"
