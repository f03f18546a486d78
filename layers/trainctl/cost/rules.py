"""The money burning now, from the live inventory: pure functions of (inventory, prices, history, clock).

Billing data lags by hours; these estimates do not. Every figure says where its price came from, and a
resource without a price is reported unpriced, never counted as $0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from trainctl.core import tags
from trainctl.core.accelerators import Accelerators, accelerators_for
from trainctl.core.clock import format_instant
from trainctl.core.cost_settings import CostSettings
from trainctl.core.resources import Instance, RegionInventory, Snapshot, Volume
from trainctl.cost.prices.model import HOURS_PER_MONTH, PriceKey, Quote, SpotKey

if TYPE_CHECKING:
    from trainctl.core.notices import Notice

# gp3 includes this much performance in its storage price.
GP3_FREE_IOPS = 3000
GP3_FREE_THROUGHPUT_MIBPS = 125
PROVISIONED_IOPS_TYPES = ("io1", "io2")
BILLED_INSTANCE_STATES = ("running",)
# State-change events that end a billed interval.
STOP_STATES = frozenset({"stopping", "stopped", "shutting-down", "terminated"})

Flag = Literal["lower-bound", "upper-bound", "spot-price-fallback", "partly-unpriced"]


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class Transition(NamedTuple):
    """An instance's state change, when it happened."""

    at: datetime
    state: str


@dataclass(frozen=True)
class ResourceCost:
    """What one resource costs: its hourly price, what it has cost so far, and the price's source."""

    resource_id: str
    resource_type: str
    region: str
    owner: str
    description: str  # "g5.xlarge running", "gp3 500 GiB", "snapshot 1000 GiB"
    hourly_usd: float | None
    accumulated_usd: float | None
    price_source: str
    since: datetime
    flags: tuple[str, ...] = ()
    problem: str = ""
    accelerators: Accelerators | None = None  # GPUs or Neuron chips of an instance, from its type
    provider: str = "aws"  # or a GPU provider beside AWS: runpod, lyceum

    @property
    def priced(self) -> bool:
        return self.hourly_usd is not None

    @property
    def per_accelerator_hourly_usd(self) -> float | None:
        """The burn per GPU (or Neuron chip): "8 x H100 at $6.88 per GPU-hour"; None without accelerators or price."""
        if self.accelerators is None or self.hourly_usd is None:
            return None
        return self.accelerators.per_device(self.hourly_usd)

    def accelerator_text(self) -> str:
        """'8 x H100 at $6.88 per GPU-hour' while it burns, '1 x V100' when stopped or unpriced, '' without any."""
        if self.accelerators is None:
            return ""
        return self.accelerators.describe(self.hourly_usd or None)

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_id": self.resource_id,
            "resource_type": self.resource_type,
            "provider": self.provider,
            "region": self.region,
            "owner": self.owner,
            "description": self.description,
            "hourly_usd": _round(self.hourly_usd),
            "accumulated_usd": _round(self.accumulated_usd),
            "price_source": self.price_source,
            "since": format_instant(self.since),
            "flags": list(self.flags),
            **({"problem": self.problem} if self.problem else {}),
            **({"accelerators": self._accelerators_json()} if self.accelerators else {}),
        }

    def _accelerators_json(self) -> dict[str, Any]:
        assert self.accelerators is not None
        return {
            "count": self.accelerators.count,
            "model": self.accelerators.model,
            "kind": self.accelerators.kind,
            "per_accelerator_hourly_usd": _round(self.per_accelerator_hourly_usd),
            "text": self.accelerator_text(),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _owner(tag_values: Mapping[str, str]) -> str:
    return tag_values.get(tags.OWNER) or "(no owner)"


def price_keys(inventories: Iterable[RegionInventory]) -> tuple[set[PriceKey], set[SpotKey]]:
    """Every list price and spot price the fleet needs; spot instances also need on demand as a fallback."""
    keys: set[PriceKey] = set()
    spot: set[SpotKey] = set()
    for inventory in inventories:
        region = inventory.region
        for instance in inventory.instances:
            keys.add(PriceKey("instance", region, instance.instance_type))
            if instance.lifecycle == "spot" and instance.state in BILLED_INSTANCE_STATES:
                spot.add(SpotKey(region, instance.availability_zone, instance.instance_type))
        for volume in inventory.volumes:
            keys.update(_volume_keys(volume))
        if inventory.snapshots:
            keys.add(PriceKey("snapshot", region, "standard"))
    return keys, spot


def _volume_keys(volume: Volume) -> list[PriceKey]:
    keys = [PriceKey("storage", volume.region, volume.volume_type)]
    if volume.volume_type == "gp3":
        if (volume.iops or 0) > GP3_FREE_IOPS:
            keys.append(PriceKey("iops", volume.region, "gp3"))
        if (volume.throughput_mibps or 0) > GP3_FREE_THROUGHPUT_MIBPS:
            keys.append(PriceKey("throughput", volume.region, "gp3"))
    elif volume.volume_type in PROVISIONED_IOPS_TYPES and volume.iops:
        keys.append(PriceKey("iops", volume.region, volume.volume_type))
    return keys


def running_hours(
    instance: Instance, history: Sequence[Transition] | None, at: datetime
) -> tuple[float, tuple[Flag, ...]]:
    """Hours billed since creation: from recorded state changes, else since LaunchTime as a lower bound.

    LaunchTime is the last start, so without history earlier runs are invisible: a lower bound.
    """
    if not history:
        if instance.state not in BILLED_INSTANCE_STATES:
            return 0.0, ("lower-bound",)
        return max(0.0, (at - instance.launch_time).total_seconds() / 3600), ("lower-bound",)
    total = timedelta(0)
    started: datetime | None = None
    ordered = sorted(history, key=lambda t: t.at)
    if ordered[0].state in STOP_STATES and instance.launch_time < ordered[0].at:
        # The start was before recording began; LaunchTime is that start.
        started = instance.launch_time
    for transition in ordered:
        if transition.at > at:
            break
        if transition.state == "running" and started is None:
            started = transition.at
        elif transition.state in STOP_STATES and started is not None:
            total += transition.at - started
            started = None
    if started is not None:
        end = at
        if instance.state not in BILLED_INSTANCE_STATES and instance.stopped_since:
            # The stop event was missed; EC2's own stop time closes the interval.
            end = min(at, max(started, instance.stopped_since))
        total += end - started
    return max(0.0, total.total_seconds() / 3600), ()


def _join_sources(quotes: Iterable[Quote]) -> str:
    origins = sorted({q.price.origin for q in quotes if q.price is not None})
    return "+".join(origins) or "unpriced"


def instance_cost(
    instance: Instance,
    quotes: Mapping[PriceKey, Quote],
    spot_quotes: Mapping[SpotKey, Quote],
    history: Sequence[Transition] | None,
    at: datetime,
) -> ResourceCost:
    on_demand = quotes.get(PriceKey("instance", instance.region, instance.instance_type))
    quote = on_demand
    flags: list[str] = []
    if instance.lifecycle == "spot" and instance.state in BILLED_INSTANCE_STATES:
        quote = spot_quotes.get(SpotKey(instance.region, instance.availability_zone, instance.instance_type))
        if quote is not None and quote.upper_bound:
            flags += ["upper-bound", "spot-price-fallback"]
    hours, history_flags = running_hours(instance, history, at)
    flags += history_flags
    billed = instance.state in BILLED_INSTANCE_STATES
    description = f"{instance.instance_type} {instance.lifecycle} {instance.state}"
    accelerators = accelerators_for(instance.instance_type)
    if quote is None or quote.price is None:
        problem = quote.problem if quote else "no price looked up"
        # A stopped instance costs nothing per hour whatever its price; its past still needs one.
        return ResourceCost(
            instance.resource_id,
            "instance",
            instance.region,
            _owner(instance.tags),
            description,
            0.0 if not billed else None,
            0.0 if hours == 0 else None,
            "unpriced",
            instance.launch_time,
            tuple(flags),
            problem or f"no price for {instance.instance_type} in {instance.region}",
            accelerators,
        )
    hourly = quote.price.cost(1)
    return ResourceCost(
        instance.resource_id,
        "instance",
        instance.region,
        _owner(instance.tags),
        description,
        hourly if billed else 0.0,
        # Accumulated runs at today's rate: a spot price moves, the estimate says so by its source.
        hours * hourly,
        quote.price.origin,
        instance.launch_time,
        tuple(flags),
        accelerators=accelerators,
    )


def volume_hourly(volume: Volume, quotes: Mapping[PriceKey, Quote]) -> tuple[float | None, str, str]:
    """(USD per hour, price source, problem) for the size and the provisioned performance."""
    needed = [(key, quotes.get(key)) for key in _volume_keys(volume)]
    missing = [str(key) for key, quote in needed if quote is None or quote.price is None]
    if missing:
        problems = [q.problem for _, q in needed if q is not None and q.problem and q.price is None]
        return None, "unpriced", "; ".join(problems) or f"no price for {', '.join(missing)}"
    monthly = 0.0
    for key, quote in needed:
        assert quote is not None and quote.price is not None
        if key.kind == "storage":
            monthly += quote.price.cost(volume.size_gib)
        elif key.kind == "iops":
            included = GP3_FREE_IOPS if volume.volume_type == "gp3" else 0
            monthly += quote.price.cost(max(0, (volume.iops or 0) - included))
        elif key.kind == "throughput":
            monthly += quote.price.cost(max(0, (volume.throughput_mibps or 0) - GP3_FREE_THROUGHPUT_MIBPS))
    return monthly / HOURS_PER_MONTH, _join_sources(q for _, q in needed if q is not None), ""


def volume_cost(volume: Volume, quotes: Mapping[PriceKey, Quote], at: datetime) -> ResourceCost:
    hourly, source, problem = volume_hourly(volume, quotes)
    hours = max(0.0, (at - volume.create_time).total_seconds() / 3600)
    performance = ""
    if volume.iops and (volume.volume_type in PROVISIONED_IOPS_TYPES or volume.iops > GP3_FREE_IOPS):
        performance += f" {volume.iops} IOPS"
    if volume.throughput_mibps and volume.throughput_mibps > GP3_FREE_THROUGHPUT_MIBPS:
        performance += f" {volume.throughput_mibps} MiB/s"
    return ResourceCost(
        volume.resource_id,
        "volume",
        volume.region,
        _owner(volume.tags),
        f"{volume.volume_type} {volume.size_gib} GiB{performance} {volume.state}",
        hourly,
        None if hourly is None else hours * hourly,
        source,
        volume.create_time,
        (),
        problem,
    )


def snapshot_cost(snapshot: Snapshot, quotes: Mapping[PriceKey, Quote], at: datetime) -> ResourceCost:
    quote = quotes.get(PriceKey("snapshot", snapshot.region, "standard"))
    hours = max(0.0, (at - snapshot.start_time).total_seconds() / 3600)
    description = f"snapshot of {snapshot.volume_size_gib} GiB"
    if quote is None or quote.price is None:
        return ResourceCost(
            snapshot.resource_id,
            "snapshot",
            snapshot.region,
            _owner(snapshot.tags),
            description,
            None,
            None,
            "unpriced",
            snapshot.start_time,
            (),
            quote.problem if quote else "no price looked up",
        )
    # Snapshots are incremental: billed for changed blocks, at most the volume's size. An upper bound.
    hourly = quote.price.cost(snapshot.volume_size_gib) / HOURS_PER_MONTH
    return ResourceCost(
        snapshot.resource_id,
        "snapshot",
        snapshot.region,
        _owner(snapshot.tags),
        description,
        hourly,
        hours * hourly,
        quote.price.origin,
        snapshot.start_time,
        ("upper-bound",),
    )


def estimate(
    inventories: Iterable[RegionInventory],
    quotes: Mapping[PriceKey, Quote],
    spot_quotes: Mapping[SpotKey, Quote],
    history: Mapping[str, Sequence[Transition]],
    at: datetime,
) -> list[ResourceCost]:
    costs: list[ResourceCost] = []
    for inventory in inventories:
        costs.extend(instance_cost(i, quotes, spot_quotes, history.get(i.resource_id), at) for i in inventory.instances)
        costs.extend(volume_cost(v, quotes, at) for v in inventory.volumes if v.state not in ("deleting", "deleted"))
        costs.extend(snapshot_cost(s, quotes, at) for s in inventory.snapshots)
    return costs


# -------------------------------------------------------------------------------------------------- breaches

# "balance": a provider's own balance (Lyceum's credits) under its setting.
BreachKind = Literal["hourly", "daily", "resource", "unpriced", "balance"]


@dataclass(frozen=True)
class Breach:
    """A threshold crossed: by what, by how much, whose it is and the resources behind it."""

    # stable identity across runs: "total:hourly", "owner:bob:daily", "resource:vol-1", "resource:runpod:pod-1",
    # "unpriced", "balance:lyceum"
    key: str
    kind: BreachKind
    scope: str
    value: float  # USD, a count of resources for "unpriced", the provider's own unit for "balance"
    threshold: float
    offenders: tuple[ResourceCost, ...] = ()
    # Whose notice it is (an owner's own limit, a resource's owner); a total breach is everyone's.
    owner: str | None = None

    def headline(self) -> str:
        who = "" if self.scope == "total" else f" ({self.scope})"
        if self.kind == "unpriced":
            return f"{int(self.value)} resource(s) have no price{who}: their cost is unknown, not zero"
        if self.kind == "balance":
            return f"{self.scope} balance {self.value:,.2f} credits is under {self.threshold:,.2f}"
        what = {"hourly": "burn rate", "daily": "24-hour projection", "resource": "accumulated cost"}[self.kind]
        unit = "/hour" if self.kind == "hourly" else ""
        return f"{what}{who} ${self.value:,.2f}{unit} is over ${self.threshold:,.2f}{unit}"

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "scope": self.scope,
            "value": round(self.value, 4),
            "threshold": self.threshold,
            "message": self.headline(),
            "offenders": [o.resource_id for o in self.offenders],
        }


# Never compared nor hashed: eq=False spares the cold start making __eq__ and __hash__.
@dataclass(frozen=True, eq=False)
class Totals:
    """The money burning now across every resource, and how many resources could not be priced."""

    hourly_usd: float
    daily_usd: float
    unpriced: int


def totals(costs: Sequence[ResourceCost]) -> Totals:
    hourly = sum(c.hourly_usd for c in costs if c.hourly_usd is not None)
    return Totals(hourly, hourly * 24, sum(1 for c in costs if not c.priced))


def _top(costs: Iterable[ResourceCost], n: int, *, by: Literal["hourly", "accumulated"]) -> tuple[ResourceCost, ...]:
    def amount(c: ResourceCost) -> float:
        value = c.hourly_usd if by == "hourly" else c.accumulated_usd
        return value or 0.0

    return tuple(sorted((c for c in costs if amount(c) > 0), key=lambda c: (-amount(c), c.resource_id))[:n])


def find_breaches(costs: Sequence[ResourceCost], settings: CostSettings) -> list[Breach]:
    breaches: list[Breach] = []
    n = settings.top_offenders
    overall = totals(costs)
    if overall.hourly_usd > settings.hourly_threshold_usd:
        breaches.append(
            Breach(
                "total:hourly",
                "hourly",
                "total",
                overall.hourly_usd,
                settings.hourly_threshold_usd,
                _top(costs, n, by="hourly"),
            )
        )
    if overall.daily_usd > settings.daily_threshold_usd:
        breaches.append(
            Breach(
                "total:daily",
                "daily",
                "total",
                overall.daily_usd,
                settings.daily_threshold_usd,
                _top(costs, n, by="hourly"),
            )
        )
    by_owner: dict[str, list[ResourceCost]] = defaultdict(list)
    for cost in costs:
        by_owner[cost.owner].append(cost)
    for owner in sorted(by_owner):
        limits = settings.owner_limits(owner)
        if limits is None:
            continue
        owned = totals(by_owner[owner])
        for kind, value, limit in (
            ("hourly", owned.hourly_usd, limits.hourly_usd),
            ("daily", owned.daily_usd, limits.daily_usd),
        ):
            if limit is not None and value > limit:
                breaches.append(
                    Breach(
                        f"owner:{owner}:{kind}",
                        kind,  # type: ignore[arg-type]
                        f"owner {owner}",
                        value,
                        limit,
                        _top(by_owner[owner], n, by="hourly"),
                        owner=owner,
                    )
                )
    for cost in sorted(costs, key=lambda c: (c.provider, c.resource_id)):
        if cost.accumulated_usd is not None and cost.accumulated_usd > settings.resource_threshold_usd:
            # A provider's ids are its own: the key and the words name the provider, so no two collide.
            named = cost.resource_id if cost.provider == "aws" else f"{cost.provider}:{cost.resource_id}"
            breaches.append(
                Breach(
                    f"resource:{named}",
                    "resource",
                    cost.resource_id if cost.provider == "aws" else f"{cost.provider} {cost.resource_id}",
                    cost.accumulated_usd,
                    settings.resource_threshold_usd,
                    (cost,),
                    owner=cost.owner,
                )
            )
    unpriced = tuple(c for c in costs if not c.priced)
    if unpriced:
        breaches.append(Breach("unpriced", "unpriced", "total", float(len(unpriced)), 0.0, unpriced[:n]))
    return breaches


# ---------------------------------------------------------------------------------------------------- alerting


@dataclass(frozen=True)
class AlertState:
    """What was last said about a breach, kept between runs."""

    key: str
    value: float
    notified_at: datetime
    headline: str = ""


# Never compared nor hashed: eq=False spares the cold start making __eq__ and __hash__.
@dataclass(eq=False)
class AlertPlan:
    """Which breaches to tell now, which to hold back, and which have cleared."""

    notify: list[tuple[Breach, str]] = field(default_factory=list)  # (breach, why: new | grew | reminder)
    suppressed: list[Breach] = field(default_factory=list)
    cleared: list[AlertState] = field(default_factory=list)


def plan_alerts(
    breaches: Sequence[Breach],
    previous: Mapping[str, AlertState],
    at: datetime,
    *,
    cooldown: timedelta,
    growth: float,
) -> AlertPlan:
    """New breaches are told at once; a known one again after the cooldown, or sooner once it has grown."""
    plan = AlertPlan()
    current = {b.key for b in breaches}
    for breach in breaches:
        state = previous.get(breach.key)
        if state is None:
            plan.notify.append((breach, "new"))
        elif breach.value >= state.value * (1 + growth) and breach.value > state.value:
            plan.notify.append((breach, "grew"))
        elif at - state.notified_at >= cooldown:
            plan.notify.append((breach, "reminder"))
        else:
            plan.suppressed.append(breach)
    plan.cleared = [state for key, state in sorted(previous.items()) if key not in current]
    return plan


def offender_line(cost: ResourceCost) -> str:
    hourly = "unpriced" if cost.hourly_usd is None else f"${cost.hourly_usd:,.4f}/h"
    accumulated = "" if cost.accumulated_usd is None else f", ${cost.accumulated_usd:,.2f} since {cost.since:%Y-%m-%d}"
    flags = f" [{', '.join(cost.flags)}]" if cost.flags else ""
    problem = f" ({cost.problem})" if cost.problem and cost.hourly_usd is None else ""
    accelerators = f", {cost.accelerator_text()}" if cost.accelerators else ""
    where = cost.region if cost.provider == "aws" else " ".join(filter(None, (cost.provider, cost.region)))
    return (
        f"  {cost.resource_id} {cost.description}{accelerators} ({where}, owner {cost.owner}): "
        f"{hourly}{accumulated}; price {cost.price_source}{flags}{problem}"
    )


def breach_notice(breach: Breach, why: str, at: datetime) -> Notice:
    """`breach` with every tag value already escaped (cost.run.shown)."""
    # Cold start: notices load with a breach or its clearing, never on an ordinary check that finds none.
    from trainctl.core.notices import Notice, digest

    prefix = {"new": "", "grew": "grown: ", "reminder": "still: "}.get(why, "")
    lines = [("unpriced: " if breach.kind == "unpriced" else "") + offender_line(c).strip() for c in breach.offenders]
    steps = ["Stop or delete what is not needed: trainctl instances stop ID, trainctl ebs delete ID."]
    if breach.kind == "unpriced":
        steps = ["Refresh the price file (make prices), or give trainctl pricing:GetProducts, to price them."]
    elif breach.kind == "balance":
        steps = [f"Add credits in {breach.scope}'s console, or end what is not needed there."]
    return Notice(
        kind="cost",
        title=f"trainctl cost: {prefix}{breach.headline()}",
        summary=(
            f"Cost alert at {format_instant(at)} ({why}): {breach.headline()}. Figures are estimates from the live "
            "inventory and published prices; the bill comes later."
        ),
        lines=tuple(lines),
        next_steps=(*steps, "Reminders follow while it lasts (TRAINCTL_ALERT_COOLDOWN); trainctl cost shows it now."),
        owner=breach.owner,
        severity="critical" if why != "reminder" else "warning",
        thread=f"trainctl-cost-{digest(breach.key)}",
        resources=tuple(c.resource_id for c in breach.offenders),
        facts={"breach": breach.key, "value": f"{breach.value:.4f}", "threshold": f"{breach.threshold:.4f}"},
    )


def cleared_notice(state: AlertState, at: datetime) -> Notice:
    # Cold start: as breach_notice's.
    from trainctl.core.notices import Notice, digest

    return Notice(
        kind="cost",
        title=f"trainctl cost: cleared {state.key}",
        summary=f"Cost alert cleared at {format_instant(at)}: {state.key} is back under its threshold.",
        lines=(f"Last reported {format_instant(state.notified_at)}: {state.headline}",),
        severity="info",
        thread=f"trainctl-cost-{digest(state.key)}",
        facts={"breach": state.key},
    )
