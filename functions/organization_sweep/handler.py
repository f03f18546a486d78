"""organization_sweep: one child of the organization run's Distributed Map; one account in one region.

The existing sweep runs with the spoke role's credentials and the hub's ledger and notifier. A spoke that cannot
be reached is this account's error: returned by name (outcome "failed") and counted, never raised, so the other
children run on and the run's summary names it.

An item of the cost run ({"capability": "cost", "account", "run"}) prices that account in every covered region
instead, and keeps its result in the hub's ledger under the run for the run's total (trainctl.organization.cost).
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
from trainctl.core.errors import InvalidEvent
from trainctl.core.sweep_settings import SweepSettings
from trainctl.organization.events import OrganizationCostItem, parse_item
from trainctl.organization.record import AccountRecords
from trainctl.organization.rules import Target
from trainctl.organization.run import sweep_target
from trainctl.organization.settings import OrganizationSettings, hub_settings

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

    # Only named too: the price chain loads in a child that prices.
    from trainctl.cost.prices.chain import PriceBook

tracer = handler_tracer()
clock: Clock = system_clock  # integration tests step this


@cache
def deployed_settings() -> tuple[OrganizationSettings, SweepSettings]:
    """Loaded once per cold start; a bad setting fails every invocation loudly, naming the variable."""
    return hub_settings(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


def price_account_item(item: OrganizationCostItem, org: OrganizationSettings) -> dict[str, Any]:
    """The cost run's child: one account priced through its spoke role, its result kept under the run."""
    # Cold start: the cost check's code loads only in a child that prices, never in a sweeping one.
    from trainctl.core.cost_settings import CostSettings
    from trainctl.cost.run import has_price_list_api
    from trainctl.organization.cost import child_price_book, price_account
    from trainctl.organization.cost_total import CostRunResults

    settings = CostSettings.from_env(os.environ)
    hub = client_factory()
    use_api = has_price_list_api(os.environ)

    def book_for(spoke: ClientFactory) -> PriceBook:
        return child_price_book(hub, spoke, settings, clock, use_table=True, use_api=use_api)

    outcome = price_account(hub, item.account, org, settings, clock, book_for=book_for)
    summary = outcome.to_json()
    CostRunResults(hub.dynamodb(), settings.ledger_table).keep(item.run, summary, clock())
    metrics.add_metric(name="OrganizationTargetErrors", unit=MetricUnit.Count, value=1 if outcome.error else 0)
    if outcome.error:
        logger.error("account not priced", extra={"account": outcome.account})
    logger.info("account priced", extra={"account": outcome.account, "hourly_usd": summary["hourly_usd"]})
    return summary


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        item = parse_item(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    # The account on this child's metrics as EMF metadata, kept in the log line: as a dimension each account would be
    # a metric of its own, each billed. The item's account has an account id's shape (parse_item refuses any other).
    metrics.add_metadata(key="account", value=item.account)
    org, sweep = deployed_settings()
    if isinstance(item, OrganizationCostItem):
        return price_account_item(item, org)
    factory = client_factory()
    notifier = SnsNotifier(factory.sns(), sweep.topic_arn) if sweep.topic_arn and not sweep.dry_run else None
    outcome = sweep_target(
        factory,
        Target(item.account, item.region, item.dry_run, item.why_dry_run),
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
