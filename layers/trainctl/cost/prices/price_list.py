"""The AWS Price List Query API as a link of the chain: exact filters, refusing ambiguity, rate-limited."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from trainctl.core.clock import Clock, format_instant
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_pricing import PricingClient

from trainctl.cost.prices.model import UNITS, AmbiguousPrice, Price, PriceKey, PriceNotFound, Tier

PERMISSIONS = needs("pricing:GetProducts")

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


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class _Product(NamedTuple):
    """One PriceList entry's usage type and its on-demand price tiers."""

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
