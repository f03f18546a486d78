"""prewarm_report: reads the worker's one JSON line into the tags the workflow writes on the volume."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from trainctl.aws.observability import handler_tracer, logger
from trainctl.core.clock import format_instant, system_clock
from trainctl.prewarm.rules import report

tracer = handler_tracer()


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    output: str = Field(default="", max_length=48_000)  # GetCommandInvocation returns at most 24,000 characters
    source: str = Field(max_length=1024)
    started_at: str = Field(max_length=64)
    estimated_seconds: int = Field(default=0, ge=0)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ReportRequest.model_validate(event)
    result = report(
        request.output,
        source=request.source,
        started_at=request.started_at,
        finished_at=format_instant(system_clock()),
        estimated_seconds=request.estimated_seconds,
    )
    logger.info("pre-warm reported", extra={"report": result})
    return result
