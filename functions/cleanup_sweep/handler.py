"""cleanup_sweep: run by an EventBridge Scheduler schedule; one domain call, a JSON summary back."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainctl.aws import ClientFactory
from trainctl.cleanup import SweepResult, run_sweep
from trainctl.clock import Clock, system_clock
from trainctl.events import InvalidEvent, parse_sweep_trigger
from trainctl.lease import DynamoDbLease
from trainctl.ledger import DynamoDbLedger
from trainctl.notify import SnsNotifier
from trainctl.observability import logger, metrics
from trainctl.settings import SweepSettings

tracer = Tracer()
clock: Clock = system_clock  # integration tests step this


@cache
def deployed_settings() -> SweepSettings:
    """Loaded once per cold start; a bad setting fails every invocation loudly, naming the variable."""
    return SweepSettings.from_env(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


def emit_metrics(result: SweepResult) -> None:
    summary = result.summary()
    metrics.add_metric(name="Scanned", unit=MetricUnit.Count, value=result.plan.scanned)
    metrics.add_metric(name="Candidates", unit=MetricUnit.Count, value=int(str(summary["candidates"])))
    for decision in result.decisions:
        metrics.add_metric(name=f"Action_{decision.action}", unit=MetricUnit.Count, value=1)
        for protection in decision.protections:
            metrics.add_metric(name=f"Protection_{protection}", unit=MetricUnit.Count, value=1)
    failed = sum(1 for d in result.decisions if d.outcome == "failed")
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=failed)


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
    dry = effective.dry_run
    result = run_sweep(
        factory,
        effective,
        clock,
        ledger=None if dry else DynamoDbLedger(factory.dynamodb(), effective.ledger_table),
        notifier=None if dry or not effective.topic_arn else SnsNotifier(factory.sns(), effective.topic_arn),
        remaining_ms=context.get_remaining_time_in_millis,
        lease=None if dry else DynamoDbLease(factory.dynamodb(), effective.ledger_table),
    )
    emit_metrics(result)
    logger.info("sweep finished", extra={"sweep_id": result.sweep_id, "summary": result.summary()})
    for decision in result.decisions:
        if decision.action != "keep" or decision.outcome == "failed":
            logger.info("decision", extra={"decision": decision.to_json()})
    return result.to_json()
