"""A spot warning or rebalance recommendation a member account forwarded, handled by the hub through the spoke role.

Where the account is enforced on, the hub does what it does in one account (checkpoint, snapshot, keep, record,
tell) with the spoke's EC2 and SSM and its own ledger and topic. Where it is not (its first dry-run, or not enforced
here), the spot handler has no dry-run of its own, so the hub only reads the instance and tells its owner what it
would have done: nothing is written in the account, as a dry-run promises. A member's state changes start no
recovery: the recovery workflow relaunches in the hub's own account.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from trainctl.aws.clients import ClientFactory
from trainctl.core import tags
from trainctl.core.clock import Clock, ensure_utc, format_instant
from trainctl.core.envelopes import InstanceStateChange
from trainctl.core.notices import Notice, digest
from trainctl.core.spot_events import RebalanceRecommendation, SpotEvent, SpotInterruptionWarning
from trainctl.core.spot_settings import SpotSettings
from trainctl.core.text import one_line
from trainctl.organization.forwarded import Verdict, reach_member, spoke_as
from trainctl.organization.settings import OrganizationSettings
from trainctl.organization.spoke import SpokeFactory
from trainctl.spot.rules import EventKind, checkpoint_command, data_volumes, refusal, saves_data
from trainctl.spot.run import Stopwatch, describe_instance, handle_interruption, owner_notice

# Who acts in the member's CloudTrail.
SESSION = "trainctl-spot-interruption"


def handle_member_spot(
    hub: ClientFactory,
    settings: SpotSettings,
    org: OrganizationSettings,
    verdict: Verdict,
    event: SpotEvent,
    *,
    clock: Clock,
    watch: Stopwatch,
    sleep: Callable[[float], None] = time.sleep,
    spoke: SpokeFactory | None = None,
) -> dict[str, Any]:
    """One forwarded spot event of a covered member; a spoke that cannot be reached raises SpokeUnreachable."""
    assert verdict.account is not None and verdict.refused is None
    account = verdict.account
    marks = {"account": account, "why_dry_run": verdict.why_dry_run}
    if isinstance(event, InstanceStateChange):
        return {
            **marks,
            "status": "ignored",
            "instance_id": event.detail.instance_id,
            "region": event.region,
            "reason": "a member's instance is never relaunched: the recovery workflow runs in the hub's account",
        }
    member = reach_member(hub, account, event.region, org, spoke=spoke or spoke_as(SESSION))
    # The spoke stands in every region the organization covers, whatever the hub's own TRAINCTL_REGIONS say.
    effective = settings.model_copy(update={"regions": org.regions_or(settings.regions)})
    kind: EventKind = "rebalance" if isinstance(event, RebalanceRecommendation) else "warning"
    action = event.detail.instance_action if isinstance(event, SpotInterruptionWarning) else ""
    if verdict.why_dry_run is not None:
        told = tell_only(member, effective, account, verdict.why_dry_run, event, kind=kind)
        return {**marks, **told}
    outcome = handle_interruption(
        member,
        effective,
        instance_id=event.detail.instance_id,
        region=event.region,
        kind=kind,
        interruption_id=event.id,
        event_time=event.time,
        clock=clock,
        watch=watch,
        sleep=sleep,
        action=action,
    )
    return {**marks, **outcome.to_json()}


def tell_only(
    member: ClientFactory, settings: SpotSettings, account: str, why_dry_run: str, event: SpotEvent, *, kind: EventKind
) -> dict[str, Any]:
    """Read the instance in the member and tell its owner what would have been done; write nothing there."""
    instance_id = event.detail.instance_id
    region = event.region
    instance = describe_instance(member.ec2(region), instance_id, region)
    why_not = refusal(instance, settings)
    if why_not is not None or instance is None:
        return {"status": "refused", "instance_id": instance_id, "region": region, "reason": why_not or ""}
    owner = instance.tags.get(tags.OWNER, "")
    would = [f"send the checkpoint command (hook {one_line(checkpoint_command(instance, settings).hook, 64)})"]
    if saves_data(kind, settings):
        volumes = data_volumes(instance)
        would.append(f"snapshot {len(volumes)} data volume(s): {', '.join(volumes) or 'none attached'}")
        would.append("keep persistent volumes from dying with the instance (DeleteOnTermination=false)")
    if settings.topic_arn is not None:
        notice = _dry_run_notice(account, why_dry_run, event, kind=kind, owner=owner, would=would)
        owner_notice(member, settings.topic_arn, notice)
    return {
        "status": "dry-run",
        "instance_id": instance_id,
        "region": region,
        "kind": kind,
        "owner": owner,
        "would": would,
        "reason": f"account {account} is not enforced on ({why_dry_run}): nothing was done in it",
    }


def _dry_run_notice(
    account: str, why_dry_run: str, event: SpotEvent, *, kind: str, owner: str, would: list[str]
) -> Notice:
    instance_id, region = event.detail.instance_id, event.region
    return Notice(
        kind="spot",
        title=f"trainctl spot {kind}: {instance_id} (dry-run: nothing done)",
        summary=(
            f"EC2 sent a spot {kind} for {instance_id} ({region}) in account {account}, which trainctl does not "
            f"enforce on yet ({why_dry_run}); it would have:"
        ),
        lines=tuple(would),
        next_steps=(
            "Checkpoint by hand now if the job can: EC2 reclaims a warned instance in about two minutes.",
            "Enforcement is switched on by TRAINCTL_ORG_ENFORCE_UNITS or TRAINCTL_ORG_ENFORCE_ACCOUNTS, after the "
            "account's first dry-run sweep.",
        ),
        owner=owner or None,
        severity="warning",
        thread=f"trainctl-spot-{digest(instance_id)}",
        resources=(instance_id,),
        facts={"region": region, "account": account, "event_time": format_instant(ensure_utc(event.time))},
    )
