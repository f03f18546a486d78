"""The ledger's aggregation, pure: what the sweeps did, per owner and in total, and why; what it avoided.

Counted over the window, each resource once per line:

- marked, unmarked, stopped, terminated, deleted: the resources a sweep did this to (outcome done);
- kept: the resources a sweep had a reason to act on and a protection kept, and no later sweep in the window
  acted on; failed: those with a failed action; unfinished: an intent row no outcome ever replaced;
- reasons and protections: the resources each one applied to, at least once in the window.

Dollars avoided is an estimate, and says so wherever it is shown: the hourly list price of what a sweep stopped,
terminated or deleted, times the hours until someone would otherwise have noticed (--noticed-after, 7d by default,
the same 168 h the dashboard's DollarsAvoided metric assumes), at the price the decision records (the sweep prices
each stop, termination and deletion from the shipped price file as it decides), else through the cost check's chain
at today's price. A size or type is read from what the decision says the sweep saw (`seen`; older decisions:
EC2's description, `described`), else, for an instance, from EC2 now (a stopped instance is still there; a
terminated one for about an hour). What cannot be priced is counted as unpriced, never as $0.

The command line renders a Report; a scheduled digest or the dashboard can build one the same way (report.run).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.durations import format_duration
from trainctl.core.protections import Protection
from trainctl.core.resources import RegionInventory, Volume
from trainctl.core.text import counted
from trainctl.cost.prices.model import HOURS_PER_MONTH, PriceKey, Quote
from trainctl.cost.rules import price_keys, volume_hourly

NO_OWNER = "(no owner)"
TOTAL = "total"
ACTED = ("mark", "unmark", "stop", "terminate", "delete")
AVOIDING = ("stop", "terminate", "delete")


# ------------------------------------------------------------------------------------------------ the ledger


@dataclass(frozen=True)
class Recorded:
    """One decision as the ledger holds it."""

    resource_id: str
    resource_type: str
    region: str
    action: str
    outcome: str
    reasons: tuple[str, ...]
    protections: tuple[str, ...]
    owner: str
    at: datetime
    sweep_id: str
    detail: str = ""
    # EC2's description of the resource as the sweep read it (API field names), when the decision carries one
    # (older decisions' `described`; a newer decision's `seen`, in these names).
    described: Mapping[str, Any] = field(default_factory=dict)
    # The hourly list price the sweep decided at, where the decision records one.
    hourly_usd: float | None = None
    price_source: str = ""

    @classmethod
    def from_json(cls, text: str, *, resource_id: str, stamp: str, sweep_id: str) -> Recorded:
        """From a ledger item's decision (its key's resource, instant and sweep as fallbacks); ValueError (or
        KeyError) when it is not a decision trainctl can read."""
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("the decision is not a JSON object")
        described = raw.get("described")
        seen = raw.get("seen")
        if not isinstance(described, dict):
            described = described_from_seen(str(raw.get("resource_type", "")), seen if isinstance(seen, dict) else {})
        hourly = raw.get("hourly_usd")
        return cls(
            resource_id=str(raw.get("resource_id") or resource_id),
            resource_type=str(raw.get("resource_type", "")),
            region=str(raw.get("region", "")),
            action=str(raw.get("action", "")),
            outcome=str(raw.get("outcome", "")),
            reasons=tuple(str(r) for r in raw.get("reasons") or ()),
            protections=tuple(str(p) for p in raw.get("protections") or ()),
            owner=str(raw.get("owner") or NO_OWNER),
            at=parse_instant(str(raw.get("at") or stamp)),
            sweep_id=str(raw.get("recorded_by") or sweep_id),
            detail=str(raw.get("detail") or ""),
            described=described,
            hourly_usd=float(hourly) if isinstance(hourly, int | float) and not isinstance(hourly, bool) else None,
            price_source=str(raw.get("price_source") or ""),
        )


def described_from_seen(resource_type: str, seen: Mapping[str, Any]) -> dict[str, Any]:
    """What a sweep saw of a resource (Decision.seen) in EC2's field names, as older decisions described it."""
    state = seen.get("state")
    if resource_type == "instance":
        said: dict[str, Any] = {
            "InstanceType": seen.get("type"),
            "InstanceLifecycle": seen.get("lifecycle"),
            "State": {"Name": state} if state else None,
            "Placement": {"AvailabilityZone": seen["zone"]} if seen.get("zone") else None,
        }
    elif resource_type == "volume":
        said = {
            "VolumeType": seen.get("type"),
            "Size": seen.get("size_gib"),
            "Iops": seen.get("iops"),
            "Throughput": seen.get("throughput_mibps"),
            "State": state,
            "AvailabilityZone": seen.get("zone"),
        }
    elif resource_type == "snapshot":
        said = {"VolumeSize": seen.get("size_gib"), "State": state}
    else:
        said = {}
    return {key: value for key, value in said.items() if value is not None}


@dataclass(frozen=True)
class LedgerRead:
    sweeps: tuple[tuple[datetime, str], ...]
    decisions: tuple[Recorded, ...]
    scanned: int  # items the Scan read (and was billed for)
    matched: int  # items its filter kept
    segments: int
    table_bytes: int | None  # DynamoDB's estimate, updated about every six hours
    unreadable: int = 0

    def how(self) -> str:
        size = ""
        if self.table_bytes is not None:
            mib = self.table_bytes / 1_048_576
            size = f"about {mib:,.0f} MiB, " if mib >= 1 else "under 1 MiB, "
        parallel = f" in {self.segments} parallel segments" if self.segments > 1 else ""
        return (
            f"a Query of the sweep partition ({counted(len(self.sweeps), 'sweep')}), then a Scan{parallel} filtered to "
            f"decisions in the window: {counted(self.scanned, 'item')} read ({size}the whole table), {self.matched:,} "
            "kept; decisions "
            "are keyed by resource and a sweep's item does not list them, so only a Scan finds them"
        )


# ---------------------------------------------------------------------------------------------- what it cost


@dataclass(frozen=True)
class Avoided:
    """A stop, termination or deletion, and what the resource cost per hour when it was done."""

    decision: Recorded
    hourly_usd: float | None
    description: str = ""
    source: str = ""  # where the size or type came from, and the price
    problem: str = ""
    upper_bound: bool = False

    def avoided_usd(self, hours: float) -> float | None:
        return None if self.hourly_usd is None else self.hourly_usd * hours

    def to_json(self, hours: float) -> dict[str, Any]:
        d = self.decision
        avoided = self.avoided_usd(hours)
        return {
            "resource_id": d.resource_id,
            "resource_type": d.resource_type,
            "region": d.region,
            "owner": d.owner,
            "action": d.action,
            "at": format_instant(d.at),
            "sweep_id": d.sweep_id,
            "hourly_usd": None if self.hourly_usd is None else round(self.hourly_usd, 4),
            "avoided_usd": None if avoided is None else round(avoided, 2),
            "description": self.description,
            "source": self.source,
            "upper_bound": self.upper_bound,
            **({"problem": self.problem} if self.problem else {}),
        }


@dataclass(frozen=True)
class PricingNeed:
    """What pricing one acted-on resource takes: the keys, or why it cannot be priced."""

    decision: Recorded
    keys: tuple[PriceKey, ...] = ()
    volume: Volume | None = None
    size_gib: int = 0
    description: str = ""
    origin: str = ""
    problem: str = ""
    upper_bound: bool = False
    # The hourly price the sweep decided at: no price to look up.
    decided_usd: float | None = None


def running_then(decision: Recorded) -> bool | None:
    """Whether an instance was running when the sweep acted: its description, else what its reasons imply."""
    state = decision.described.get("State")
    if isinstance(state, dict) and state.get("Name"):
        return str(state["Name"]) in ("running", "pending")
    if decision.action == "stop" or "idle" in decision.reasons:
        return True  # a sweep stops only running instances; idle is measured only on running ones
    if "stopped-too-long" in decision.reasons:
        return False
    return None


def pricing_need(decision: Recorded, now: Mapping[str, Mapping[str, Any]]) -> PricingNeed:
    """What pricing one acted-on resource takes: the price its decision records, else the keys to look up."""
    need = _looked_up(decision, now)
    if need.problem or decision.hourly_usd is None:
        return need
    source = decision.price_source or "unnamed"
    return replace(need, keys=(), decided_usd=decision.hourly_usd, origin=f"price when decided ({source})")


def _looked_up(decision: Recorded, now: Mapping[str, Mapping[str, Any]]) -> PricingNeed:
    d, raw = decision, decision.described
    if d.resource_type == "instance":
        running = running_then(d)
        if running is False:
            return PricingNeed(
                d, problem="stopped when terminated, so its cost was its volumes: the ledger has no sizes"
            )
        if running is None:
            return PricingNeed(d, problem="the ledger does not say whether it was running when terminated")
        origin = "ledger"
        if not raw.get("InstanceType"):
            raw, origin = now.get(d.resource_id, {}), "EC2 now"
        if not raw.get("InstanceType"):
            return PricingNeed(d, problem="the ledger records no instance type, and EC2 no longer lists it")
        kind = str(raw["InstanceType"])
        spot = raw.get("InstanceLifecycle") == "spot"
        return PricingNeed(
            d,
            (PriceKey("instance", d.region, kind),),
            description=f"{kind} {'spot, at on-demand' if spot else 'on-demand'}",
            origin=f"type from {origin}",
            upper_bound=spot,
        )
    if d.resource_type == "volume":
        if not raw.get("Size") or not raw.get("VolumeType"):
            return PricingNeed(d, problem="the ledger records no size or type")
        volume = Volume(
            resource_id=d.resource_id,
            region=d.region,
            state="available",
            size_gib=int(raw["Size"]),
            volume_type=str(raw["VolumeType"]),
            create_time=d.at,
            availability_zone="",
            iops=int(raw["Iops"]) if raw.get("Iops") is not None else None,
            throughput_mibps=int(raw["Throughput"]) if raw.get("Throughput") is not None else None,
        )
        keys, _ = price_keys([RegionInventory(d.region, volumes=(volume,))])
        return PricingNeed(
            d,
            tuple(sorted(keys)),
            volume=volume,
            description=f"{volume.volume_type} {volume.size_gib} GiB",
            origin="size from ledger",
        )
    if d.resource_type == "snapshot":
        if not raw.get("VolumeSize"):
            return PricingNeed(d, problem="the ledger records no size")
        size = int(raw["VolumeSize"])
        return PricingNeed(
            d,
            (PriceKey("snapshot", d.region, "standard"),),
            size_gib=size,
            description=f"snapshot of {size} GiB, at most",
            origin="size from ledger",
            upper_bound=True,  # incremental: billed for changed blocks, at most the volume's size
        )
    return PricingNeed(d, problem=f"no price for a resource of type {d.resource_type or 'unknown'}")


def priced(need: PricingNeed, quotes: Mapping[PriceKey, Quote]) -> Avoided:
    d = need.decision
    if need.problem:
        return Avoided(d, None, problem=need.problem, source="unpriced")
    if need.decided_usd is not None:
        return Avoided(d, need.decided_usd, need.description, need.origin, "", need.upper_bound)
    found = [quotes.get(key) for key in need.keys]
    if any(q is None or q.price is None for q in found):
        problems = [q.problem for q in found if q is not None and q.price is None and q.problem]
        missing = ", ".join(str(k) for k, q in zip(need.keys, found, strict=True) if q is None or q.price is None)
        return Avoided(
            d, None, need.description, "unpriced", "; ".join(problems) or f"no price for {missing}", need.upper_bound
        )
    origins = "+".join(sorted({q.price.origin for q in found if q is not None and q.price is not None}))
    first = found[0]
    assert first is not None and first.price is not None
    if need.volume is not None:
        hourly, _, problem = volume_hourly(need.volume, quotes)
        if hourly is None:
            return Avoided(d, None, need.description, "unpriced", problem)
    elif d.resource_type == "snapshot":
        hourly = first.price.cost(need.size_gib) / HOURS_PER_MONTH
    else:
        hourly = first.price.cost(1)
    return Avoided(d, hourly, need.description, f"{need.origin}; {origins}", "", need.upper_bound)


# ------------------------------------------------------------------------------------------------ the tallies


@dataclass
class Tally:
    owner: str
    acted: dict[str, set[str]] = field(default_factory=lambda: {action: set() for action in ACTED})
    kept: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    unfinished: set[str] = field(default_factory=set)
    reasons: dict[str, set[str]] = field(default_factory=dict)
    protections: dict[str, set[str]] = field(default_factory=dict)
    avoided_usd: float = 0.0
    priced: int = 0
    unpriced: int = 0

    def add(self, decision: Recorded) -> None:
        rid = decision.resource_id
        if decision.outcome == "done" and decision.action in ACTED:
            self.acted[decision.action].add(rid)
        if decision.outcome == "failed":
            self.failed.add(rid)
        if decision.outcome == "intended":
            self.unfinished.add(rid)
        for reason in decision.reasons:
            self.reasons.setdefault(reason, set()).add(rid)
        if decision.action == "keep":
            for protection in decision.protections:
                self.protections.setdefault(protection, set()).add(rid)

    def add_cost(self, avoided: Avoided, hours: float) -> None:
        money = avoided.avoided_usd(hours)
        if money is None:
            self.unpriced += 1
        else:
            self.priced += 1
            self.avoided_usd += money

    @property
    def avoided(self) -> float | None:
        """USD avoided by what was priced; None when something was acted on and nothing of it could be priced."""
        return None if self.unpriced and not self.priced else self.avoided_usd

    def to_json(self) -> dict[str, Any]:
        avoided = self.avoided
        return {
            "owner": self.owner,
            "marked": len(self.acted["mark"]),
            "unmarked": len(self.acted["unmark"]),
            "stopped": len(self.acted["stop"]),
            "terminated": len(self.acted["terminate"]),
            "deleted": len(self.acted["delete"]),
            "kept": len(self.kept),
            "failed": len(self.failed),
            "unfinished": len(self.unfinished),
            "reasons": {name: len(ids) for name, ids in sorted(self.reasons.items())},
            "protections": {name: len(ids) for name, ids in sorted(self.protections.items())},
            "avoided_usd": None if avoided is None else round(avoided, 2),
            "priced": self.priced,
            "unpriced": self.unpriced,
        }


def tally(decisions: Iterable[Recorded], avoided: Iterable[Avoided], hours: float) -> tuple[list[Tally], Tally]:
    """Per owner (by name) and in total, each resource counted once per line."""
    by_owner: dict[str, Tally] = {}
    total = Tally(TOTAL)
    last: dict[tuple[str, str], Recorded] = {}
    for decision in decisions:  # oldest first
        for each in (by_owner.setdefault(decision.owner, Tally(decision.owner)), total):
            each.add(decision)
        if decision.outcome != "intended":
            last[(decision.owner, decision.resource_id)] = decision
    for (owner, rid), decision in last.items():
        if decision.action == "keep" and decision.reasons and decision.outcome != "failed":
            by_owner[owner].kept.add(rid)
            total.kept.add(rid)
    for cost in avoided:
        by_owner[cost.decision.owner].add_cost(cost, hours)
        total.add_cost(cost, hours)
    return [by_owner[name] for name in sorted(by_owner, key=lambda n: (n == NO_OWNER, n.lower()))], total


# What evades the guardrail: kept this long by a value trainctl cannot read or by the minimum age.
EVADING_AFTER = timedelta(days=7)
EVADING_PROTECTIONS = (str(Protection.UNREADABLE), str(Protection.MIN_AGE))


@dataclass(frozen=True)
class Evading:
    resource_id: str
    protection: str
    owner: str
    first_seen: datetime
    last_seen: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "protection": self.protection,
            "owner": self.owner,
            "first_seen": format_instant(self.first_seen),
            "last_seen": format_instant(self.last_seen),
            "days": round((self.last_seen - self.first_seen).total_seconds() / 86400, 1),
        }


def evading(decisions: Iterable[Recorded], at_least: timedelta = EVADING_AFTER) -> list[Evading]:
    """Resources the sweeps kept as unreadable or min-age for at least `at_least` of the window, longest first."""
    seen: dict[tuple[str, str], list[Recorded]] = {}
    for decision in decisions:
        for protection in EVADING_PROTECTIONS:
            if protection in decision.protections:
                seen.setdefault((decision.resource_id, protection), []).append(decision)
    found = []
    for (resource_id, protection), kept in seen.items():
        first = min(kept, key=lambda d: d.at)
        last = max(kept, key=lambda d: d.at)
        if last.at - first.at >= at_least:
            found.append(Evading(resource_id, protection, last.owner, first.at, last.at))
    return sorted(found, key=lambda e: (e.first_seen - e.last_seen, e.resource_id))


# ------------------------------------------------------------------------------------------------ the report


@dataclass(frozen=True)
class Report:
    since: datetime
    until: datetime
    window: str
    owner: str | None
    noticed_after: timedelta
    read: LedgerRead
    owners: tuple[Tally, ...]
    total: Tally
    acted: tuple[Avoided, ...]
    lookups: dict[str, int]
    price_file_as_of: str
    evading: tuple[Evading, ...] = ()
    # The decisions counted: with an owner, that owner's only (`read` holds every decision of the window).
    decisions: tuple[Recorded, ...] = ()

    @property
    def sweeps(self) -> tuple[tuple[datetime, str], ...]:
        """The window's sweeps; with an owner, those that decided about that owner's resources."""
        if self.owner is None:
            return self.read.sweeps
        theirs = {d.sweep_id for d in self.decisions}
        return tuple(sweep for sweep in self.read.sweeps if sweep[1] in theirs)

    @property
    def hours(self) -> float:
        return self.noticed_after.total_seconds() / 3600

    def assumption(self) -> str:
        return (
            "the hourly list price (when decided, else today's) of what the sweeps stopped, terminated or deleted, "
            f"times {days_or_duration(self.noticed_after)} ({self.hours:g} h, --noticed-after) until someone would "
            "otherwise have noticed; a spot instance at its on-demand price and a snapshot at its volume's full size "
            "(upper bounds); what cannot be priced is counted as unpriced, never as $0"
        )

    def to_json(self) -> dict[str, Any]:
        total = self.total.to_json()
        return {
            "since": format_instant(self.since),
            "until": format_instant(self.until),
            "window": self.window,
            "owner": self.owner,
            "sweeps": [{"at": format_instant(at), "sweep_id": sweep_id} for at, sweep_id in self.sweeps],
            "decisions": len(self.decisions),
            "dollars_avoided": {
                "usd": total["avoided_usd"],
                "estimate": True,
                "noticed_after": days_or_duration(self.noticed_after),
                "hours": self.hours,
                "assumption": self.assumption(),
                "priced": self.total.priced,
                "unpriced": self.total.unpriced,
                "complete": self.total.unpriced == 0,
                "pricing": {"lookups": dict(sorted(self.lookups.items())), "price_file_as_of": self.price_file_as_of},
            },
            "owners": [each.to_json() for each in self.owners],
            "total": total,
            "not_managed_by_ssm": self.not_managed_by_ssm,
            "evading": [each.to_json() for each in self.evading],
            "acted": [each.to_json(self.hours) for each in self.acted],
            "read": {
                "method": "query+scan",
                "how": self.read.how(),
                "sweep_items": len(self.read.sweeps),
                "scanned_items": self.read.scanned,
                "matched_items": self.read.matched,
                "segments": self.read.segments,
                "table_bytes": self.read.table_bytes,
                "unreadable_items": self.read.unreadable,
            },
        }

    @property
    def not_managed_by_ssm(self) -> int:
        """Instances no training check could reach in the window: an idle one is kept, not stopped."""
        return len(self.total.protections.get(str(Protection.NOT_MANAGED_BY_SSM), ()))

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per owner and a last one for the total."""
        return [each.to_json() for each in (*self.owners, self.total)]


def days_or_duration(value: timedelta) -> str:
    """7d rather than 1w: the words of --noticed-after's default."""
    whole_days = value.total_seconds() / 86400
    return f"{int(whole_days)}d" if whole_days.is_integer() else format_duration(value)
