"""spot_interruption: on a spot warning, checkpoint first, then snapshot, keep persistent data, tell the owner.

Kept light on purpose: like every handler, it imports the X-Ray SDK only where the deployment traces AWS
calls (trainctl.aws.observability). Every call of the checkpoint step goes out within a second of the start.

Where the deployment covers an organization, an event a member account forwarded is judged first (refused and
counted, only told, or acted on through the member's spoke role: trainctl.organization.forwarded); an event of the
hub's own account is handled exactly as in a single account.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, cast

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

    from trainctl.organization.forwarded import Verdict
    from trainctl.organization.settings import OrganizationSettings
    from trainctl.organization.spoke import SpokeFactory

# Powertools' idempotency store in the ledger table.
PERMISSIONS = needs("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")

clock: Clock = system_clock  # tests step this
sleep: Callable[[float], None] = time.sleep  # tests make waiting instant

# One set of actions per account, instance and kind of event: EventBridge delivers at least once. The account is
# part of it so that an event claiming another account for an instance id never answers that account's own event.
IDEMPOTENCY_KEY = '[account, detail."instance-id", "detail-type", detail.state]'
IDEMPOTENCY_WINDOW_SECONDS = 3600


# What makes a deployment cover an organization (OrganizationSettings.enabled): without either, the organization's
# settings are never loaded (about 40 ms of a first event).
ORGANIZATION_SWITCHES = ("TRAINCTL_ORG_UNITS", "TRAINCTL_ORG_INCLUDE_ACCOUNTS")

tracer = handler_tracer()


@cache
def deployed_settings() -> SpotSettings:
    return SpotSettings.from_env(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


@cache
def organization_settings() -> OrganizationSettings | None:
    if not any(os.environ.get(name) for name in ORGANIZATION_SWITCHES):
        return None
    # Cold start: the organization's settings load only where the deployment covers one.
    from trainctl.organization.settings import OrganizationSettings

    return OrganizationSettings.from_env(os.environ)


@cache
def hub_account() -> str:
    # Cold start: the organization's rooms load only where the deployment covers one.
    from trainctl.organization.forwarded import hub_account as own_account

    return own_account(client_factory())


@cache
def spoke_clients() -> SpokeFactory:
    # Cold start: the organization's rooms load only for an event a member account forwarded.
    from trainctl.organization.forwarded import reusing, spoke_as
    from trainctl.organization.forwarded_spot import SESSION

    return reusing(spoke_as(SESSION))


def forwarded_from(parsed: SpotEvent) -> Verdict | None:
    """None for an event of the hub's own account (or where no organization is covered); else its verdict."""
    org = organization_settings()
    if org is None or parsed.account == hub_account():
        return None
    # Cold start: the organization's rooms load only for an event a member account forwarded.
    from trainctl.organization.forwarded import judge_forwarded

    settings = deployed_settings()
    regions = org.regions_or(settings.regions)
    return judge_forwarded(client_factory(), settings.ledger_table, parsed.account, parsed.region, org, regions)


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


def handle(
    *, event: dict[str, Any], parsed: SpotEvent, started: float, member: Verdict | None = None
) -> dict[str, Any]:
    """`event` keys the idempotency record; `parsed` is the same event, validated once at the edge; `member` is the
    verdict on a member account's event (None: the hub's own)."""
    settings = deployed_settings()
    if member is not None:
        # Cold start: the organization's spot path loads only for an event a member account forwarded.
        from trainctl.organization.forwarded_spot import handle_member_spot

        org = cast("OrganizationSettings", organization_settings())
        return handle_member_spot(
            client_factory(),
            settings,
            org,
            member,
            parsed,
            clock=clock,
            watch=Stopwatch(started),
            sleep=sleep,
            spoke=spoke_clients(),
        )
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


def is_unreachable(exc: Exception) -> bool:
    # Cold start: loaded only once a member account's event failed.
    from trainctl.organization.spoke import SpokeUnreachable

    return isinstance(exc, SpokeUnreachable)


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
    member = forwarded_from(parsed)
    if member is not None and member.account is not None:
        # The member's account on this invocation's metrics as EMF metadata, not a dimension (a metric per account).
        metrics.add_metadata(key="account", value=member.account)
    if member is not None and member.refused is not None:
        # Refused before the idempotency record: nothing is written anywhere for an account not covered.
        metrics.add_metric(name="ForwardedRefused", unit=MetricUnit.Count, value=1)
        logger.warning(member.refusal_line())
        return {"status": "refused", "reason": member.refusal_line(), **member.to_json()}
    # An in-progress record then expires with this invocation, should it die mid-way.
    idempotency_config().register_lambda_context(context)
    try:
        result = idempotent_handling()(event=event, parsed=parsed, started=started, member=member)
    except Exception as exc:
        if member is not None and is_unreachable(exc):
            # The member's spoke role is missing, denies or answers from elsewhere: that account's error, by name.
            metrics.add_metric(name="ForwardedUnreachable", unit=MetricUnit.Count, value=1)
            logger.error("forwarded event not handled", extra={"error": str(exc)})
        raise
    metrics.add_metric(name=f"Spot_{result['status']}", unit=MetricUnit.Count, value=1)
    checkpoint = next((s for s in result.get("steps", []) if s["step"] == "checkpoint-command"), None)
    if checkpoint is not None:
        metrics.add_metric(name="CheckpointIssuedMs", unit=MetricUnit.Milliseconds, value=checkpoint["at_ms"])
    logger.info("spot event", extra={"result": result})
    return result
