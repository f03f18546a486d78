"""age_guard: stamp who made each EC2 resource and when, from CloudTrail calls and first starts."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from trainctl.age_guard.rules import USE_EVENTS
from trainctl.age_guard.run import stamp_api_call, stamp_first_start, void_marks_on_use
from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.age_guard_settings import AgeGuardSettings
from trainctl.core.cloudtrail_events import CloudTrailApiCall
from trainctl.core.events import InvalidEvent, parse_age_guard_event

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

tracer = handler_tracer()


@cache
def deployed_settings() -> AgeGuardSettings:
    return AgeGuardSettings.from_env(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse_age_guard_event(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    settings = deployed_settings()
    if isinstance(parsed, CloudTrailApiCall) and parsed.detail.event_name in USE_EVENTS:
        result = void_marks_on_use(client_factory(), parsed, settings)
    elif isinstance(parsed, CloudTrailApiCall):
        result = stamp_api_call(client_factory(), parsed, settings)
    else:
        result = stamp_first_start(client_factory(), parsed, settings)
    metrics.add_metric(name=f"Stamp_{result.status}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ResourcesStamped", unit=MetricUnit.Count, value=len(result.stamped))
    logger.info("age guard", extra={"result": result.to_json()})
    return result.to_json()
