"""prewarm_plan: the pre-warm workflow's first task. Validates the request and sizes the worker; only reads."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger
from trainctl.core import tags
from trainctl.prewarm.rules import InvalidRequest, parse_request, plan

tracer = handler_tracer()


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse_request(event)
        factory = client_factory()
        region = factory.default_region or "us-east-1"
        planned = plan(
            request,
            factory.ec2(region),
            factory.client("s3", region),
            instance_profile_arn=os.environ["TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN"],
            region=region,
            scope_tag=os.environ.get("TRAINCTL_SCOPE_TAG", tags.MANAGED),
        )
    except InvalidRequest:
        # The workflow's Catch turns this into a FAILED execution before anything was launched.
        logger.exception("refused pre-warm request")
        raise
    logger.info("pre-warm planned", extra={"plan": planned})
    return planned
