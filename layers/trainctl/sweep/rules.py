"""Sweep decisions: pure functions of (inventory, observations, settings, clock) -> plan.

Nothing here calls AWS or reads the wall clock; the same plan drives dry-run and enforcement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, NamedTuple

from trainctl.core import names, tags
from trainctl.core.accelerators import may_have_accelerators
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.lifetimes import InvalidTtl, born_at, stamp_after_creation, ttl_expiry
from trainctl.core.marks import UNOBSERVED, read_mark
from trainctl.core.observations import Training, TrainingCheck, Utilisation
from trainctl.core.protections import (
    LeftBehind,
    Protection,
    in_scope,
    is_attached,
    is_backup_managed,
    is_persistent,
    is_prewarming,
    persistent_key_warning,
    volumes_left_behind,
    younger_than_min_age,
)
from trainctl.core.resources import Guards, Instance, RegionInventory, Resource, Snapshot, Volume
from trainctl.core.sweep_settings import SweepSettings

Action = Literal["keep", "mark", "unmark", "delete", "terminate", "stop"]
DESTRUCTIVE: frozenset[str] = frozenset({"delete", "terminate", "stop"})
# Clock skew between the sweep that wrote a mark and the one reading it.
MARK_SLACK = timedelta(minutes=1)


class Reason(StrEnum):
    UNATTACHED = "unattached"
    STOPPED_TOO_LONG = "stopped-too-long"
    IDLE = "idle"
    SNAPSHOT_RETENTION = "snapshot-retention"
    TTL_EXPIRED = "ttl-expired"
    # Within the warning lead of expiry: the owner is told (a mark), nothing is done yet.
    TTL_EXPIRING = "ttl-expiring"
    PREWARM_LEFTOVER = "prewarm-leftover"


# NamedTuples for the cold start, as Seen below.
class Observations(NamedTuple):
    """What a sweep saw of its instances besides EC2's inventory: utilisation and training checks."""

    utilisation: Mapping[str, Utilisation] = MappingProxyType({})
    training: Mapping[str, TrainingCheck] = MappingProxyType({})
    # When the training check is skipped (dry-run), this says why: no answer, so no mark and no action.
    training_unchecked_reason: str = "no answer from the training check"


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class Seen(NamedTuple):
    """What the sweep saw of a resource before deciding: what pricing it needs, then and later (the ledger keeps it)."""

    state: str = ""
    kind: str = ""  # instance type, volume type; "" for a snapshot
    size_gib: int | None = None  # a volume's size, a snapshot's volume's size
    zone: str = ""
    lifecycle: str = ""  # an instance's: on-demand or spot
    iops: int | None = None
    throughput_mibps: int | None = None

    @classmethod
    def of(cls, resource: Resource) -> Seen:
        if isinstance(resource, Instance):
            return cls(resource.state, resource.instance_type, None, resource.availability_zone, resource.lifecycle)
        if isinstance(resource, Volume):
            return cls(
                resource.state,
                resource.volume_type,
                resource.size_gib,
                resource.availability_zone,
                iops=resource.iops,
                throughput_mibps=resource.throughput_mibps,
            )
        return cls(resource.state, size_gib=resource.volume_size_gib)

    def to_json(self) -> dict[str, object]:
        said = {
            "state": self.state,
            "type": self.kind,
            "size_gib": self.size_gib,
            "zone": self.zone,
            "lifecycle": self.lifecycle,
            "iops": self.iops,
            "throughput_mibps": self.throughput_mibps,
        }
        return {key: value for key, value in said.items() if value not in ("", None)}


@dataclass(frozen=True, slots=True)
class Decision:
    """What a sweep decides about one resource, why, and (once acted on) what came of it."""

    resource_id: str
    resource_type: str
    region: str
    action: Action
    reasons: tuple[str, ...] = ()
    protections: tuple[str, ...] = ()
    detail: str = ""
    cleanup_after: datetime | None = None
    # Persistent (volume id, device name) pairs that must get DeleteOnTermination=false
    # before this instance is terminated.
    keep_volumes: tuple[tuple[str, str], ...] = ()
    owner: str | None = None
    outcome: str = "planned"
    # What a mark promises to do once its grace period is over: a sweep never does anything else on it.
    announced: Action | None = None
    # A stop of an instance configured for hibernation hibernates it, so its memory survives too.
    hibernate: bool = False
    # The state the decision was taken on: the executor re-reads it just before acting, and acts only if unchanged.
    seen_state: str = ""
    # When trainctl's ledger says the mark behind a destructive decision was written: use since then withdraws it.
    marked_at: datetime | None = None
    # Owners of record the trainctl:owner tag no longer names (age_guard's record, the owner told of the mark):
    # they hear of it too, whatever the tag says now.
    also_tell: tuple[str, ...] = ()
    # What the sweep saw of the resource, and what it cost per hour then (a destructive decision's, from the shipped
    # price file; None when unpriced): dollars avoided, the ledger and `trainctl report` read them from here.
    seen: Seen | None = None
    hourly_usd: float | None = None
    price_source: str = ""

    @property
    def destructive(self) -> bool:
        return self.action in DESTRUCTIVE

    def to_json(self) -> dict[str, object]:
        return {
            "resource_id": self.resource_id,
            "resource_type": self.resource_type,
            "region": self.region,
            "action": self.action,
            "reasons": list(self.reasons),
            "protections": list(self.protections),
            "detail": self.detail,
            "cleanup_after": format_instant(self.cleanup_after) if self.cleanup_after else None,
            "keep_volumes": [volume_id for volume_id, _ in self.keep_volumes],
            "owner": self.owner,
            "also_told": list(self.also_tell),
            "outcome": self.outcome,
            "announced": self.announced,
            "seen": self.seen.to_json() if self.seen else None,
            "hourly_usd": self.hourly_usd,
            "price_source": self.price_source or None,
        }


class SweepPlan(NamedTuple):
    """One sweep's decisions about every resource it read, at one instant."""

    at: datetime
    decisions: tuple[Decision, ...]
    scanned: int
    in_scope: int
    warnings: tuple[str, ...] = ()

    def summary(self) -> dict[str, object]:
        actions: dict[str, int] = {}
        protections: dict[str, int] = {}
        outcomes: dict[str, int] = {}
        for decision in self.decisions:
            actions[decision.action] = actions.get(decision.action, 0) + 1
            outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
            for name in decision.protections:
                protections[name] = protections.get(name, 0) + 1
        return {
            "scanned": self.scanned,
            "in_scope": self.in_scope,
            "candidates": sum(1 for d in self.decisions if d.reasons),
            "actions": dict(sorted(actions.items())),
            "protections": dict(sorted(protections.items())),
            "outcomes": dict(sorted(outcomes.items())),
            "warnings": len(self.warnings),
            # Instances no training check can reach: kept unless decided on metrics; the README says how to fix.
            "not_managed_by_ssm": protections.get(str(Protection.NOT_MANAGED_BY_SSM), 0),
        }


def is_prewarm_worker(resource: Resource) -> bool:
    """A worker of the pre-warm workflow: known by the instance profile only trainctl's role may pass, never a tag."""
    return isinstance(resource, Instance) and resource.instance_profile_arn.endswith(f"/{names.PREWARM_PROFILE}")


Idleness = Literal["idle", "in use", "no evidence"]


def idleness(instance: Instance, usage: Utilisation | None, settings: SweepSettings, now: datetime) -> Idleness:
    """What CloudWatch says of a running instance over the idle window: idle, in use, or nothing either way."""
    if instance.state != "running":
        return "in use"  # not running: no idleness to speak of (a stop has reasons of its own)
    if now - instance.launch_time < settings.idle_window:
        return "in use"  # started within the window: a start is use
    if usage is None or usage.cpu_percent is None or usage.network_bytes_per_second is None:
        return "no evidence"
    if usage.cpu_percent >= settings.idle_cpu_percent:
        return "in use"
    if usage.network_bytes_per_second >= settings.idle_network_bytes_per_second:
        return "in use"
    if usage.gpu_percent is None:
        # No accelerator reading: fine for a type without accelerators; for one that has or may have them (no
        # CloudWatch agent, Neuron chips, a type the table does not know), no evidence is not idleness.
        return "no evidence" if may_have_accelerators(instance.instance_type) else "idle"
    return "idle" if usage.gpu_percent < settings.idle_gpu_percent else "in use"


def is_idle(instance: Instance, usage: Utilisation | None, settings: SweepSettings, now: datetime) -> bool:
    return idleness(instance, usage, settings, now) == "idle"


def unreadable_values(resource: Resource, settings: SweepSettings) -> list[str]:
    """Every value on the resource trainctl cannot read: each protects the resource, by name."""
    problems: list[str] = []
    stamped = resource.tags.get(tags.CREATED_AT)
    if stamped is not None:
        try:
            parse_instant(stamped)
        except ValueError as exc:
            problems.append(f"{tags.CREATED_AT}: {exc}")
    late_stamp = stamp_after_creation(resource)
    if late_stamp:
        problems.append(late_stamp)
    try:
        lifetime_end(resource, settings)
    except InvalidTtl as exc:
        problems.append(str(exc))
    if isinstance(resource, Instance) and resource.state == "stopped" and resource.stopped_since is None:
        problems.append("the time it stopped is not in its state reason")
    return problems


def candidate_reasons(
    resource: Resource, observations: Observations, settings: SweepSettings, now: datetime
) -> list[str]:
    """Why a resource should go; a value that cannot be read gives no reason (it protects instead)."""
    reasons: list[str] = []
    try:
        expiry = lifetime_end(resource, settings)
    except InvalidTtl:
        expiry = None
    if expiry is not None and now >= expiry:
        reasons.append(Reason.TTL_EXPIRED)
    elif expiry is not None and now >= expiry - settings.ttl_warning_lead:
        reasons.append(Reason.TTL_EXPIRING)
    if isinstance(resource, Volume):
        if resource.state == "available" and not resource.attachments:
            reasons.append(Reason.UNATTACHED)
    elif isinstance(resource, Snapshot):
        # Retention counts from the newest creation signal, like every age rule: the safe reading.
        if resource.state == "completed" and now - born_at(resource) >= settings.snapshot_retention:
            reasons.append(Reason.SNAPSHOT_RETENTION)
    else:
        if is_prewarm_worker(resource) and now - resource.launch_time >= settings.prewarm_worker_max_age:
            reasons.append(Reason.PREWARM_LEFTOVER)
        # An unknown stop time is no evidence of a long stop.
        stopped_since = resource.stopped_since if resource.state == "stopped" else None
        if stopped_since is not None and now - stopped_since >= settings.stopped_max_age:
            reasons.append(Reason.STOPPED_TOO_LONG)
        if is_idle(resource, observations.utilisation.get(resource.resource_id), settings, now):
            reasons.append(Reason.IDLE)
    return reasons


def lifetime_end(resource: Resource, settings: SweepSettings) -> datetime | None:
    default = {
        "instance": settings.max_age_instance,
        "volume": settings.max_age_volume,
        "snapshot": settings.max_age_snapshot,
    }[resource.resource_type]
    return ttl_expiry(resource, default)


def planned_action(
    resource: Resource, reasons: Sequence[str], observations: Observations, settings: SweepSettings
) -> Action:
    """The action a decision announces: the reasons', except that CloudWatch's word decides idleness alone."""
    if _unmanaged(resource, observations) and _decided_on_metrics(reasons, settings):
        return settings.idle_action
    return intended_action(resource, reasons, settings)


def intended_action(resource: Resource, reasons: Sequence[str], settings: SweepSettings) -> Action:
    """The action the reasons call for. A ttl about to run out is a warning, never a reason to act now."""
    acting = set(reasons) - {Reason.TTL_EXPIRING}
    if isinstance(resource, Instance):
        if not acting:
            return "terminate"  # what expiry will do
        if acting - {Reason.IDLE}:
            return "terminate"
        return settings.idle_action
    return "delete"


def protections_for(
    resource: Resource,
    action: Action,
    observations: Observations,
    inventory_facts: InventoryFacts,
    settings: SweepSettings,
    now: datetime,
    reasons: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """Every protection that applies, by name, with a line of detail for each.

    A training check that could not answer this time is no protection (no answer is not evidence of use): see
    `unanswered_training_check`, which holds back marking and acting instead.
    """
    found: list[str] = []
    details: list[str] = []
    if not in_scope(resource, settings.scope_tag):
        found.append(Protection.OUT_OF_SCOPE)
        details.append(f"no {settings.scope_tag}=true")
    if is_persistent(resource.tags):
        found.append(Protection.PERSISTENT)
    if younger_than_min_age(resource, settings.min_age, now):
        found.append(Protection.MIN_AGE)
    for problem in unreadable_values(resource, settings):
        found.append(Protection.UNREADABLE)
        details.append(problem)
    if isinstance(resource, Volume) and is_attached(resource):
        found.append(Protection.ATTACHED)
        details.append("attached to " + ",".join(a.instance_id for a in resource.attachments))
    if isinstance(resource, Volume) and is_prewarming(resource, now):
        found.append(Protection.PREWARMING)
        details.append("the pre-warm workflow restored it and has not reported yet")
    if isinstance(resource, Snapshot):
        if resource.resource_id in inventory_facts.ami_snapshots:
            found.append(Protection.AMI_BACKED)
        if resource.resource_id in inventory_facts.launch_template_snapshots:
            found.append(Protection.LAUNCH_TEMPLATE)
            details.append("a launch template restores it")
        if is_backup_managed(resource):
            found.append(Protection.BACKUP_MANAGED)
    if isinstance(resource, Instance):
        found_here, details_here = _instance_protections(resource, action, reasons, observations, settings)
        found += found_here
        details += details_here
    return list(dict.fromkeys(found)), details


def _instance_protections(
    instance: Instance, action: Action, reasons: Sequence[str], observations: Observations, settings: SweepSettings
) -> tuple[list[str], list[str]]:
    found: list[str] = []
    details: list[str] = []
    if instance.controller:
        found.append(Protection.MANAGED_ELSEWHERE)
        details.append(f"run by {instance.controller}: scale it down there instead")
    if action == "stop" and instance.spot_request_type == "one-time":
        found.append(Protection.CANNOT_STOP)
        details.append("a one-time spot instance cannot be stopped")
    if action == "stop" and instance.instance_store is not False and not settings.stop_instance_store:
        found.append(Protection.INSTANCE_STORE)
        details.append(
            "its instance-store volumes would lose their data"
            if instance.instance_store
            else "whether it has instance-store volumes is unknown"
        )
    if needs_training_check(instance, action):
        check = observations.training.get(instance.resource_id)
        if check is not None and check.status is Training.ACTIVE:
            found.append(Protection.TRAINING_ACTIVE)
            details.append(check.detail or "training running")
        elif check is not None and check.status is Training.NOT_MANAGED and not _decided_on_metrics(reasons, settings):
            found.append(Protection.NOT_MANAGED_BY_SSM)
            details.append(
                "SSM does not manage it, so no training check can answer; "
                "TRAINCTL_IDLE_WITHOUT_TRAINING_CHECK=metrics decides such instances on utilisation"
            )
    return found, details


def needs_training_check(instance: Instance, action: Action) -> bool:
    """A running instance is stopped or terminated only once SSM has said no training process runs on it."""
    return (
        instance.state in ("running", "pending") and action in ("stop", "terminate") and not is_prewarm_worker(instance)
    )


def _decided_on_metrics(reasons: Sequence[str], settings: SweepSettings) -> bool:
    # Utilisation alone decides idleness only, and only when the team chose it; an expiry is no idleness.
    return settings.idle_without_training_check == "metrics" and Reason.IDLE in reasons


def _unmanaged(instance: Resource, observations: Observations) -> bool:
    check = observations.training.get(instance.resource_id)
    return check is not None and check.status is Training.NOT_MANAGED


def unanswered_training_check(
    resource: Resource, action: Action, reasons: Sequence[str], observations: Observations, settings: SweepSettings
) -> str | None:
    """Why the training check gave no verdict on an instance about to be marked or acted on, or None.

    No answer is not evidence of use: it withdraws no mark. It only holds back a new mark and the action.
    """
    if not isinstance(resource, Instance) or not needs_training_check(resource, action):
        return None
    check = observations.training.get(resource.resource_id)
    if check is None:
        return observations.training_unchecked_reason
    if check.status is Training.NOT_MANAGED and _decided_on_metrics(reasons, settings):
        return None
    if check.status is Training.UNKNOWN:
        return check.detail or "the training check gave no verdict"
    return None


# A NamedTuple for the cold start, as Seen.
class InventoryFacts(NamedTuple):
    """What a region's inventory says about other resources: the snapshots images and templates restore."""

    ami_snapshots: frozenset[str] = frozenset()
    launch_template_snapshots: frozenset[str] = frozenset()
    volumes: Mapping[str, Volume] = MappingProxyType({})

    @classmethod
    def of(cls, inventory: RegionInventory) -> InventoryFacts:
        return cls(
            ami_snapshots=frozenset(s for image in inventory.images for s in image.snapshot_ids),
            launch_template_snapshots=inventory.launch_template_snapshots,
            volumes={volume.resource_id: volume for volume in inventory.volumes},
        )


def decide(
    resource: Resource, observations: Observations, facts: InventoryFacts, settings: SweepSettings, now: datetime
) -> Decision | None:
    reasons = candidate_reasons(resource, observations, settings, now)
    mark = read_mark(resource)
    scoped = in_scope(resource, settings.scope_tag)
    base = Decision(
        resource_id=resource.resource_id,
        resource_type=resource.resource_type,
        region=resource.region,
        action="keep",
        reasons=tuple(str(r) for r in reasons),
        owner=resource.tags.get(tags.OWNER),
        cleanup_after=mark.at,
        seen=Seen.of(resource),
    )
    if not reasons:
        if (
            mark.at is not None
            and scoped
            and isinstance(resource, Instance)
            and idleness(resource, observations.utilisation.get(resource.resource_id), settings, now) == "no evidence"
        ):
            # CloudWatch said nothing this time: no evidence of use, so the mark stays and nobody is told.
            return replace(base, outcome=UNOBSERVED, detail="no utilisation datapoints this sweep: the mark stays")
        if mark.present and scoped:
            return replace(base, action="unmark", detail="no longer a candidate")
        return None

    action = planned_action(resource, reasons, observations, settings)
    protections, details = protections_for(resource, action, observations, facts, settings, now, reasons)
    if protections:
        # A protected resource loses its mark, so it gets a full grace period (and a notice)
        # if the protection ever lifts. Out-of-scope resources are never written to.
        unmark = mark.present and scoped
        return replace(
            base,
            action="unmark" if unmark else "keep",
            protections=tuple(str(p) for p in protections),
            detail="; ".join(details),
        )
    unanswered = unanswered_training_check(resource, action, reasons, observations, settings)
    if set(reasons) == {Reason.TTL_EXPIRING}:
        # Only a warning: mark (or move the mark) to the expiry itself, announcing what expiry will do.
        expiry = lifetime_end(resource, settings)
        assert expiry is not None
        if mark.at is not None and mark.at >= expiry:
            # Warned if the mark is trainctl's own: confirm_pending_marks checks that against the ledger.
            return replace(base, detail=f"expires at {format_instant(expiry)}; owner warned")
        return warning_mark(base, resource, action, settings, now)
    if mark.at is None:
        if unanswered:
            # A notice would promise an action that waits on an answer: no mark until the check says idle.
            return replace(
                base,
                protections=(str(Protection.TRAINING_ACTIVE),),
                detail=f"{unanswered}; not marked until the training check answers",
            )
        return fresh_mark(base, resource, action, settings, now, why=mark.unreadable and "its mark was unreadable")
    if mark.at > now + max(settings.grace_period, settings.ttl_warning_lead) + MARK_SLACK:
        # Further ahead than any mark trainctl writes: someone's promise of never, not trainctl's.
        return fresh_mark(base, resource, action, settings, now, why="its mark is further ahead than trainctl writes")
    if now < mark.at:
        waiting = f"; training check: {unanswered}" if unanswered else ""
        return replace(base, detail=f"grace period until {format_instant(mark.at)}{waiting}")
    if now < mark.at + settings.event_delivery_lag:
        # CloudTrail is minutes late: a use made just before the grace ended may not have been heard yet.
        heard_by = format_instant(mark.at + settings.event_delivery_lag)
        return replace(base, detail=f"grace period over; waits for late events until {heard_by}")
    if unanswered:
        return replace(
            base, detail=f"grace period over; {unanswered}: the mark stays, and it will {action} once idle by SSM"
        )
    left = volumes_left_behind(resource, facts.volumes, settings.scope_tag) if isinstance(resource, Instance) else ()
    keep_volumes = tuple((v.volume_id, v.device_name) for v in left if v.clear_delete_on_termination)
    hibernate = isinstance(resource, Instance) and action == "stop" and resource.hibernation_configured
    return replace(
        base,
        action=action,
        keep_volumes=keep_volumes,
        hibernate=hibernate,
        seen_state=resource.state,
        detail=f"marked until {format_instant(mark.at)}; grace period over"
        + (f"; leaves behind {_left_behind_words(left)}" if left and action == "terminate" else ""),
    )


def _left_behind_words(left: Sequence[LeftBehind]) -> str:
    # Saves the sweep's cold start the price file's model: only a termination that leaves volumes behind needs it.
    from trainctl.cost.left_behind import left_behind_words

    return left_behind_words(left)


def warning_mark(
    base: Decision, resource: Resource, action: Action, settings: SweepSettings, now: datetime
) -> Decision:
    """A lifetime about to run out: a mark at the expiry, announcing what expiry will do; never sooner than a grace
    period from the warning, so a ttl anyone wrote cannot shorten the notice."""
    expiry = lifetime_end(resource, settings)
    assert expiry is not None
    due = max(expiry, now + settings.grace_period)
    return replace(
        base,
        action="mark",
        cleanup_after=due,
        announced=action,
        detail=f"expires at {format_instant(expiry)}: will {action} after {format_instant(due)} "
        "unless trainctl:ttl is extended",
    )


def fresh_mark(
    base: Decision, resource: Resource, action: Action, settings: SweepSettings, now: datetime, *, why: str = ""
) -> Decision:
    """A mark of trainctl's own: a full grace period, the action it announces, and a notice.

    Always the full grace period: anyone may write a ttl, so a lifetime that ran out unannounced (`ttl=0s`) gets
    no shorter notice than any other reason.
    """
    cleanup_after = now + settings.grace_period
    note = f"will {action} after {format_instant(cleanup_after)} if still a candidate"
    if action == "stop" and isinstance(resource, Instance) and resource.instance_store is not False:
        which = "its instance-store volumes" if resource.instance_store else "any instance-store volumes it has"
        note += (
            f"; what {which} hold will be lost (to keep it: tag {tags.PERSISTENT}=true, or deploy with "
            "TRAINCTL_STOP_INSTANCE_STORE=false)"
        )
    return replace(
        base,
        action="mark",
        cleanup_after=cleanup_after,
        announced=action,
        detail=f"{why}: marked afresh; {note}" if why else note,
    )


def confirm_marks(
    decisions: Sequence[Decision],
    distrusted: Mapping[str, str],
    resources: Mapping[str, Resource],
    settings: SweepSettings,
    now: datetime,
) -> list[Decision]:
    """Destructive decisions whose mark trainctl cannot vouch for become fresh marks instead (safety model 3)."""
    confirmed = []
    for decision in decisions:
        why = distrusted.get(decision.resource_id)
        if decision.destructive and why is not None:
            base = replace(decision, keep_volumes=(), hibernate=False)
            confirmed.append(fresh_mark(base, resources[decision.resource_id], decision.action, settings, now, why=why))
        else:
            confirmed.append(decision)
    return confirmed


def confirm_pending_marks(
    decisions: Sequence[Decision],
    written: Mapping[str, datetime],
    resources: Mapping[str, Resource],
    observations: Observations,
    settings: SweepSettings,
    now: datetime,
) -> list[Decision]:
    """A mark in its grace whose tag is not the mark trainctl last wrote there earns trainctl's own: a hand-written
    mark kept just ahead of every sweep would otherwise keep its resource forever, and nobody told."""
    confirmed = []
    for decision in decisions:
        pending = (
            decision.action == "keep"
            and decision.cleanup_after is not None
            and decision.cleanup_after > now
            and decision.reasons
            and not decision.protections
        )
        resource = resources.get(decision.resource_id)
        if pending and resource is not None and written.get(decision.resource_id) != decision.cleanup_after:
            action = planned_action(resource, decision.reasons, observations, settings)
            if set(decision.reasons) == {Reason.TTL_EXPIRING}:
                # Only a warning, with or without an answer: trainctl's own warning mark replaces the stranger's.
                confirmed.append(
                    warning_mark(replace(decision, keep_volumes=(), hibernate=False), resource, action, settings, now)
                )
                continue
            if unanswered_training_check(resource, action, decision.reasons, observations, settings):
                # No mark without an answer, as decide says: the foreign one is distrusted when it falls due.
                confirmed.append(decision)
                continue
            base = replace(decision, keep_volumes=(), hibernate=False)
            confirmed.append(
                fresh_mark(base, resource, action, settings, now, why="its mark is not one trainctl wrote")
            )
        else:
            confirmed.append(decision)
    return confirmed


def apply_guards(decisions: Sequence[Decision], guards: Guards) -> list[Decision]:
    """What EC2 itself guards (termination and stop protection, sharing) protects, by name; like every protection,
    it takes the mark away, so the resource gets a full grace period if the guard is ever lifted."""
    guarded = []
    for decision in decisions:
        found: list[str] = []
        details: list[str] = []
        rid = decision.resource_id
        if decision.destructive:
            if rid in guards.unreadable:
                found.append(Protection.UNREADABLE)
                details.append(f"its protection could not be read: {guards.unreadable[rid]}")
            if decision.action == "terminate" and rid in guards.termination_protected:
                found.append(Protection.TERMINATION_PROTECTED)
                details.append("termination protection is on")
            if decision.action == "stop" and rid in guards.stop_protected:
                found.append(Protection.TERMINATION_PROTECTED)
                details.append("stop protection is on")
            if rid in guards.shared_snapshots:
                found.append(Protection.SHARED_SNAPSHOT)
                details.append("shared with another account")
        guarded.append(
            replace(
                decision,
                action="unmark",
                keep_volumes=(),
                hibernate=False,
                protections=(*decision.protections, *dict.fromkeys(str(f) for f in found)),
                detail="; ".join(details),
            )
            if found
            else decision
        )
    return guarded


def action_budget(in_scope_count: int, settings: SweepSettings) -> int:
    """The destructive actions one sweep may take: a share of the in-scope fleet, capped by max_actions.

    At least one while any share is allowed: a floor of zero would leave a fleet of fewer than 1/share resources
    (one forgotten GPU instance in a small account) marked forever and never acted on.
    """
    by_share = math.floor(settings.max_action_share * in_scope_count)
    if settings.max_action_share > 0 and in_scope_count > 0:
        by_share = max(1, by_share)
    return min(settings.max_actions, by_share)


def apply_blast_radius(decisions: Sequence[Decision], budget: int) -> list[Decision]:
    """Keep at most `budget` destructive actions, the longest-marked first; the rest wait, still marked."""
    destructive = sorted(
        (d for d in decisions if d.destructive),
        key=lambda d: (d.cleanup_after or datetime.max, d.resource_id),
    )
    allowed = {d.resource_id for d in destructive[:budget]}
    capped = []
    for decision in decisions:
        if decision.destructive and decision.resource_id not in allowed:
            capped.append(
                replace(
                    decision,
                    action="keep",
                    protections=(*decision.protections, str(Protection.BLAST_RADIUS)),
                    detail=f"over the per-sweep cap of {budget} actions; stays marked for the next sweep",
                )
            )
        else:
            capped.append(decision)
    return capped


def plan_sweep(
    inventories: Iterable[RegionInventory],
    observations: Observations,
    settings: SweepSettings,
    now: datetime,
) -> SweepPlan:
    decisions: list[Decision] = []
    warnings: list[str] = []
    scanned = 0
    scoped = 0
    for inventory in inventories:
        facts = InventoryFacts.of(inventory)
        for resource in inventory.resources():
            scanned += 1
            scoped += in_scope(resource, settings.scope_tag)
            near_miss = persistent_key_warning(resource)
            if near_miss:
                warnings.append(near_miss)
            warnings.extend(f"{resource.resource_id}: {problem}" for problem in unreadable_values(resource, settings))
            mark = read_mark(resource)
            if mark.unreadable:
                warnings.append(f"{resource.resource_id}: {tags.CLEANUP_AFTER}: {mark.unreadable}; not trusted")
            try:
                decision = decide(resource, observations, facts, settings, now)
            except (ValueError, OverflowError, TypeError) as exc:
                # One resource never stops the sweep: what cannot be decided is kept, and named.
                warnings.append(f"{resource.resource_id}: could not be decided ({exc}); kept")
                decision = Decision(
                    resource.resource_id,
                    resource.resource_type,
                    resource.region,
                    "keep",
                    protections=(str(Protection.UNREADABLE),),
                    detail="could not be decided; kept",
                )
            if decision is not None:
                decisions.append(decision)
    capped = apply_blast_radius(decisions, action_budget(scoped, settings))
    return SweepPlan(at=now, decisions=tuple(capped), scanned=scanned, in_scope=scoped, warnings=tuple(warnings))


def instances_to_check(
    inventories: Iterable[RegionInventory], observations: Observations, settings: SweepSettings, now: datetime
) -> list[Instance]:
    """Running instances that would be marked or acted on if no training were found on them."""
    assumed_idle = {}
    inventories = list(inventories)
    for inventory in inventories:
        for instance in inventory.instances:
            if instance.state in ("running", "pending"):
                assumed_idle[instance.resource_id] = TrainingCheck(Training.IDLE)
    preview = plan_sweep(inventories, observations._replace(training=assumed_idle), settings, now)
    # Marked ones too, on every sweep of their grace: a training process found there is evidence of use.
    wanted = {
        d.resource_id
        for d in preview.decisions
        if d.resource_type == "instance"
        and (d.action == "mark" or d.destructive or (d.action == "keep" and d.cleanup_after and not d.protections))
    }
    # A stopped instance runs no training and SSM cannot reach it: only running ones are asked.
    return [
        i
        for inv in inventories
        for i in inv.instances
        if i.resource_id in wanted and i.state in ("running", "pending") and not is_prewarm_worker(i)
    ]
