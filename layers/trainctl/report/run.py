"""The report's reads: the ledger over a window, EC2 now for what the ledger does not say, and the prices.

The reads: a Query of the sweep partition for the window (the sweeps, newest last), then one filtered Scan of the
table for the decisions since the window opened. The decisions are keyed by resource and the sweep's item does not
list its resources, so without a Scan the resources a sweep recorded cannot be found; the table expires decisions
after 180 days, which keeps it small, and a larger one is scanned in parallel segments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import ClientFactory, access_error, error_code
from trainctl.core.clock import parse_instant
from trainctl.core.errors import TrainctlError
from trainctl.core.permissions import needs
from trainctl.cost.prices.chain import PriceBook
from trainctl.report.rules import (
    AVOIDING,
    Avoided,
    LedgerRead,
    Recorded,
    Report,
    evading,
    priced,
    pricing_need,
    running_then,
    tally,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import PaginatorConfigTypeDef

# The report's own reads; the price chain declares its own (the price table, the Price List API).
PERMISSIONS = needs("dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable", "ec2:DescribeInstances")

# A Scan segment per this much table; one segment for a table under it (most ledgers).
SEGMENT_BYTES = 64 * 1024 * 1024
MAX_SEGMENTS = 8
# Items per page of the Query and the Scan: None leaves DynamoDB's own pages of up to 1 MB.
PAGE_ITEMS: int | None = None
# Filter values per DescribeInstances call.
IDS_PER_CALL = 200


def recorded(item: Mapping[str, Any]) -> Recorded:
    """A ledger item as a decision; ValueError (or KeyError) when it is not a decision trainctl can read."""
    stamp, _, sweep_id = str(item[ledger.SORT_KEY]["S"]).partition("#")
    partition = str(item[ledger.PARTITION_KEY]["S"])
    return Recorded.from_json(
        str(item["decision"]["S"]),
        resource_id=partition.removeprefix(ledger.resource_partition("")),
        stamp=stamp,
        sweep_id=sweep_id,
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
                decisions.append(recorded(item))
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


def price_acted(factory: ClientFactory, decisions: Sequence[Recorded], book: PriceBook) -> list[Avoided]:
    """What each stop, termination and deletion cost per hour when done; unpriced, with why, where unknown."""
    acted = [d for d in decisions if d.action in AVOIDING and d.outcome == "done"]
    wanted: dict[str, list[str]] = {}
    for d in acted:
        if d.resource_type == "instance" and running_then(d) and not d.described.get("InstanceType"):
            wanted.setdefault(d.region, []).append(d.resource_id)
    now = instances_now(factory, {region: sorted(set(ids)) for region, ids in wanted.items()}) if wanted else {}
    needs_ = [pricing_need(d, now) for d in acted]
    quotes = book.quotes({key for need in needs_ for key in need.keys})
    return [priced(need, quotes) for need in needs_]


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
        decisions=tuple(decisions),
    )
