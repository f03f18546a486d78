"""Logger and Metrics shared by every function, and each handler's tracer.

Powertools' Tracer imports the X-Ray SDK, 150-250 ms of every cold start. Lambda's active tracing records
each invocation without it; the SDK adds a subsegment per AWS call. So a handler gets the real Tracer only
where the deployment asks for it (`trace_aws_calls`, which sets TRAINCTL_TRACE_AWS_CALLS=true).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics

SERVICE = "trainctl"
NAMESPACE = "trainctl"
TRACE_AWS_CALLS = "TRAINCTL_TRACE_AWS_CALLS"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# The cost metrics the stack's CloudWatch alarms watch.
BURN_RATE_METRIC = "BurnRateHourlyUSD"
PROJECTION_METRIC = "ProjectedDailyUSD"

Handler = TypeVar("Handler", bound=Callable[..., Any])


class HandlerTracer(Protocol):
    def capture_lambda_handler(
        self, lambda_handler: Any = None, capture_response: bool | None = None
    ) -> Callable[[Handler], Handler]: ...


class Untraced:
    """What a handler decorates itself with when AWS calls are not traced: the handler, unchanged."""

    def capture_lambda_handler(
        self, lambda_handler: Any = None, capture_response: bool | None = None
    ) -> Callable[[Handler], Handler]:
        return lambda handler: handler


def handler_tracer(environ: dict[str, str] | None = None) -> HandlerTracer:
    values = os.environ if environ is None else environ
    if values.get(TRACE_AWS_CALLS, "").strip().lower() == "true":
        # Cold start: Tracer imports the X-Ray SDK, which only a deployment that traces AWS calls needs.
        from aws_lambda_powertools import Tracer

        # Powertools types its decorator loosely; it returns the handler wrapped with the same signature.
        return cast("HandlerTracer", Tracer())
    return Untraced()
