"""organization_sweep: one child of the organization run's Distributed Map; one account in one region.

The existing sweep runs with the spoke role's credentials and the hub's ledger and notifier. A spoke that cannot
be reached is this account's error: returned by name (outcome "failed") and counted, never raised, so the other
children run on and the run's summary names it.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import SnsNotifier
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.clock import Clock, system_clock
from trainctl.core.events import InvalidEvent
from trainctl.core.sweep_settings import SweepSettings
from trainctl.organization.events import parse_item
from trainctl.organization.record import AccountRecords
from trainctl.organization.rules import Target
from trainctl.organization.run import sweep_target
from trainctl.organization.settings import OrganizationSettings, hub_settings

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

tracer = handler_tracer()
clock: Clock = system_clock  # integration tests step this


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
        item = parse_item(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    org, sweep = deployed_settings()
    factory = client_factory()
    notifier = SnsNotifier(factory.sns(), sweep.topic_arn) if sweep.topic_arn and not sweep.dry_run else None
    outcome = sweep_target(
        factory,
        Target(item.account, item.region, item.dry_run),
        org,
        sweep,
        clock,
        records=AccountRecords(factory.dynamodb(), sweep.ledger_table),
        notifier=notifier,
        remaining_ms=context.get_remaining_time_in_millis,
    )
    summary = outcome.to_json()
    metrics.add_metric(name="OrganizationTargetErrors", unit=MetricUnit.Count, value=1 if outcome.error else 0)
    if outcome.error:
        logger.error("account not swept", extra={"account": outcome.account, "region": outcome.region})
    logger.info("account swept", extra={"account": outcome.account, "region": outcome.region, "outcome": summary})
    return summary
