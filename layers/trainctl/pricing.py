"""Prices through a chain: memory, the DynamoDB price table, the Price List Query API, the shipped price file.

Where every link fails the price is missing, and the resource is reported unpriced: never priced at $0.
Spot prices come from DescribeSpotPriceHistory per zone; if that fails the on-demand price is an upper bound.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws import access_error, error_code
from trainctl.clock import Clock, ensure_utc, format_instant
from trainctl.errors import SettingsError, TrainctlError
from trainctl.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_pricing import PricingClient

PriceKind = Literal["instance", "storage", "iops", "throughput", "snapshot"]
# Where a number came from: the report says it for every resource.
Origin = Literal["price-list-api", "price-file", "spot-price-history", "on-demand-upper-bound"]
HOURS_PER_MONTH = 730  # AWS prices storage per GB-month and bills it by the hour on this basis

UNITS: dict[PriceKind, str] = {
    "instance": "hour",
    "storage": "gb-month",
    "iops": "iops-month",
    "throughput": "mibps-month",
    "snapshot": "gb-month",
}


class PriceNotFound(TrainctlError):
    """This link of the chain has no price for the key."""


class AmbiguousPrice(TrainctlError):
    """The filters match more than one distinct price: refusing to guess."""


@dataclass(frozen=True, slots=True, order=True)
class PriceKey:
    kind: PriceKind
    region: str
    name: str  # instance type, or EBS volumeApiName; "standard" for snapshots

    def __str__(self) -> str:
        return f"{self.kind}|{self.region}|{self.name}"

    @classmethod
    def parse(cls, text: str) -> PriceKey:
        kind, region, name = text.split("|")
        if kind not in UNITS:
            raise ValueError(f"unknown price kind {kind!r}")
        return cls(kind, region, name)


@dataclass(frozen=True, slots=True)
class Tier:
    """A price per unit for quantities in [begin, end); end None is unbounded."""

    begin: float
    end: float | None
    usd: float


@dataclass(frozen=True, slots=True)
class Price:
    tiers: tuple[Tier, ...]
    unit: str
    origin: Origin
    as_of: str  # when the number was published or fetched (UTC ISO-8601 or a date)

    @classmethod
    def flat(cls, usd: float, unit: str, origin: Origin, as_of: str) -> Price:
        return cls((Tier(0.0, None, usd),), unit, origin, as_of)

    def cost(self, quantity: float) -> float:
        """What `quantity` units cost, tier by tier (io2 IOPS are priced in tiers)."""
        total = 0.0
        for tier in self.tiers:
            upper = quantity if tier.end is None else min(quantity, tier.end)
            if upper > tier.begin:
                total += (upper - tier.begin) * tier.usd
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "tiers": [[t.begin, t.end, t.usd] for t in self.tiers],
            "unit": self.unit,
            "origin": self.origin,
            "as_of": self.as_of,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Price:
        tiers = tuple(
            Tier(float(begin), None if end is None else float(end), float(usd)) for begin, end, usd in raw["tiers"]
        )
        if not tiers or any(t.usd < 0 for t in tiers):
            raise ValueError("a price needs at least one tier and no negative amount")
        return cls(tiers, str(raw["unit"]), raw["origin"], str(raw["as_of"]))


# ---------------------------------------------------------------------------------------------- Price List API

# The published request rate of the Price List Query API.
PRICE_LIST_MAX_RATE = 5.0


class RateLimiter:
    """At most `rate` acquisitions a second, shared by threads; the clock and sleep are injectable for tests."""

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._interval = 1.0 / rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self._interval
        if wait > 0:
            self._sleep(wait)


def _filters(key: PriceKey) -> list[dict[str, str]]:
    common = {"regionCode": key.region}
    fields: dict[str, str]
    if key.kind == "instance":
        fields = {
            **common,
            "instanceType": key.name,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
            "marketoption": "OnDemand",
            "licenseModel": "No License required",
        }
    elif key.kind == "storage":
        fields = {**common, "productFamily": "Storage", "volumeApiName": key.name}
    elif key.kind == "iops":
        fields = {**common, "productFamily": "System Operation", "group": "EBS IOPS", "volumeApiName": key.name}
    elif key.kind == "throughput":
        fields = {**common, "productFamily": "Provisioned Throughput", "volumeApiName": key.name}
    else:
        fields = {**common, "productFamily": "Storage Snapshot"}
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in fields.items()]


# Usage types that pick one product where the filters alone match several (archive tier, io2 IOPS tiers).
_SNAPSHOT_USAGE = "EBS:SnapshotUsage"
# io2 IOPS are billed in three tiers; the Price List has one product per tier, told apart by usage type.
_IO2_IOPS_TIERS = (("EBS:VolumeP-IOPS.io2", 0.0, 32_000.0), ("EBS:VolumeP-IOPS.io2.tier2", 32_000.0, 64_000.0))
_IO2_IOPS_TOP = ("EBS:VolumeP-IOPS.io2.tier3", 64_000.0, None)


@dataclass(frozen=True, slots=True)
class _Product:
    usage_type: str
    tiers: tuple[Tier, ...]


def parse_price_list(documents: Iterable[str]) -> list[_Product]:
    """The on-demand price dimensions of each PriceList entry (each a JSON string, as the API returns them)."""
    products = []
    for text in documents:
        entry = json.loads(text)
        attributes = entry.get("product", {}).get("attributes", {})
        tiers = []
        for term in entry.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                end = dimension.get("endRange", "Inf")
                tiers.append(
                    Tier(
                        float(dimension.get("beginRange", "0")),
                        None if end in ("Inf", "", None) else float(end),
                        float(dimension["pricePerUnit"]["USD"]),
                    )
                )
        # A product priced at zero throughout is not what was asked for (a free or placeholder SKU).
        if tiers and any(t.usd > 0 for t in tiers):
            products.append(_Product(str(attributes.get("usagetype", "")), tuple(sorted(tiers, key=lambda t: t.begin))))
    return products


def select_price(key: PriceKey, products: list[_Product]) -> tuple[Tier, ...]:
    """One price for the key, or PriceNotFound / AmbiguousPrice: never a guess."""
    if key.kind == "snapshot":
        products = [p for p in products if p.usage_type.endswith(_SNAPSHOT_USAGE)]
    if key.kind == "iops" and key.name == "io2":
        tiers = []
        for usage, begin, end in (*_IO2_IOPS_TIERS, _IO2_IOPS_TOP):
            match = _one({p.tiers for p in products if p.usage_type.endswith(usage)}, key, usage)
            tiers.append(Tier(begin, end, match[0].usd))
        return tuple(tiers)
    return _one({p.tiers for p in products}, key, "")


def _one(distinct: set[tuple[Tier, ...]], key: PriceKey, usage: str) -> tuple[Tier, ...]:
    what = f"{key}{' ' + usage if usage else ''}"
    if not distinct:
        raise PriceNotFound(f"the Price List has no on-demand price for {what}")
    if len(distinct) > 1:
        prices = sorted({t.usd for tiers in distinct for t in tiers})
        raise AmbiguousPrice(f"{len(distinct)} distinct prices match {what}: {prices}")
    return next(iter(distinct))


class PriceListApi:
    """The AWS Price List Query API (served from us-east-1), rate-limited to its published 5 requests a second."""

    def __init__(self, pricing: PricingClient, *, limiter: RateLimiter, clock: Clock) -> None:
        self._pricing = pricing
        self._limiter = limiter
        self._clock = clock

    def products(self, key: PriceKey) -> list[str]:
        documents: list[str] = []
        token: str | None = None
        while True:
            self._limiter.acquire()
            kwargs: dict[str, Any] = {"NextToken": token} if token else {}
            response = self._pricing.get_products(
                ServiceCode="AmazonEC2",
                Filters=_filters(key),  # type: ignore[arg-type]
                FormatVersion="aws_v1",
                MaxResults=100,
                **kwargs,
            )
            documents.extend(response.get("PriceList", []))
            token = response.get("NextToken")
            if not token:
                return documents

    def price(self, key: PriceKey) -> Price:
        tiers = select_price(key, parse_price_list(self.products(key)))
        return Price(tiers, UNITS[key.kind], "price-list-api", format_instant(self._clock()))


# ------------------------------------------------------------------------------------------------- price file

PRICE_FILE_FORMAT = 1


@dataclass(frozen=True)
class PriceFile:
    """Dated on-demand prices shipped in the layer: the last link before "unpriced"."""

    as_of: str
    source: str
    prices: Mapping[PriceKey, Price]

    def price(self, key: PriceKey) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise PriceNotFound(f"the price file of {self.as_of} has no price for {key}") from None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PriceFile:
        if raw.get("format") != PRICE_FILE_FORMAT:
            raise ValueError(f"format must be {PRICE_FILE_FORMAT}, got {raw.get('format')!r}")
        as_of = str(raw["as_of"])
        prices = {}
        for text, value in raw["prices"].items():
            key = PriceKey.parse(text)
            entry = value if isinstance(value, dict) else {"tiers": [[0, None, value]]}
            prices[key] = Price.from_json({"unit": UNITS[key.kind], "origin": "price-file", "as_of": as_of, **entry})
        return cls(as_of, str(raw.get("source", "")), prices)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PRICE_FILE_FORMAT,
            "as_of": self.as_of,
            "source": self.source,
            "prices": {
                str(key): price.tiers[0].usd if len(price.tiers) == 1 else {"tiers": price.to_json()["tiers"]}
                for key, price in sorted(self.prices.items())
            },
        }


def load_price_file(path: str | None = None) -> PriceFile:
    """The shipped file, or the one at `path`; an unreadable file is a SettingsError at start, not a $0 later."""
    where = path or "the price file shipped with trainctl"
    try:
        if path:
            text = Path(path).read_text(encoding="utf-8")
        else:
            text = resources.files("trainctl").joinpath("data", "prices.json").read_text(encoding="utf-8")
        return PriceFile.from_json(json.loads(text))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SettingsError(f"TRAINCTL_PRICE_FILE: cannot read {where}: {type(exc).__name__}: {exc}") from exc


# ------------------------------------------------------------------------------------------------ price table


class PriceTable(Protocol):
    def get_many(self, keys: list[str]) -> dict[str, Price]: ...

    def put(self, key: str, price: Price, expires: datetime) -> None: ...


class DynamoDbPriceTable:
    """Prices fetched from the API, shared by every function and run; DynamoDB's TTL drops stale ones."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str, clock: Clock) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._clock = clock

    def get_many(self, keys: list[str]) -> dict[str, Price]:
        found: dict[str, Price] = {}
        now = int(self._clock().timestamp())
        try:
            for start in range(0, len(keys), 100):
                request: dict[str, Any] = {
                    self._table: {"Keys": [{"pk": {"S": key}} for key in keys[start : start + 100]]}
                }
                for _ in range(8):
                    response = self._dynamodb.batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self._table, []):
                        # TTL deletion lags by up to days: an expired item is treated as absent.
                        if int(item["expires_at"]["N"]) > now:
                            found[item["pk"]["S"]] = Price.from_json(json.loads(item["price"]["S"]))
                    request = dict(response.get("UnprocessedKeys") or {})
                    if not request:
                        break
        except ClientError as exc:
            raise access_error("BatchGetItem", exc) from exc
        return found

    def put(self, key: str, price: Price, expires: datetime) -> None:
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": key},
                    "price": {"S": json.dumps(price.to_json())},
                    "expires_at": {"N": str(int(expires.timestamp()))},
                },
            )
        except ClientError as exc:
            raise access_error("PutItem", exc) from exc


class InMemoryPriceTable:
    def __init__(self) -> None:
        self.items: dict[str, tuple[Price, datetime]] = {}

    def get_many(self, keys: list[str]) -> dict[str, Price]:
        return {key: self.items[key][0] for key in keys if key in self.items}

    def put(self, key: str, price: Price, expires: datetime) -> None:
        self.items[key] = (price, expires)


# ------------------------------------------------------------------------------------------------------- spot


@dataclass(frozen=True, slots=True, order=True)
class SpotKey:
    region: str
    availability_zone: str
    instance_type: str

    def __str__(self) -> str:
        return f"spot|{self.region}|{self.availability_zone}|{self.instance_type}"


class SpotPriceHistory:
    def __init__(self, ec2_for_region: Callable[[str], EC2Client]) -> None:
        self._ec2_for_region = ec2_for_region

    def price(self, key: SpotKey, at: datetime) -> Price:
        response = self._ec2_for_region(key.region).describe_spot_price_history(
            InstanceTypes=[key.instance_type],  # type: ignore[list-item]
            AvailabilityZone=key.availability_zone,
            ProductDescriptions=["Linux/UNIX"],
            StartTime=at,
            EndTime=at,
        )
        history = [
            h
            for h in response.get("SpotPriceHistory", [])
            if h.get("AvailabilityZone") == key.availability_zone and h.get("InstanceType") == key.instance_type
        ]
        if not history:
            raise PriceNotFound(f"no spot price history for {key.instance_type} in {key.availability_zone}")
        newest = max(history, key=lambda h: ensure_utc(h["Timestamp"]))
        return Price.flat(
            float(newest["SpotPrice"]), "hour", "spot-price-history", format_instant(ensure_utc(newest["Timestamp"]))
        )


# ---------------------------------------------------------------------------------------------------- the chain

Link = Literal["memory", "table", "api", "file", "spot-api", "spot-fallback", "unpriced"]


@dataclass
class Quote:
    """A resolved price, or why there is none; `upper_bound` when a spot price fell back to on demand."""

    price: Price | None
    link: Link
    problem: str = ""
    upper_bound: bool = False


class PriceBook:
    """The chain. Kept warm across invocations of a Lambda; every lookup is counted by the link that answered."""

    def __init__(
        self,
        *,
        clock: Clock,
        price_file: PriceFile,
        table: PriceTable | None = None,
        api: PriceListApi | None = None,
        spot: SpotPriceHistory | None = None,
        list_price_ttl: timedelta = timedelta(days=7),
        spot_price_ttl: timedelta = timedelta(hours=1),
        api_retry_after: timedelta = timedelta(minutes=15),
    ) -> None:
        self._clock = clock
        self._file = price_file
        self._table = table
        self._api = api
        self._spot = spot
        self._list_ttl = list_price_ttl
        self._spot_ttl = spot_price_ttl
        self._api_retry_after = api_retry_after
        self._memory: dict[str, tuple[Price, datetime]] = {}
        self._api_down_until: datetime | None = None
        self._lock = threading.Lock()
        self.lookups: Counter[str] = Counter()

    @property
    def price_file(self) -> PriceFile:
        return self._file

    def _remember(self, key: str, price: Price, ttl: timedelta) -> None:
        with self._lock:
            self._memory[key] = (price, self._clock() + ttl)

    def _recall(self, key: str) -> Price | None:
        with self._lock:
            entry = self._memory.get(key)
        if entry and entry[1] > self._clock():
            return entry[0]
        return None

    def _count(self, link: Link) -> None:
        with self._lock:
            self.lookups[link] += 1

    def quotes(self, keys: Iterable[PriceKey]) -> dict[PriceKey, Quote]:
        """Resolve many keys: memory first, then one batched read of the table, then the API, then the file."""
        wanted = sorted(set(keys))
        quotes: dict[PriceKey, Quote] = {}
        missing = []
        for key in wanted:
            price = self._recall(str(key))
            if price is not None:
                self._count("memory")
                quotes[key] = Quote(price, "memory")
            else:
                missing.append(key)
        if missing and self._table is not None:
            try:
                stored = self._table.get_many([str(k) for k in missing])
            except TrainctlError as exc:
                logger.warning("price table unavailable", extra={"error": str(exc)})
                stored = {}
            for key in list(missing):
                if str(key) in stored:
                    price = stored[str(key)]
                    self._remember(str(key), price, self._list_ttl)
                    self._count("table")
                    quotes[key] = Quote(price, "table")
                    missing.remove(key)
        for key in missing:
            quotes[key] = self._from_api_or_file(key)
        return quotes

    def _from_api_or_file(self, key: PriceKey) -> Quote:
        problems = []
        now = self._clock()
        if self._api is not None and (self._api_down_until is None or now >= self._api_down_until):
            try:
                price = self._api.price(key)
            except (PriceNotFound, AmbiguousPrice) as exc:
                problems.append(str(exc))
            except (ClientError, BotoCoreError) as exc:
                # The link is down (no access, no endpoint, throttled past retries): skip it for a while.
                code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
                problems.append(f"Price List API unavailable: {code}")
                self._api_down_until = now + self._api_retry_after
                logger.warning("Price List API unavailable", extra={"error": str(exc)})
            else:
                self._count("api")
                self._remember(str(key), price, self._list_ttl)
                if self._table is not None:
                    try:
                        self._table.put(str(key), price, now + self._list_ttl)
                    except TrainctlError as exc:
                        logger.warning("price table write failed", extra={"error": str(exc)})
                return Quote(price, "api")
        try:
            price = self._file.price(key)
        except PriceNotFound as exc:
            problems.append(str(exc))
        else:
            self._count("file")
            # File prices stay in memory only: the table holds what the API said, nothing older.
            self._remember(str(key), price, self._list_ttl)
            return Quote(price, "file", "; ".join(problems))
        self._count("unpriced")
        return Quote(None, "unpriced", "; ".join(problems))

    def spot_quotes(self, keys: Iterable[SpotKey], on_demand: Mapping[PriceKey, Quote]) -> dict[SpotKey, Quote]:
        """The spot price in effect now per zone and type, cached an hour; else on demand as an upper bound."""
        quotes = {}
        now = self._clock()
        for key in sorted(set(keys)):
            cached = self._recall(str(key))
            if cached is not None:
                self._count("memory")
                quotes[key] = Quote(cached, "memory")
                continue
            problem = "spot price history not configured"
            if self._spot is not None:
                fallback = on_demand.get(PriceKey("instance", key.region, key.instance_type))
                try:
                    price = self._spot.price(key, now)
                    _plausible_spot(price, fallback.price if fallback else None)
                except (PriceNotFound, ClientError, BotoCoreError) as exc:
                    problem = f"spot price history failed: {exc}"
                else:
                    self._count("spot-api")
                    self._remember(str(key), price, self._spot_ttl)
                    quotes[key] = Quote(price, "spot-api")
                    continue
            fallback = on_demand.get(PriceKey("instance", key.region, key.instance_type))
            if fallback is not None and fallback.price is not None:
                self._count("spot-fallback")
                bound = replace(fallback.price, origin="on-demand-upper-bound")
                quotes[key] = Quote(bound, "spot-fallback", problem, upper_bound=True)
            else:
                self._count("unpriced")
                quotes[key] = Quote(None, "unpriced", problem)
        return quotes


# Spot saves at most 90% and never costs more than on demand: outside that band a spot price is not believed.
SPOT_FLOOR_SHARE = 0.05


def _plausible_spot(spot: Price, on_demand: Price | None) -> None:
    if on_demand is None:
        return
    usd, ceiling = spot.cost(1), on_demand.cost(1)
    if not SPOT_FLOOR_SHARE * ceiling <= usd <= ceiling:
        raise PriceNotFound(
            f"spot price ${usd:g}/h is implausible against ${ceiling:g}/h on demand "
            f"(outside {SPOT_FLOOR_SHARE:.0%}..100%)"
        )
