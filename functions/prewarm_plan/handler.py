"""prewarm_plan: the pre-warm workflow's first task. Validates the request and sizes the worker; only reads."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger
from trainctl.core import tags
from trainctl.prewarm.rules import InvalidRequest
from trainctl.prewarm.run import plan_task

tracer = handler_tracer()


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@logger.inject_lambda_context(log_event=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        planned = plan_task(
            event,
            client_factory(),
            instance_profile_arn=os.environ["TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN"],
            scope_tag=os.environ.get("TRAINCTL_SCOPE_TAG", tags.MANAGED),
        )
    except InvalidRequest:
        # The workflow's Catch turns this into a FAILED execution before anything was launched.
        logger.exception("refused pre-warm request")
        raise
    # The workflow reads these fields by the model's names (infra/prewarm_workflow.py plan_path).
    result = planned.model_dump(mode="json")
    logger.info("pre-warm planned", extra={"plan": result})
    return result
