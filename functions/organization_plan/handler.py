"""organization_plan: the organization run's first step; lists one item per covered account and region.

The Distributed Map reads `items`: each {"account", "region", "dry_run"}, handed to organization_sweep.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.events import InvalidEvent
from trainctl.core.sweep_settings import SweepSettings
from trainctl.organization.events import parse_plan_request
from trainctl.organization.members import plan_organization
from trainctl.organization.record import AccountRecords
from trainctl.organization.settings import OrganizationSettings, hub_settings

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

tracer = handler_tracer()


@cache
def deployed_settings() -> tuple[OrganizationSettings, SweepSettings]:
    """Loaded once per cold start; a bad setting fails every invocation loudly, naming the variable."""
    return hub_settings(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse_plan_request(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    org, sweep = deployed_settings()
    if request.dry_run is False and sweep.dry_run:
        raise InvalidEvent("this deployment is dry-run: an event cannot turn enforcement on")
    effective = sweep.model_copy(update={"dry_run": sweep.dry_run or bool(request.dry_run)})
    factory = client_factory()
    coverage = plan_organization(factory, org, effective, AccountRecords(factory.dynamodb(), sweep.ledger_table))
    metrics.add_metric(name="OrganizationAccounts", unit=MetricUnit.Count, value=len(coverage.covered))
    metrics.add_metric(name="OrganizationTargets", unit=MetricUnit.Count, value=len(coverage.targets))
    logger.info(
        "organization planned",
        extra={"covered": list(coverage.covered), "excluded": coverage.excluded, "targets": len(coverage.targets)},
    )
    return {
        "items": coverage.items(),
        "covered": list(coverage.covered),
        "excluded": coverage.excluded,
        "max_concurrency": org.org_max_concurrency,
    }
