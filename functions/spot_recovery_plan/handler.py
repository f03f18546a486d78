"""spot_recovery_plan: the recovery workflow's first task. From the instance id alone, what to relaunch; only reads."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger
from trainctl.core.clock import Clock, system_clock
from trainctl.core.spot_settings import SpotSettings
from trainctl.spot.plan import plan_recovery
from trainctl.spot.rules import RecoveryRefused

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

tracer = handler_tracer()
clock: Clock = system_clock  # tests step this

# Where no region is configured (a local run): the workflow's own region is the function's.
FALLBACK_REGION = "us-east-1"


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    factory = client_factory()
    region = factory.default_region or FALLBACK_REGION
    try:
        planned = plan_recovery(event, factory, SpotSettings.from_env(os.environ), region=region, clock=clock)
    except RecoveryRefused:
        # The workflow's Catch turns this into a FAILED execution before anything was launched.
        logger.exception("refused recovery")
        raise
    logger.info("recovery planned", extra={"plan": planned})
    return planned
