"""Sweep decisions: pure functions of (inventory, observations, settings, clock) -> plan.

Nothing here calls AWS or reads the wall clock; the same plan drives dry-run and enforcement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Literal

from trainctl.core import tags
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.lifetimes import InvalidTtl, born_at, ttl_expiry
from trainctl.core.observations import Training, TrainingCheck, Utilisation
from trainctl.core.protections import (
    Protection,
    in_scope,
    is_attached,
    is_backup_managed,
    is_persistent,
    volumes_dying_with,
    younger_than_min_age,
)
from trainctl.core.resources import Instance, RegionInventory, Resource, Snapshot, Volume
from trainctl.core.settings import SweepSettings

Action = Literal["keep", "mark", "unmark", "delete", "terminate", "stop"]
DESTRUCTIVE: frozenset[str] = frozenset({"delete", "terminate", "stop"})


class Reason(StrEnum):
    UNATTACHED = "unattached"
    STOPPED_TOO_LONG = "stopped-too-long"
    IDLE = "idle"
    SNAPSHOT_RETENTION = "snapshot-retention"
    TTL_EXPIRED = "ttl-expired"
    # Within the warning lead of expiry: the owner is told (a mark), nothing is done yet.
    TTL_EXPIRING = "ttl-expiring"
    PREWARM_LEFTOVER = "prewarm-leftover"


@dataclass(frozen=True, slots=True)
class Observations:
    utilisation: Mapping[str, Utilisation] = field(default_factory=dict)
    training: Mapping[str, TrainingCheck] = field(default_factory=dict)
    # When the training check is skipped (dry-run), this says why; the instance stays protected.
    training_unchecked_reason: str = "no answer from the training check"


@dataclass(frozen=True, slots=True)
class Decision:
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
            "outcome": self.outcome,
        }


@dataclass(frozen=True, slots=True)
class SweepPlan:
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
        }


def is_prewarm_worker(resource: Resource) -> bool:
    return resource.tags.get(tags.ROLE) == tags.PREWARM_WORKER_ROLE


def is_idle(instance: Instance, usage: Utilisation | None, settings: SweepSettings, now: datetime) -> bool:
    if instance.state != "running" or usage is None:
        return False
    if now - instance.launch_time < settings.idle_window:
        return False  # not up for a whole window: the metrics cannot show a full picture yet
    if usage.cpu_percent is None or usage.network_bytes_per_second is None:
        return False  # no evidence is not idleness
    if usage.cpu_percent >= settings.idle_cpu_percent:
        return False
    if usage.network_bytes_per_second >= settings.idle_network_bytes_per_second:
        return False
    return usage.gpu_percent is None or usage.gpu_percent < settings.idle_gpu_percent


def candidate_reasons(
    resource: Resource, observations: Observations, settings: SweepSettings, now: datetime
) -> tuple[list[str], list[str]]:
    """Why a resource should go, and warnings met on the way (a bad ttl tag, say)."""
    reasons: list[str] = []
    warnings: list[str] = []
    try:
        expiry = lifetime_end(resource, settings)
    except InvalidTtl as exc:
        expiry = None
        warnings.append(str(exc))
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
        if resource.state == "stopped":
            stopped_since = resource.stopped_since or resource.launch_time
            if now - stopped_since >= settings.stopped_max_age:
                reasons.append(Reason.STOPPED_TOO_LONG)
        if is_idle(resource, observations.utilisation.get(resource.resource_id), settings, now):
            reasons.append(Reason.IDLE)
    return reasons, warnings


def lifetime_end(resource: Resource, settings: SweepSettings) -> datetime | None:
    default = {
        "instance": settings.max_age_instance,
        "volume": settings.max_age_volume,
        "snapshot": settings.max_age_snapshot,
    }[resource.resource_type]
    return ttl_expiry(resource, default)


def intended_action(resource: Resource, reasons: Sequence[str], settings: SweepSettings) -> Action:
    if isinstance(resource, Instance):
        if set(reasons) - {Reason.IDLE}:
            return "terminate"
        return settings.idle_action
    return "delete"


def protections_for(
    resource: Resource,
    action: Action,
    observations: Observations,
    ami_snapshots: frozenset[str],
    settings: SweepSettings,
    now: datetime,
) -> tuple[list[str], list[str]]:
    """Every protection that applies, by name, with a line of detail for each."""
    found: list[str] = []
    details: list[str] = []
    if not in_scope(resource, settings.scope_tag):
        found.append(Protection.OUT_OF_SCOPE)
        details.append(f"no {settings.scope_tag}=true")
    if is_persistent(resource.tags):
        found.append(Protection.PERSISTENT)
    if younger_than_min_age(resource, settings.min_age, now):
        found.append(Protection.MIN_AGE)
    if isinstance(resource, Volume) and is_attached(resource):
        found.append(Protection.ATTACHED)
        details.append("attached to " + ",".join(a.instance_id for a in resource.attachments))
    if isinstance(resource, Snapshot):
        if resource.resource_id in ami_snapshots:
            found.append(Protection.AMI_BACKED)
        if is_backup_managed(resource):
            found.append(Protection.BACKUP_MANAGED)
    if (
        isinstance(resource, Instance)
        and resource.state in ("running", "pending")
        and action in ("stop", "terminate")
        and not is_prewarm_worker(resource)
    ):
        check = observations.training.get(resource.resource_id)
        if check is None:
            found.append(Protection.TRAINING_ACTIVE)
            details.append(observations.training_unchecked_reason)
        elif check.status is not Training.IDLE:
            found.append(Protection.TRAINING_ACTIVE)
            details.append(check.detail or f"training {check.status}")
    return found, details


def read_mark(resource: Resource) -> tuple[bool, datetime | None]:
    """(carries a mark tag, the instant it names); an unreadable mark is re-written, never trusted."""
    raw = resource.tags.get(tags.CLEANUP_AFTER)
    if raw is None:
        return False, None
    try:
        return True, parse_instant(raw)
    except ValueError:
        return True, None


def decide(
    resource: Resource,
    observations: Observations,
    ami_snapshots: frozenset[str],
    volumes: Mapping[str, Volume],
    settings: SweepSettings,
    now: datetime,
) -> tuple[Decision | None, list[str]]:
    reasons, warnings = candidate_reasons(resource, observations, settings, now)
    marked, mark_at = read_mark(resource)
    scoped = in_scope(resource, settings.scope_tag)
    base = Decision(
        resource_id=resource.resource_id,
        resource_type=resource.resource_type,
        region=resource.region,
        action="keep",
        reasons=tuple(str(r) for r in reasons),
        owner=resource.tags.get(tags.OWNER),
        cleanup_after=mark_at,
    )
    if not reasons:
        if marked and scoped:
            return replace(base, action="unmark", detail="no longer a candidate"), warnings
        return None, warnings

    action = intended_action(resource, reasons, settings)
    protections, details = protections_for(resource, action, observations, ami_snapshots, settings, now)
    if protections:
        # A protected resource loses its mark, so it gets a full grace period (and a notice)
        # if the protection ever lifts. Out-of-scope resources are never written to.
        unmark = marked and scoped
        return (
            replace(
                base,
                action="unmark" if unmark else "keep",
                protections=tuple(str(p) for p in protections),
                detail="; ".join(details),
            ),
            warnings,
        )
    if set(reasons) == {Reason.TTL_EXPIRING}:
        # Only a warning: mark (or move the mark) to the expiry itself, never act on it.
        expiry = lifetime_end(resource, settings)
        assert expiry is not None
        if mark_at is not None and mark_at >= expiry:
            return replace(base, detail=f"expires at {format_instant(expiry)}; owner warned"), warnings
        return (
            replace(
                base,
                action="mark",
                cleanup_after=expiry,
                detail=f"expires at {format_instant(expiry)}: will {action} then unless trainctl:ttl is extended",
            ),
            warnings,
        )
    if mark_at is None:
        cleanup_after = now + settings.grace_period
        if set(reasons) <= {Reason.TTL_EXPIRED}:
            # An explicit lifetime ran out: the owner gets the warning lead, not the whole grace period.
            cleanup_after = now + settings.ttl_warning_lead
        return (
            replace(
                base,
                action="mark",
                cleanup_after=cleanup_after,
                detail=f"will {action} after {format_instant(cleanup_after)} if still a candidate",
            ),
            warnings,
        )
    if now < mark_at:
        return replace(base, detail=f"grace period until {format_instant(mark_at)}"), warnings
    keep_volumes = volumes_dying_with(resource, volumes) if isinstance(resource, Instance) else ()
    return (
        replace(
            base,
            action=action,
            keep_volumes=keep_volumes,
            detail=f"marked until {format_instant(mark_at)}; grace period over"
            + (f"; keeps persistent {', '.join(v for v, _ in keep_volumes)}" if keep_volumes else ""),
        ),
        warnings,
    )


def action_budget(in_scope_count: int, settings: SweepSettings) -> int:
    return min(settings.max_actions, math.floor(settings.max_action_share * in_scope_count))


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
        ami_snapshots = frozenset(s for image in inventory.images for s in image.snapshot_ids)
        volumes = {volume.resource_id: volume for volume in inventory.volumes}
        for resource in inventory.resources():
            scanned += 1
            scoped += in_scope(resource, settings.scope_tag)
            decision, found = decide(resource, observations, ami_snapshots, volumes, settings, now)
            warnings.extend(found)
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
    preview = plan_sweep(inventories, replace(observations, training=assumed_idle), settings, now)
    wanted = {
        d.resource_id
        for d in preview.decisions
        if d.resource_type == "instance" and (d.action == "mark" or d.destructive)
    }
    # A stopped instance runs no training and SSM cannot reach it: only running ones are asked.
    return [
        i
        for inv in inventories
        for i in inv.instances
        if i.resource_id in wanted and i.state in ("running", "pending") and not is_prewarm_worker(i)
    ]
