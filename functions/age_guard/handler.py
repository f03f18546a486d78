"""age_guard: stamp who made each EC2 resource and when, from CloudTrail calls and first starts.

Where the deployment covers an organization, an event a member account forwarded is stamped in that account through
its spoke role once the account is covered (trainctl.organization.forwarded), and refused and counted otherwise.
Stamping goes ahead in a covered account still in its dry-run: it only writes who made a resource and when, where
unset, and only while the CloudTrail event is at hand. A use there is recorded in the hub's ledger; no mark tag is
taken away in the account. An event of the hub's own account is handled as in one account.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.metrics import MetricUnit

from trainctl.age_guard.rules import USE_EVENTS
from trainctl.age_guard.run import stamp_api_call, stamp_first_start, void_marks_on_use
from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.age_guard_settings import AgeGuardSettings
from trainctl.core.cloudtrail_events import CloudTrailApiCall
from trainctl.core.events import InvalidEvent, parse_age_guard_event

if TYPE_CHECKING:  # only named: the context is Lambda's, its Powertools type is for mypy
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from trainctl.core.envelopes import InstanceStateChange
    from trainctl.organization.forwarded import Verdict
    from trainctl.organization.settings import OrganizationSettings
    from trainctl.organization.spoke import SpokeFactory

# What makes a deployment cover an organization (OrganizationSettings.enabled): without either, the organization's
# settings are never loaded.
ORGANIZATION_SWITCHES = ("TRAINCTL_ORG_UNITS", "TRAINCTL_ORG_INCLUDE_ACCOUNTS")
# Who acts in a member's CloudTrail.
SESSION = "trainctl-age-guard"

tracer = handler_tracer()


@cache
def deployed_settings() -> AgeGuardSettings:
    return AgeGuardSettings.from_env(os.environ)


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
    settings = deployed_settings()
    if settings.account_id:
        return settings.account_id
    # Cold start: the organization's rooms load only where the deployment covers one.
    from trainctl.organization.forwarded import hub_account as own_account

    return own_account(client_factory())


def forwarded_from(parsed: CloudTrailApiCall | InstanceStateChange) -> Verdict | None:
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
def spoke_clients() -> SpokeFactory:
    # Cold start: the organization's rooms load only for an event a member account forwarded.
    from trainctl.organization.forwarded import reusing, spoke_as

    return reusing(spoke_as(SESSION))


def member_clients(member: Verdict, region: str) -> tuple[ClientFactory, AgeGuardSettings]:
    """The member's clients through its spoke role, and the settings that make its account the one stamped."""
    # Cold start: the spoke's path loads only for an event a member account forwarded.
    from trainctl.organization.forwarded import reach_member
    from trainctl.organization.spoke import SpokeUnreachable

    org = cast("OrganizationSettings", organization_settings())
    settings = deployed_settings()
    try:
        clients = reach_member(client_factory(), str(member.account), region, org, spoke=spoke_clients())
    except SpokeUnreachable as exc:
        # The member's spoke role is missing, denies or answers from elsewhere: that account's error, by name.
        metrics.add_metric(name="ForwardedUnreachable", unit=MetricUnit.Count, value=1)
        logger.error("forwarded event not handled", extra={"error": str(exc)})
        raise
    return clients, settings.model_copy(
        update={"account_id": member.account, "regions": org.regions_or(settings.regions)}
    )


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        parsed = parse_age_guard_event(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    member = forwarded_from(parsed)
    if member is not None and member.account is not None:
        # The member's account on this invocation's metrics as EMF metadata, not a dimension (a metric per account).
        metrics.add_metadata(key="account", value=member.account)
    if member is not None and member.refused is not None:
        metrics.add_metric(name="ForwardedRefused", unit=MetricUnit.Count, value=1)
        logger.warning(member.refusal_line())
        return {"status": "refused", "reason": member.refusal_line(), **member.to_json()}
    factory, settings = (
        (client_factory(), deployed_settings()) if member is None else member_clients(member, parsed.region)
    )
    if isinstance(parsed, CloudTrailApiCall) and parsed.detail.event_name in USE_EVENTS:
        # A member only told (not enforced) has the use recorded in the hub's ledger, and nothing written in it.
        result = void_marks_on_use(factory, parsed, settings, told_only=member.why_dry_run if member else None)
    elif isinstance(parsed, CloudTrailApiCall):
        result = stamp_api_call(factory, parsed, settings)
    else:
        result = stamp_first_start(factory, parsed, settings)
    metrics.add_metric(name=f"Stamp_{result.status}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="ResourcesStamped", unit=MetricUnit.Count, value=len(result.stamped))
    outcome = result.to_json() if member is None else {**result.to_json(), **member.to_json()}
    logger.info("age guard", extra={"result": outcome})
    return outcome
