"""prewarm_report: reads the worker's one JSON line (or, restored from a snapshot, the volume as EC2 records it)
into the tags the workflow writes on the volume."""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger
from trainctl.prewarm.run import report_task

tracer = handler_tracer()


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = report_task(event, client_factory())
    logger.info("pre-warm reported", extra={"report": result})
    return result
