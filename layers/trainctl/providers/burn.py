"""A provider's burn as its own function recorded it, added by cost_alerts to the totals it alerts on.

Each deployed provider's function prices its account on the cost schedule (providers.cost) and writes one ledger
item, overwritten each run (`provider-burn` / the provider): when, every resource as priced, its balance breaches
and notes, or the one-line error that kept the provider from being read. cost_alerts reads those items in one
Query and never calls a provider: a slow or failing provider API holds up only its own function. A record older
than the bound, dated ahead of now, holding a negative or non-finite price, or none at all, makes that provider's
burn unknown, named, never $0.

The record holds what the provider's API answered after trainctl read it, never the key: the clients redact it
from every error and note before it gets here.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import access_error
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.durations import format_duration
from trainctl.core.errors import TrainctlError
from trainctl.core.permissions import needs
from trainctl.cost.rules import Breach, ResourceCost
from trainctl.cost.run import ProviderCosts

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The provider's function writes its record; cost_alerts reads every provider's in one Query.
PERMISSIONS = needs("dynamodb:PutItem", "dynamodb:Query")

BURN_PARTITION = "provider-burn"
RECORD_VERSION = 1
# A record nobody overwrites any more (a provider taken out of the deployment) leaves the table after this.
RECORD_RETENTION = timedelta(days=7)
# DynamoDB's item limit is 400 KB; the compressed record of 2,000 pods and 500 network volumes is about 48 KB.
MAX_RECORD_BYTES = 380_000
# A record dated further ahead than this is no fresh one (a clock run ahead, or a forgery): it would stay "young"
# at every check until that date; clocks synchronised as Lambda's are agree within well under a second.
FUTURE_SKEW = timedelta(minutes=5)

# One resource as a row, in this order: the record stays small enough for one item at thousands of resources.
_ROW = (
    "resource_id",
    "resource_type",
    "region",
    "owner",
    "description",
    "hourly_usd",
    "accumulated_usd",
    "price_source",
    "since",
    "flags",
    "problem",
)


@dataclass(frozen=True)
class RecordedBurn:
    """A provider's priced account as its function recorded it, and when it priced it."""

    at: datetime
    costs: ProviderCosts


class RecordTooLarge(TrainctlError):
    """The provider's priced account does not fit in one ledger item."""


def _row(cost: ResourceCost) -> list[Any]:
    return [
        cost.resource_id,
        cost.resource_type,
        cost.region,
        cost.owner,
        cost.description,
        cost.hourly_usd,
        cost.accumulated_usd,
        cost.price_source,
        format_instant(cost.since),
        list(cost.flags),
        cost.problem,
    ]


class UnreadableRecord(TrainctlError):
    """A recorded burn trainctl will not add: its provider's burn is then unknown, named."""


def _price(value: Any) -> float | None:
    """A recorded dollar figure; a negative or non-finite one would lower or void every total it joins."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UnreadableRecord("the recorded burn could not be read (a price that is negative or not a finite number)")
    return float(value)


def _cost(row: Sequence[Any], provider: str) -> ResourceCost:
    raw = dict(zip(_ROW, row, strict=True))
    return ResourceCost(
        str(raw["resource_id"]),
        str(raw["resource_type"]),
        str(raw["region"]),
        str(raw["owner"]),
        str(raw["description"]),
        _price(raw["hourly_usd"]),
        _price(raw["accumulated_usd"]),
        str(raw["price_source"]),
        parse_instant(str(raw["since"])),
        tuple(str(flag) for flag in raw["flags"]),
        str(raw["problem"]),
        provider=provider,
    )


def encode(costs: ProviderCosts, at: datetime) -> bytes:
    """The record's bytes: compressed JSON (thousands of alike rows shrink tenfold)."""
    body = {
        "version": RECORD_VERSION,
        "provider": costs.provider,
        "at": format_instant(at),
        "error": costs.error,
        "notes": list(costs.notes),
        "breaches": [[b.key, b.kind, b.scope, b.value, b.threshold] for b in costs.breaches],
        "resources": [_row(cost) for cost in costs.resources],
    }
    return zlib.compress(json.dumps(body, separators=(",", ":")).encode("utf-8"))


def decode(blob: bytes) -> RecordedBurn:
    """A record back; one trainctl cannot read raises TrainctlError (its provider is then unknown, named)."""
    try:
        raw = json.loads(zlib.decompress(blob))
        if raw.get("version") != RECORD_VERSION:
            raise ValueError(f"version {raw.get('version')!r}")
        provider = str(raw["provider"])
        breaches = tuple(
            Breach(str(key), kind, str(scope), float(value), float(threshold))
            for key, kind, scope, value, threshold in raw["breaches"]
        )
        costs = ProviderCosts(
            provider,
            tuple(_cost(row, provider) for row in raw["resources"]),
            breaches,
            error=None if raw["error"] is None else str(raw["error"]),
            notes=tuple(str(note) for note in raw["notes"]),
        )
        return RecordedBurn(parse_instant(str(raw["at"])), costs)
    except (zlib.error, ValueError, KeyError, TypeError) as exc:
        raise TrainctlError(f"the recorded burn could not be read ({type(exc).__name__})") from exc


def unknown(provider: str, why: str) -> ProviderCosts:
    """A provider whose burn is not known now: no resources (never $0 for them) and the reason, one line."""
    return ProviderCosts(provider, error=f"{provider}: burn unknown, not $0: {why}")


def newest_burn(
    recorded: Mapping[str, RecordedBurn | str], providers: Sequence[str], at: datetime, max_age: timedelta
) -> tuple[ProviderCosts, ...]:
    """Each deployed provider's recorded burn as of `at`: what was recorded if fresh, else unknown by name.

    `recorded` maps a provider to its record, or to why its record could not be read.
    """
    chosen: list[ProviderCosts] = []
    for provider in providers:
        found = recorded.get(provider)
        if found is None:
            chosen.append(unknown(provider, "its function has recorded none yet"))
        elif isinstance(found, str):
            chosen.append(unknown(provider, found))
        elif at - found.at > max_age:
            minutes = int((at - found.at).total_seconds() // 60)
            why = f"last recorded {format_instant(found.at)}, {minutes} minutes ago (over {format_duration(max_age)})"
            chosen.append(unknown(provider, why))
        elif found.at - at > FUTURE_SKEW:
            minutes = int((found.at - at).total_seconds() // 60)
            ahead = format_duration(FUTURE_SKEW)
            why = f"recorded as of {format_instant(found.at)}, {minutes} minutes ahead of now (over {ahead})"
            chosen.append(unknown(provider, why))
        elif found.costs.error:
            chosen.append(unknown(provider, found.costs.error))
        else:
            chosen.append(found.costs)
    return tuple(chosen)


class DynamoDbBurnStore:
    """The providers' recorded burn in the ledger table: one item per provider, overwritten by each run."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def record(self, costs: ProviderCosts, at: datetime) -> None:
        blob = encode(costs, at)
        if len(blob) > MAX_RECORD_BYTES:
            # Recorded as the provider's error rather than not at all: cost_alerts names it instead of going stale.
            blob = encode(
                ProviderCosts(
                    costs.provider,
                    error=f"{costs.provider}: {len(costs.resources)} resources priced, "
                    f"too many to record in one ledger item ({len(blob)} bytes compressed)",
                ),
                at,
            )
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    **ledger.key(BURN_PARTITION, costs.provider),
                    "at": {"S": format_instant(at)},
                    "record": {"B": blob},
                    **ledger.expires(at, RECORD_RETENTION),
                },
            )
        except ClientError as exc:
            raise access_error("PutItem", exc) from exc

    def read(self) -> dict[str, RecordedBurn | str]:
        """Every provider's record, or why it could not be read; a failed Query raises (AwsAccessError)."""
        found: dict[str, RecordedBurn | str] = {}
        try:
            pages = self._dynamodb.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": BURN_PARTITION}},
            )
            items = [item for page in pages for item in page.get("Items", [])]
        except ClientError as exc:
            raise access_error("Query", exc) from exc
        for item in items:
            provider = item[ledger.SORT_KEY]["S"]
            try:
                found[provider] = decode(bytes(item["record"]["B"]))
            except (TrainctlError, KeyError) as exc:
                found[provider] = str(exc) if isinstance(exc, TrainctlError) else "the recorded burn has no record"
        return found


def recorded_burn(
    dynamodb: DynamoDBClient, table_name: str, providers: Sequence[str], at: datetime, max_age: timedelta
) -> tuple[ProviderCosts, ...]:
    """What cost_alerts adds: each deployed provider's fresh recorded burn, else that provider unknown by name.

    A ledger that cannot be read makes every provider unknown and leaves the AWS cost check whole.
    """
    try:
        recorded = DynamoDbBurnStore(dynamodb, table_name).read()
    except TrainctlError as exc:
        return tuple(unknown(provider, f"the ledger could not be read: {exc}") for provider in providers)
    return newest_burn(recorded, providers, at, max_age)
