"""What a price is: its key, its tiers, where it came from; pure, shared by every link of the chain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from trainctl.core.errors import TrainctlError

if TYPE_CHECKING:
    pass


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


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class PriceKey(NamedTuple):
    """Which price: its kind, region and name (instance type, volume type)."""

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


class Tier(NamedTuple):
    """A price per unit for quantities in [begin, end); end None is unbounded."""

    begin: float
    end: float | None
    usd: float


@dataclass(frozen=True, slots=True)
class Price:
    """A price in tiers per unit, where it came from and as of when."""

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


class SpotKey(NamedTuple):
    """Which spot price: instance type in an availability zone."""

    region: str
    availability_zone: str
    instance_type: str

    def __str__(self) -> str:
        return f"spot|{self.region}|{self.availability_zone}|{self.instance_type}"


Link = Literal["memory", "table", "api", "file", "spot-api", "spot-fallback", "unpriced"]


@dataclass
class Quote:
    """A resolved price, or why there is none; `upper_bound` when a spot price fell back to on demand."""

    price: Price | None
    link: Link
    problem: str = ""
    upper_bound: bool = False
