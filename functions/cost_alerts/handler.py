"""cost_alerts: every 15 minutes estimate the money burning now and alert on breaches; record state changes."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import BURN_RATE_METRIC, PROJECTION_METRIC, handler_tracer, logger, metrics
from trainctl.core.clock import Clock, ensure_utc, format_instant, system_clock
from trainctl.core.cost_settings import CostSettings
from trainctl.core.events import CostRequest, InvalidEvent, parse_cost_event
from trainctl.cost.prices.chain import PriceBook
from trainctl.cost.rules import Transition
from trainctl.cost.run import (
    CostResult,
    ProviderCosts,
    effects_for,
    has_price_list_api,
    price_book_for,
    run_cost_check,
)
from trainctl.cost.store import DynamoDbCostStore

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

    # Only named too: a state change's envelope is built by the parser on the first state change it meets.
    from trainctl.core.envelopes import InstanceStateChange

tracer = handler_tracer()
clock: Clock = system_clock  # integration tests step this


@cache
def deployed_settings() -> CostSettings:
    return CostSettings.from_env(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@cache
def price_book() -> PriceBook:
    """Built once per cold start: an unreadable price file fails here, and the memory cache stays warm."""
    # Late-bound: tests step the module's clock after the book is built.
    return price_book_for(
        client_factory(),
        deployed_settings(),
        lambda: clock(),  # noqa: PLW0108
        use_table=True,
        use_api=has_price_list_api(os.environ),
    )


def emit_metrics(result: CostResult, summary: dict[str, Any]) -> None:
    metrics.add_metric(name=BURN_RATE_METRIC, unit=MetricUnit.NoUnit, value=summary["hourly_usd"])
    metrics.add_metric(name=PROJECTION_METRIC, unit=MetricUnit.NoUnit, value=summary["daily_usd"])
    metrics.add_metric(name="UnpricedResources", unit=MetricUnit.Count, value=len(summary["unpriced"]))
    metrics.add_metric(name="CostBreaches", unit=MetricUnit.Count, value=len(result.breaches))


def recorded_provider_burn(factory: ClientFactory, settings: CostSettings) -> tuple[ProviderCosts, ...]:
    """Each deployed provider's burn as its own function recorded it: a ledger read, never a provider's API."""
    # Cold start: the providers' recorded burn is read only where a provider is deployed.
    from trainctl.providers.burn import recorded_burn

    at, max_age = clock(), settings.provider_burn_max_age
    return recorded_burn(factory.dynamodb(), settings.ledger_table, settings.recorded_providers, at, max_age)


def record_state_change(change: InstanceStateChange, settings: CostSettings) -> dict[str, Any]:
    region = change.region
    if region not in settings.regions:
        return {"status": "ignored", "reason": f"region {region} is not in TRAINCTL_REGIONS"}
    at = ensure_utc(change.time)
    store = DynamoDbCostStore(client_factory().dynamodb(), settings.ledger_table)
    store.record(region, change.detail.instance_id, Transition(at, change.detail.state))
    return {
        "status": "recorded",
        "instance_id": change.detail.instance_id,
        "state": change.detail.state,
        "at": format_instant(at),
    }


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse_cost_event(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    settings = deployed_settings()
    if not isinstance(parsed, CostRequest):  # an instance state change
        outcome = record_state_change(parsed, settings)
        logger.info("state change", extra=outcome)
        return outcome
    regions = parsed.regions or settings.regions
    unknown = set(regions) - set(settings.regions)
    if unknown:
        raise InvalidEvent(f"regions {sorted(unknown)} are not in TRAINCTL_REGIONS {list(settings.regions)}")
    effective = settings.model_copy(update={"regions": regions})
    factory = client_factory()
    providers = recorded_provider_burn(factory, effective) if effective.recorded_providers else ()
    effects = effects_for(factory, effective)
    result = run_cost_check(factory, effective, clock, price_book(), effects, providers=providers)
    summary = result.to_json()
    emit_metrics(result, summary)
    logged = ("hourly_usd", "daily_usd", "unpriced", "breaches", "alerts", "pricing", "providers")
    logger.info("cost check", extra={k: summary[k] for k in logged if k in summary})
    return summary
