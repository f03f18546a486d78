"""`trainctl report`: what the sweeps did, read back from the ledger, per owner and in total, and why.

Counted over the window, each resource once per line:

- marked, unmarked, stopped, terminated, deleted: the resources a sweep did this to (outcome done);
- kept: the resources a sweep had a reason to act on and a protection kept, and no later sweep in the window
  acted on; failed: those with a failed action; unfinished: an intent row no outcome ever replaced;
- reasons and protections: the resources each one applied to, at least once in the window.

Dollars avoided is an estimate, and says so wherever it is shown: the hourly list price of what a sweep stopped,
terminated or deleted, times the hours until someone would otherwise have noticed (--noticed-after, 7d by default,
the same 168 h the dashboard's DollarsAvoided metric assumes), priced through the cost check's chain at today's
price. The ledger records what was decided, not how big a resource was: a size or type is read from the decision
when it carries EC2's description of the resource (`described`), else, for an instance, from EC2 now (a stopped
instance is still there; a terminated one for about an hour). What cannot be priced is counted as unpriced, never
as $0.

The reads: a Query of the sweep partition for the window (the sweeps, newest last), then one filtered Scan of the
table for the decisions since the window opened. The decisions are keyed by resource and the sweep's item does not
list its resources, so without a Scan the resources a sweep recorded cannot be found; the table expires decisions
after 180 days, which keeps it small, and a larger one is scanned in parallel segments.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from botocore.exceptions import ClientError
from rich.console import Console
from rich.text import Text

from trainctl.aws import ledger
from trainctl.aws.clients import ClientFactory, access_error, error_code
from trainctl.aws.observability import logger
from trainctl.cli import stack_resources
from trainctl.cli.automation import duration_option, home_factory
from trainctl.cli.environment import check_settings
from trainctl.cli.errors import humanise
from trainctl.cli.output import EXIT_USAGE, AsJson, Output, console, emit, fail, output_format, state_of
from trainctl.cli.render import ESSENTIAL, Cell, Col, action_text, print_table, usd
from trainctl.cli.session import check_regions
from trainctl.core import names
from trainctl.core.clock import Clock, format_instant, parse_instant
from trainctl.core.durations import InvalidDuration, format_duration, parse_duration
from trainctl.core.errors import TrainctlError
from trainctl.core.permissions import needs
from trainctl.core.protections import Protection
from trainctl.core.resources import RegionInventory, Volume
from trainctl.core.settings import CostSettings
from trainctl.cost.prices.chain import PriceBook
from trainctl.cost.prices.model import HOURS_PER_MONTH, PriceKey, Quote
from trainctl.cost.rules import price_keys, volume_hourly
from trainctl.cost.run import has_price_list_api, price_book_for

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PaginatorConfigTypeDef

# The report's own reads; the price chain declares its own (the price table, the Price List API).
PERMISSIONS = needs("dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable", "ec2:DescribeInstances")

DEFAULT_SINCE = "30d"
DEFAULT_NOTICED_AFTER = "7d"
NO_OWNER = "(no owner)"
TOTAL = "total"
ACTED = ("mark", "unmark", "stop", "terminate", "delete")
AVOIDING = ("stop", "terminate", "delete")
# A Scan segment per this much table; one segment for a table under it (most ledgers).
SEGMENT_BYTES = 64 * 1024 * 1024
MAX_SEGMENTS = 8
# Items per page of the Query and the Scan: None leaves DynamoDB's own pages of up to 1 MB.
PAGE_ITEMS: int | None = None
# Filter values per DescribeInstances call.
IDS_PER_CALL = 200
# Rows of the per-resource table; the JSON lists them all.
SHOWN_ACTED = 20


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
    # EC2's description of the resource as the sweep read it (API field names), when the decision carries one.
    described: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Recorded:
        """From a ledger item; ValueError (or KeyError) when it is not a decision trainctl can read."""
        stamp, _, sweep_id = str(item[ledger.SORT_KEY]["S"]).partition("#")
        raw = json.loads(item["decision"]["S"])
        if not isinstance(raw, dict):
            raise ValueError("the decision is not a JSON object")
        partition = str(item[ledger.PARTITION_KEY]["S"])
        described = raw.get("described")
        return cls(
            resource_id=str(raw.get("resource_id") or partition.removeprefix(ledger.resource_partition(""))),
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
            described=described if isinstance(described, dict) else {},
        )


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
            f"a Query of the sweep partition ({len(self.sweeps)} sweeps), then a Scan{parallel} filtered to decisions "
            f"in the window: {self.scanned:,} items read ({size}the whole table), {self.matched:,} kept; decisions "
            "are keyed by resource and a sweep's item does not list them, so only a Scan finds them"
        )


def read_ledger(dynamodb: DynamoDBClient, table: str, since: datetime) -> LedgerRead:
    """The sweeps since `since` and every decision recorded since then, each read paginated."""
    start = ledger.sweep_run(since, "")[ledger.SORT_KEY]["S"]
    sweeps: list[tuple[datetime, str]] = []
    try:
        pages = dynamodb.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="#pk = :pk AND #sk >= :from",
            ExpressionAttributeNames={"#pk": ledger.PARTITION_KEY, "#sk": ledger.SORT_KEY},
            ExpressionAttributeValues={":pk": {"S": ledger.SWEEP_PARTITION}, ":from": {"S": start}},
            ProjectionExpression="#sk",
            PaginationConfig=_pages(),
        )
        for page in pages:
            for item in page.get("Items", []):
                stamp, _, sweep_id = item[ledger.SORT_KEY]["S"].partition("#")
                sweeps.append((parse_instant(stamp), sweep_id))
    except ClientError as exc:
        raise access_error("Query", exc) from exc
    table_bytes = _table_bytes(dynamodb, table)
    segments = max(1, min(MAX_SEGMENTS, math.ceil((table_bytes or 0) / SEGMENT_BYTES)))
    with ThreadPoolExecutor(max_workers=segments) as pool:
        parts = list(pool.map(lambda segment: _scan(dynamodb, table, start, segment, segments), range(segments)))
    decisions: list[Recorded] = []
    unreadable = 0
    for items, _, _ in parts:
        for item in items:
            try:
                decisions.append(Recorded.from_item(item))
            except (ValueError, KeyError, TypeError):
                unreadable += 1
    decisions.sort(key=lambda d: (d.at, d.sweep_id, d.resource_id))
    return LedgerRead(
        sweeps=tuple(sorted(sweeps)),
        decisions=tuple(decisions),
        scanned=sum(scanned for _, scanned, _ in parts),
        matched=sum(matched for _, _, matched in parts),
        segments=segments,
        table_bytes=table_bytes,
        unreadable=unreadable,
    )


def _pages() -> PaginatorConfigTypeDef:
    return {"PageSize": PAGE_ITEMS} if PAGE_ITEMS else {}


def _table_bytes(dynamodb: DynamoDBClient, table: str) -> int | None:
    try:
        return int(dynamodb.describe_table(TableName=table)["Table"].get("TableSizeBytes", 0))
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise TrainctlError(f"no ledger table {table} here: nothing to report") from exc
        return None  # not allowed to ask: one segment, size unknown


def _scan(
    dynamodb: DynamoDBClient, table: str, start: str, segment: int, segments: int
) -> tuple[list[dict[str, Any]], int, int]:
    items: list[dict[str, Any]] = []
    scanned = matched = 0
    extra: dict[str, Any] = {"Segment": segment, "TotalSegments": segments} if segments > 1 else {}
    try:
        pages = dynamodb.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="begins_with(#pk, :resource) AND #sk >= :from",
            ProjectionExpression="#pk, #sk, #decision",
            ExpressionAttributeNames={"#pk": ledger.PARTITION_KEY, "#sk": ledger.SORT_KEY, "#decision": "decision"},
            ExpressionAttributeValues={":resource": {"S": ledger.resource_partition("")}, ":from": {"S": start}},
            PaginationConfig=_pages(),
            **extra,
        )
        for page in pages:
            scanned += page.get("ScannedCount", 0)
            matched += page.get("Count", 0)
            items.extend(page.get("Items", []))
    except ClientError as exc:
        raise access_error("Scan", exc) from exc
    return items, scanned, matched


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
class _Need:
    """What pricing one acted-on resource takes: the keys, or why it cannot be priced."""

    decision: Recorded
    keys: tuple[PriceKey, ...] = ()
    volume: Volume | None = None
    size_gib: int = 0
    description: str = ""
    origin: str = ""
    problem: str = ""
    upper_bound: bool = False


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


def instances_now(factory: ClientFactory, wanted: Mapping[str, Sequence[str]]) -> dict[str, dict[str, Any]]:
    """EC2's description now of these instances, by region; an instance EC2 no longer lists is left out."""
    found: dict[str, dict[str, Any]] = {}
    for region, ids in wanted.items():
        ec2 = factory.ec2(region)
        for start in range(0, len(ids), IDS_PER_CALL):
            chunk = list(ids[start : start + IDS_PER_CALL])
            try:
                pages = ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "instance-id", "Values": chunk}]
                )
                for page in pages:
                    for reservation in page.get("Reservations", []):
                        for instance in reservation.get("Instances", []):
                            found[str(instance["InstanceId"])] = dict(instance)
            except ClientError:
                continue  # not allowed, or the region is off: these stay unpriced, each saying why
    return found


def _need(decision: Recorded, now: Mapping[str, Mapping[str, Any]]) -> _Need:
    d, raw = decision, decision.described
    if d.resource_type == "instance":
        running = running_then(d)
        if running is False:
            return _Need(d, problem="stopped when terminated, so its cost was its volumes: the ledger has no sizes")
        if running is None:
            return _Need(d, problem="the ledger does not say whether it was running when terminated")
        origin = "ledger"
        if not raw.get("InstanceType"):
            raw, origin = now.get(d.resource_id, {}), "EC2 now"
        if not raw.get("InstanceType"):
            return _Need(d, problem="the ledger records no instance type, and EC2 no longer lists it")
        kind = str(raw["InstanceType"])
        spot = raw.get("InstanceLifecycle") == "spot"
        return _Need(
            d,
            (PriceKey("instance", d.region, kind),),
            description=f"{kind} {'spot, at on-demand' if spot else 'on-demand'}",
            origin=f"type from {origin}",
            upper_bound=spot,
        )
    if d.resource_type == "volume":
        if not raw.get("Size") or not raw.get("VolumeType"):
            return _Need(d, problem="the ledger records no size or type")
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
        return _Need(
            d,
            tuple(sorted(keys)),
            volume=volume,
            description=f"{volume.volume_type} {volume.size_gib} GiB",
            origin="size from ledger",
        )
    if d.resource_type == "snapshot":
        if not raw.get("VolumeSize"):
            return _Need(d, problem="the ledger records no size")
        size = int(raw["VolumeSize"])
        return _Need(
            d,
            (PriceKey("snapshot", d.region, "standard"),),
            size_gib=size,
            description=f"snapshot of {size} GiB, at most",
            origin="size from ledger",
            upper_bound=True,  # incremental: billed for changed blocks, at most the volume's size
        )
    return _Need(d, problem=f"no price for a resource of type {d.resource_type or 'unknown'}")


def _priced(need: _Need, quotes: Mapping[PriceKey, Quote]) -> Avoided:
    d = need.decision
    if need.problem:
        return Avoided(d, None, problem=need.problem, source="unpriced")
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


def price_acted(factory: ClientFactory, decisions: Sequence[Recorded], book: PriceBook) -> list[Avoided]:
    """What each stop, termination and deletion cost per hour when done; unpriced, with why, where unknown."""
    acted = [d for d in decisions if d.action in AVOIDING and d.outcome == "done"]
    wanted: dict[str, list[str]] = {}
    for d in acted:
        if d.resource_type == "instance" and running_then(d) and not d.described.get("InstanceType"):
            wanted.setdefault(d.region, []).append(d.resource_id)
    now = instances_now(factory, {region: sorted(set(ids)) for region, ids in wanted.items()}) if wanted else {}
    needs_ = [_need(d, now) for d in acted]
    quotes = book.quotes({key for need in needs_ for key in need.keys})
    return [_priced(need, quotes) for need in needs_]


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

    @property
    def hours(self) -> float:
        return self.noticed_after.total_seconds() / 3600

    def assumption(self) -> str:
        return (
            f"the hourly list price (today's) of what the sweeps stopped, terminated or deleted, times "
            f"{days_or_duration(self.noticed_after)} ({self.hours:g} h, --noticed-after) until someone would otherwise "
            "have noticed; a spot instance at its on-demand price and a snapshot at its volume's full size (upper "
            "bounds); what cannot be priced is counted as unpriced, never as $0"
        )

    def to_json(self) -> dict[str, Any]:
        total = self.total.to_json()
        return {
            "since": format_instant(self.since),
            "until": format_instant(self.until),
            "window": self.window,
            "owner": self.owner,
            "sweeps": [{"at": format_instant(at), "sweep_id": sweep_id} for at, sweep_id in self.read.sweeps],
            "decisions": len(self.read.decisions),
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


def build_report(
    factory: ClientFactory,
    table: str,
    book: PriceBook,
    *,
    since: datetime,
    until: datetime,
    window: str,
    owner: str | None = None,
    noticed_after: timedelta = timedelta(days=7),
) -> Report:
    read = read_ledger(factory.dynamodb(), table, since)
    decisions = [d for d in read.decisions if owner is None or d.owner == owner]
    acted = price_acted(factory, decisions, book)
    hours = noticed_after.total_seconds() / 3600
    owners, total = tally(decisions, acted, hours)
    ordered = sorted(acted, key=lambda a: (a.hourly_usd is None, -(a.hourly_usd or 0.0), a.decision.resource_id))
    lookups = dict(book.lookups)
    book.lookups.clear()
    return Report(
        since=since,
        until=until,
        window=window,
        owner=owner,
        noticed_after=noticed_after,
        read=read,
        owners=tuple(owners),
        total=total,
        acted=tuple(ordered),
        lookups=lookups,
        price_file_as_of=book.price_file.as_of,
        evading=tuple(evading(decisions)),
    )


# -------------------------------------------------------------------------------------------------- printing

OWNER_COLUMNS = (
    Col("owner", ESSENTIAL, min_width=10),
    Col("marked", 90, whole=True, justify="right"),
    Col("stopped", 90, whole=True, justify="right"),
    Col("terminated", 90, whole=True, justify="right"),
    Col("deleted", 90, whole=True, justify="right"),
    Col("kept", 90, whole=True, justify="right"),
    Col("avoided", ESSENTIAL, whole=True, justify="right"),
    Col("unpriced", 85, whole=True, justify="right"),
    Col("failed", 60, whole=True, justify="right"),
    Col("unmarked", 50, whole=True, justify="right"),
)
WHY_COLUMNS = (
    Col("why", ESSENTIAL, whole=True),
    Col("kind", 70, whole=True),
    Col("resources", ESSENTIAL, whole=True, justify="right"),
    Col("by owner", 80, min_width=20),
)
EVADING_COLUMNS = (
    Col("resource", ESSENTIAL, whole=True),
    Col("kept as", ESSENTIAL, whole=True),
    Col("owner", 90, min_width=10),
    Col("days", ESSENTIAL, whole=True, justify="right"),
    Col("since", 40, whole=True),
)
ACTED_COLUMNS = (
    Col("resource", ESSENTIAL, whole=True),
    Col("action", ESSENTIAL, whole=True),
    Col("avoided", ESSENTIAL, whole=True, justify="right"),
    Col("owner", 90, min_width=10),
    Col("what", 85, min_width=24),
    Col("per hour", 60, whole=True, justify="right"),
    Col("region", 30, whole=True),
    Col("at", 20, whole=True),
)


def days_or_duration(value: timedelta) -> str:
    """7d rather than 1w: the words of --noticed-after's default."""
    whole_days = value.total_seconds() / 86400
    return f"{int(whole_days)}d" if whole_days.is_integer() else format_duration(value)


def _count(n: int) -> str:
    return str(n) if n else "-"


def _avoided_cell(each: Tally) -> Text:
    if not each.priced and not each.unpriced:
        return Text("-")
    return usd(each.avoided)


def owner_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    shown = list(report.owners) + ([report.total] if len(report.owners) != 1 else [])
    for each in shown:
        counted = each.to_json()
        row: list[Cell] = [
            each.owner,
            _count(counted["marked"]),
            _count(counted["stopped"]),
            _count(counted["terminated"]),
            _count(counted["deleted"]),
            _count(counted["kept"]),
            _avoided_cell(each),
            _count(counted["unpriced"]),
            _count(counted["failed"]),
            _count(counted["unmarked"]),
        ]
        if each is report.total:
            row = [Text(cell.plain if isinstance(cell, Text) else cell, style="bold") for cell in row]
        rows.append(row)
    return rows


def _why(each: Tally, kind: str) -> dict[str, set[str]]:
    return each.reasons if kind == "reason" else each.protections


def why_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for kind in ("reason", "protection"):
        for name, ids in sorted(_why(report.total, kind).items(), key=lambda item: (-len(item[1]), item[0])):
            owners = [(t.owner, len(_why(t, kind).get(name, ()))) for t in report.owners]
            by_owner = ", ".join(f"{owner} {n}" for owner, n in sorted(owners, key=lambda o: -o[1]) if n)
            rows.append([name, kind, str(len(ids)), by_owner])
    return rows


def acted_rows(report: Report) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for each in report.acted[:SHOWN_ACTED]:
        d = each.decision
        money = each.avoided_usd(report.hours)
        what = each.problem if each.hourly_usd is None else f"{each.description}; {each.source}"
        rows.append(
            [
                d.resource_id,
                action_text(d.action),
                usd(money),
                d.owner,
                what,
                usd(each.hourly_usd, 4),
                d.region,
                format_instant(d.at),
            ]
        )
    return rows


def evading_rows(report: Report) -> list[list[Cell]]:
    return [
        [
            e.resource_id,
            e.protection,
            e.owner,
            f"{(e.last_seen - e.first_seen).total_seconds() / 86400:.1f}",
            format_instant(e.first_seen),
        ]
        for e in report.evading
    ]


def headline(report: Report) -> Text:
    total = report.total
    line = Text("dollars avoided: ", style="bold")
    if not total.priced and not total.unpriced:
        line.append("nothing was stopped, terminated or deleted in the window")
        return line
    line.append(f"${total.avoided_usd:,.2f} (estimated)", style="bold")
    line.append(f" from {total.priced} of {total.priced + total.unpriced} stopped, terminated or deleted")
    if total.unpriced:
        line.append(f"; {total.unpriced} unpriced, so the total is low", style="red")
    return line


def print_report(console: Console, report: Report, title: str, *, quiet: bool = False) -> None:
    who = f" for {report.owner}" if report.owner else ""
    console.print(
        Text(
            f"{title}: {len(report.read.sweeps)} sweeps and {len(report.read.decisions)} decisions{who} from "
            f"{format_instant(report.since)} ({report.window}) to {format_instant(report.until)}",
            style="bold",
        )
    )
    print_table(console, "per owner (resources; avoided is an estimate)", OWNER_COLUMNS, owner_rows(report))
    print_table(console, "why: the resources each reason and protection applied to", WHY_COLUMNS, why_rows(report))
    shown = min(len(report.acted), SHOWN_ACTED)
    more = f" (the {shown} largest of {len(report.acted)})" if len(report.acted) > shown else ""
    print_table(console, f"stopped, terminated and deleted{more}", ACTED_COLUMNS, acted_rows(report))
    if report.evading:
        print_table(
            console,
            f"kept for over {days_or_duration(EVADING_AFTER)} as unreadable or min-age: fix or tell their owners",
            EVADING_COLUMNS,
            evading_rows(report),
        )
    console.print(headline(report))
    if report.not_managed_by_ssm:
        console.print(
            Text(
                f"instances SSM does not manage: {report.not_managed_by_ssm}; an idle one is kept, never "
                "stopped (README: Instances SSM does not manage)",
                style="yellow",
            )
        )
    console.print(Text(f"the estimate: {report.assumption()}", style="dim"))
    if not quiet:
        lookups = ", ".join(f"{n} {link}" for link, n in sorted(report.lookups.items())) or "none"
        console.print(Text(f"price look-ups: {lookups}; price file as of {report.price_file_as_of}", style="dim"))
        console.print(Text(f"read: {report.read.how()}", style="dim"))
        if report.read.unreadable:
            console.print(Text(f"{report.read.unreadable} ledger items could not be read as decisions", style="red"))


# ------------------------------------------------------------------------------------------------ the command


@contextmanager
def domain_logs_kept_off_stdout() -> Iterator[None]:
    """The price chain logs for Lambda, as JSON on stdout (a Price List API it may not call, say); here stdout
    carries the report alone, and what became of each price is in the report itself."""
    handler = logger.registered_handler
    before = handler.stream  # type: ignore[attr-defined]
    # Assigned, not setStream(): that flushes the previous stream (as trainctl invoke does).
    handler.stream = io.StringIO()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        handler.stream = before  # type: ignore[attr-defined]


def window_start(value: str, now: datetime) -> datetime:
    """--since: a duration back from now (30d), or an ISO-8601 instant."""
    try:
        return now - parse_duration(value)
    except InvalidDuration as duration_error:
        try:
            return parse_instant(value)
        except ValueError:
            raise fail(
                f"--since {value}: {humanise(str(duration_error))}, or an instant such as 2027-01-01T00:00:00Z",
                EXIT_USAGE,
            ) from duration_error


def report(
    ctx: typer.Context,
    since: Annotated[
        str, typer.Option(help="How far back: a duration (30d, 12h) or an ISO-8601 instant.")
    ] = DEFAULT_SINCE,
    owner: Annotated[str | None, typer.Option(help=f"Only this owner's resources ({NO_OWNER} for none).")] = None,
    noticed_after: Annotated[
        str,
        typer.Option(
            "--noticed-after",
            help="Dollars avoided assumes what a sweep stopped or deleted would have cost this long before someone "
            "noticed it.",
        ),
    ] = DEFAULT_NOTICED_AFTER,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="The ledger's region (default: AWS_REGION, the profile's).")
    ] = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """What the sweeps marked, stopped, terminated, deleted and kept, and why, per owner; dollars avoided."""
    fmt = output_format(ctx, output, as_json)
    regions = check_regions(region, command="report", single=True)
    clock: Clock = state_of(ctx).local_clock
    now = clock()
    start = window_start(since, now)
    if start >= now:
        raise fail(f"--since {since}: that is not in the past", EXIT_USAGE)
    noticed = duration_option("--noticed-after", noticed_after)
    if owner is not None and not owner.strip():
        raise fail("--owner needs a name", EXIT_USAGE)
    environ = dict(os.environ)
    check_settings(environ)
    settings = CostSettings.from_env(environ, regions=regions or None)
    factory = home_factory(ctx, regions, environ)
    home = regions[0] if regions else factory.default_region or settings.regions[0]
    resources = stack_resources.resolve(factory, environ, (home,))
    if resources is None:
        raise TrainctlError(f"stack {names.STACK_NAME} is not deployed here: there is no ledger to report on")
    settings = settings.model_copy(
        update={"ledger_table": resources.ledger_table, "price_table": resources.price_table}
    )
    book = price_book_for(factory, settings, clock, use_table=True, use_api=has_price_list_api(environ))
    with domain_logs_kept_off_stdout():
        result = build_report(
            factory,
            resources.ledger_table,
            book,
            since=start,
            until=now,
            window=since,
            owner=owner,
            noticed_after=noticed,
        )
    emit(
        fmt,
        result.to_json(),
        lambda: print_report(console, result, "trainctl report", quiet=state_of(ctx).quiet),
        rows=result.csv_rows(),
    )
