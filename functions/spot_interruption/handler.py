"""spot_interruption: on a spot warning, checkpoint first, then snapshot, keep persistent data, tell the owner.

Kept light on purpose: like every handler, it imports the X-Ray SDK only where the deployment traces AWS
calls (trainctl.aws.observability). Every call of the checkpoint step goes out within a second of the start.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from trainctl.aws import ledger
from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.clock import Clock, system_clock
from trainctl.core.envelopes import InstanceStateChange
from trainctl.core.events import InvalidEvent, parse_spot_event
from trainctl.core.permissions import needs
from trainctl.core.spot_events import RebalanceRecommendation, SpotEvent, SpotInterruptionWarning
from trainctl.core.spot_settings import SpotSettings
from trainctl.spot.recover import start_recovery
from trainctl.spot.run import Stopwatch, handle_interruption

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

# Powertools' idempotency store in the ledger table.
PERMISSIONS = needs("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")

clock: Clock = system_clock  # tests step this
sleep: Callable[[float], None] = time.sleep  # tests make waiting instant

# One set of actions per instance and kind of event: EventBridge delivers at least once.
IDEMPOTENCY_KEY = '[detail."instance-id", "detail-type", detail.state]'
IDEMPOTENCY_WINDOW_SECONDS = 3600


tracer = handler_tracer()


@cache
def deployed_settings() -> SpotSettings:
    return SpotSettings.from_env(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@cache
def idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath=IDEMPOTENCY_KEY,
        expires_after_seconds=IDEMPOTENCY_WINDOW_SECONDS,
        raise_on_no_idempotency_key=True,
    )


@cache
def idempotent_handling() -> Callable[..., dict[str, Any]]:
    """Built on first use, not at import: the persistence layer needs the factory's DynamoDB client."""
    settings = deployed_settings()
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.ledger_table,
        key_attr=ledger.PARTITION_KEY,
        sort_key_attr=ledger.SORT_KEY,
        expiry_attr=ledger.EXPIRES_AT,
        boto3_client=client_factory().dynamodb(),
    )
    handled: Callable[..., dict[str, Any]] = idempotent_function(
        data_keyword_argument="event", persistence_store=persistence, config=idempotency_config()
    )(handle)
    return handled


def handle(*, event: dict[str, Any], parsed: SpotEvent, started: float) -> dict[str, Any]:
    """`event` keys the idempotency record; `parsed` is the same event, validated once at the edge."""
    settings = deployed_settings()
    region = parsed.region
    if region not in settings.regions:
        return {"status": "ignored", "reason": f"region {region} is not in TRAINCTL_REGIONS", "region": region}
    if isinstance(parsed, InstanceStateChange):
        if parsed.detail.state != "terminated":
            return {
                "status": "ignored",
                "instance_id": parsed.detail.instance_id,
                "reason": f"{parsed.detail.state}: only a termination can start recovery",
            }
        outcome = start_recovery(
            client_factory(),
            settings,
            instance_id=parsed.detail.instance_id,
            region=region,
            terminated_at=parsed.time,
            clock=clock,
        )
    else:
        outcome = handle_interruption(
            client_factory(),
            settings,
            instance_id=parsed.detail.instance_id,
            region=region,
            kind="rebalance" if isinstance(parsed, RebalanceRecommendation) else "warning",
            interruption_id=parsed.id,
            event_time=parsed.time,
            clock=clock,
            watch=Stopwatch(started),
            sleep=sleep,
            action=parsed.detail.instance_action if isinstance(parsed, SpotInterruptionWarning) else "",
        )
    return outcome.to_json()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    try:
        parsed = parse_spot_event(event)  # refused before the idempotency record is written
    except InvalidEvent:
        logger.exception("refused event")
        raise
    # An in-progress record then expires with this invocation, should it die mid-way.
    idempotency_config().register_lambda_context(context)
    result = idempotent_handling()(event=event, parsed=parsed, started=started)
    metrics.add_metric(name=f"Spot_{result['status']}", unit=MetricUnit.Count, value=1)
    checkpoint = next((s for s in result.get("steps", []) if s["step"] == "checkpoint-command"), None)
    if checkpoint is not None:
        metrics.add_metric(name="CheckpointIssuedMs", unit=MetricUnit.Milliseconds, value=checkpoint["at_ms"])
    logger.info("spot event", extra={"result": result})
    return result
