"""What the resources a sweep decides to act on cost per hour when decided, and the dollars that avoided.

Priced from the price file shipped with the code (no call of its own, so a sweep's policy grows nothing): spot at
its on-demand price, an upper bound; a stopped instance costs nothing per hour itself; what the file cannot price
is unpriced (None) and counts nothing, never $0 said as a price.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, NamedTuple, Protocol

from trainctl.core.errors import SettingsError
from trainctl.core.resources import Instance, RegionInventory, Resource, Snapshot, Volume

if TYPE_CHECKING:
    from trainctl.cost.prices.model import PriceKey, Quote
    from trainctl.cost.prices.price_file import PriceFile

AVOIDING_ACTIONS = ("stop", "terminate", "delete")


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class Hourly(NamedTuple):
    """A resource's hourly price as decided, where it came from, or why there is none."""

    usd: float | None
    source: str
    problem: str = ""


class Avoiding(Protocol):
    """A decision as dollars avoided reads it (trainctl.sweep.rules.Decision)."""

    @property
    def action(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def hourly_usd(self) -> float | None: ...


@cache
def price_file() -> PriceFile:
    # Cold start: the price file (about 10 ms) only once a sweep decides to act.
    from trainctl.cost.prices.price_file import load_price_file

    return load_price_file()


def file_quote(key: PriceKey) -> Quote:
    # Cold start: as price_file.
    from trainctl.cost.prices.model import PriceNotFound, Quote

    try:
        return Quote(price_file().price(key), "file")
    except PriceNotFound as exc:
        return Quote(None, "unpriced", str(exc))
    except SettingsError as exc:  # an unreadable price file leaves it unpriced: it never stops a sweep
        return Quote(None, "unpriced", str(exc))


def hourly_prices(resources: Iterable[Resource], at: datetime) -> dict[str, Hourly]:
    """Each resource's hourly list price as it is now (its state, size, type), by resource id."""
    parts: dict[str, tuple[list[Instance], list[Volume], list[Snapshot]]] = {}
    for resource in resources:
        instances, volumes, snapshots = parts.setdefault(resource.region, ([], [], []))
        if isinstance(resource, Instance):
            instances.append(resource)
        elif isinstance(resource, Volume):
            volumes.append(resource)
        else:
            snapshots.append(resource)
    inventories = [RegionInventory(r, tuple(i), tuple(v), tuple(s)) for r, (i, v, s) in parts.items()]
    # Cold start: the cost rules only once a sweep decides to act (dollars avoided alone needs none of them).
    from trainctl.cost.prices.model import PriceKey
    from trainctl.cost.rules import estimate, price_keys

    keys, spot_keys = price_keys(inventories)
    quotes = {key: file_quote(key) for key in keys}
    on_demand = {key: quotes[PriceKey("instance", key.region, key.instance_type)] for key in spot_keys}
    return {
        cost.resource_id: Hourly(cost.hourly_usd, cost.price_source, cost.problem)
        for cost in estimate(inventories, quotes, on_demand, {}, at)
    }


def dollars_avoided(decisions: Iterable[Avoiding], hours: float) -> float:
    """`hours` of what the stopped, terminated and deleted resources cost per hour when decided."""
    hourly = sum(d.hourly_usd or 0.0 for d in decisions if d.outcome == "done" and d.action in AVOIDING_ACTIONS)
    return round(hourly * hours, 2)
