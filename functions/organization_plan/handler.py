"""organization_plan: the organization run's first step; lists one item per covered account and region.

The Distributed Map reads `items`: each {"account", "region", "dry_run"}, handed to organization_sweep. Asked for
the cost run ({"capability": "cost"}), one item per covered account ({"capability", "account", "run"}); the cost
run's last step ({"task": "organization_cost_total", "run", "covered", "excluded"}) comes back here to sum the
children's results per account and per owner and to tell the breaches.
"""

from __future__ import annotations

import os
import uuid
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.clock import Clock, system_clock
from trainctl.core.errors import InvalidEvent
from trainctl.core.sweep_settings import SweepSettings
from trainctl.organization.members import plan_organization
from trainctl.organization.plan_events import OrganizationCostTotal, parse_plan_step
from trainctl.organization.record import AccountRecords
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


def cost_total(request: OrganizationCostTotal, org: OrganizationSettings) -> dict[str, Any]:
    """The cost run's last step: its children's results summed, checked, and the breaches told."""
    # Cold start: the cost total's code loads only at the cost run's last step, never for a plan.
    from trainctl.aws.notifications import SnsNotifier
    from trainctl.core.cost_settings import CostSettings
    from trainctl.organization.cost_total import CostRunResults, OrganizationAlerts, alert_organization, summarise

    settings = CostSettings.from_env(os.environ)
    factory = client_factory()
    dynamodb = factory.dynamodb()
    children = CostRunResults(dynamodb, settings.ledger_table).of_run(request.run)
    total = summarise(children, request.covered, request.excluded, org, settings)
    if settings.topic_arn:
        notifier = SnsNotifier(factory.sns(), settings.topic_arn)
        alerts = OrganizationAlerts(dynamodb, settings.ledger_table)
        total = alert_organization(total, alerts, notifier, settings, clock())
    summary = total.to_json()
    metrics.add_metric(name="OrganizationBurnRateHourlyUSD", unit=MetricUnit.NoUnit, value=summary["hourly_usd"])
    metrics.add_metric(name="OrganizationCostUnreachable", unit=MetricUnit.Count, value=len(total.unreachable))
    if total.unreachable:
        logger.error("accounts not priced", extra={"accounts": sorted(total.unreachable)})
    logger.info("organization cost", extra={k: summary[k] for k in ("hourly_usd", "total_covers", "breaches")})
    return summary


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse_plan_step(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    org, sweep = deployed_settings()
    if isinstance(request, OrganizationCostTotal):
        return cost_total(request, org)
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
    if request.capability == "cost":
        # The cost check reads and never acts: the same coverage, one child per account, its results under the run.
        run = uuid.uuid4().hex
        return {
            "run": run,
            "items": coverage.cost_items(run),
            "covered": list(coverage.covered),
            "excluded": coverage.excluded,
            "max_concurrency": org.org_max_concurrency,
        }
    return {
        "items": coverage.items(),
        "covered": list(coverage.covered),
        "excluded": coverage.excluded,
        "max_concurrency": org.org_max_concurrency,
    }
