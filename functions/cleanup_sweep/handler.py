"""cleanup_sweep: run by an EventBridge Scheduler schedule; one domain call, a JSON summary back."""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.clock import Clock, system_clock
from trainctl.core.events import InvalidEvent, parse_sweep_trigger
from trainctl.core.sweep_settings import SweepSettings
from trainctl.cost.decided import dollars_avoided
from trainctl.sweep.run import SweepResult, effects_for, run_sweep

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

tracer = handler_tracer()
clock: Clock = system_clock  # integration tests step this

# Dollars avoided, an estimate (the dashboard says so on its widget): the hourly list price each stop, termination or
# deletion was decided at (trainctl.cost.decided: the shipped price file; spot at its on-demand price, an upper
# bound; unpriced counts nothing), times the hours it would otherwise have kept costing before someone noticed.
DOLLARS_AVOIDED_METRIC = "DollarsAvoided"
HOURS_UNTIL_NOTICED = 168
# Protections that can keep a resource from the guardrail for good: each such decision is logged every sweep.
EVADING = ("unreadable", "min-age")


@cache
def deployed_settings() -> SweepSettings:
    """Loaded once per cold start; a bad setting fails every invocation loudly, naming the variable."""
    return SweepSettings.from_env(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


def emit_metrics(result: SweepResult, summary: dict[str, Any]) -> None:
    """One value per metric and sweep: EMF takes at most 100 values per metric, a sweep can decide thousands."""
    metrics.add_metric(name="Scanned", unit=MetricUnit.Count, value=summary["scanned"])
    metrics.add_metric(name="Candidates", unit=MetricUnit.Count, value=summary["candidates"])
    for action, count in summary["actions"].items():
        metrics.add_metric(name=f"Action_{action}", unit=MetricUnit.Count, value=count)
    for protection, count in summary["protections"].items():
        metrics.add_metric(name=f"Protection_{protection}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=summary["outcomes"].get("failed", 0))
    avoided = dollars_avoided(result.decisions, HOURS_UNTIL_NOTICED)
    metrics.add_metric(name=DOLLARS_AVOIDED_METRIC, unit=MetricUnit.NoUnit, value=avoided)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse_sweep_trigger(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    settings = deployed_settings()
    if request.dry_run is False and settings.dry_run:
        raise InvalidEvent("this deployment is dry-run: an event cannot turn enforcement on")
    regions = request.regions or settings.regions
    unknown = set(regions) - set(settings.regions)
    if unknown:
        raise InvalidEvent(f"regions {sorted(unknown)} are not in TRAINCTL_REGIONS {list(settings.regions)}")
    effective = settings.model_copy(update={"dry_run": settings.dry_run or bool(request.dry_run), "regions": regions})
    factory = client_factory()
    effects = effects_for(factory, effective)
    result = run_sweep(
        factory,
        effective,
        clock,
        ledger=effects.ledger,
        notifier=effects.notifier,
        lease=effects.lease,
        remaining_ms=context.get_remaining_time_in_millis,
    )
    summary = result.summary()
    emit_metrics(result, summary)
    logger.info("sweep finished", extra={"sweep_id": result.sweep_id, "summary": summary})
    for decision in result.decisions:
        # Changes, failures, and what evades the guardrail (the dashboard lists what stays so for a week).
        if decision.action != "keep" or decision.outcome == "failed" or set(EVADING) & set(decision.protections):
            logger.info("decision", extra={"decision": decision.to_json()})
    return result.to_json()
