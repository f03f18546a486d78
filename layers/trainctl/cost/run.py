"""The cost check as one call: read every region, price it through the chain, estimate, alert on breaches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from trainctl.aws.clients import ClientFactory
from trainctl.aws.ec2 import Ec2Inventory
from trainctl.aws.notifications import Notifier, SnsNotifier
from trainctl.aws.observability import logger
from trainctl.core.clock import Clock, format_instant
from trainctl.core.cost_settings import CostSettings
from trainctl.core.errors import TrainctlError
from trainctl.core.resources import RegionInventory
from trainctl.core.text import one_line
from trainctl.cost.prices.chain import PriceBook
from trainctl.cost.prices.price_file import PriceFile, load_price_file
from trainctl.cost.prices.price_list import PriceListApi, RateLimiter
from trainctl.cost.prices.spot_history import SpotPriceHistory
from trainctl.cost.prices.table import DynamoDbPriceTable
from trainctl.cost.rules import (
    AlertState,
    Breach,
    ResourceCost,
    Transition,
    breach_notice,
    cleared_notice,
    estimate,
    find_breaches,
    plan_alerts,
    price_keys,
    totals,
)
from trainctl.cost.store import AlertStore, DynamoDbCostStore, RuntimeHistory


@dataclass(frozen=True)
class ProviderCosts:
    """One GPU provider beside AWS, priced (trainctl.providers.cost): its resources, its own balance breaches, or
    the one-line error that kept it from being read (then it has no resources and the rest is still priced)."""

    provider: str
    resources: tuple[ResourceCost, ...] = ()
    breaches: tuple[Breach, ...] = ()
    error: str | None = None
    notes: tuple[str, ...] = ()
    # What exists there, kind -> the provider's own state -> how many (`resources summary`).
    counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "error": self.error, "resources": len(self.resources)}


@dataclass(frozen=True)
class CostResult:
    """One cost check: every resource priced, the breaches, the look-ups made and who was told."""

    at: datetime
    regions: tuple[str, ...]
    resources: tuple[ResourceCost, ...]
    breaches: tuple[Breach, ...]
    lookups: dict[str, int]
    price_file_as_of: str
    notified: tuple[str, ...] = ()
    suppressed: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    providers: tuple[ProviderCosts, ...] = ()

    @property
    def provider_errors(self) -> tuple[str, ...]:
        return tuple(p.error for p in self.providers if p.error)

    def to_json(self) -> dict[str, Any]:
        overall = totals(self.resources)
        return {
            "at": format_instant(self.at),
            "regions": list(self.regions),
            "hourly_usd": round(overall.hourly_usd, 4),
            "daily_usd": round(overall.daily_usd, 4),
            "complete": overall.unpriced == 0,
            "unpriced": [r.resource_id for r in self.resources if not r.priced],
            "breaches": [b.to_json() for b in self.breaches],
            "alerts": {
                "notified": list(self.notified),
                "suppressed": list(self.suppressed),
                "cleared": list(self.cleared),
            },
            "pricing": {"lookups": dict(sorted(self.lookups.items())), "price_file_as_of": self.price_file_as_of},
            "notes": list(self.notes),
            **({"providers": [p.to_json() for p in self.providers]} if self.providers else {}),
            "resources": [r.to_json() for r in self.resources],
        }


def price_book_for(
    factory: ClientFactory, settings: CostSettings, clock: Clock, *, use_table: bool, use_api: bool = True
) -> PriceBook:
    """The whole chain; the price file is read here so that an unreadable one fails at start."""
    price_file: PriceFile = load_price_file(settings.price_file)
    api = None
    if use_api:
        api = PriceListApi(
            factory.client("pricing", settings.pricing_region),
            limiter=RateLimiter(settings.pricing_requests_per_second),
            clock=clock,
        )
    return PriceBook(
        clock=clock,
        price_file=price_file,
        table=DynamoDbPriceTable(factory.dynamodb(), settings.price_table, clock) if use_table else None,
        api=api,
        spot=SpotPriceHistory(factory.ec2),
        list_price_ttl=settings.list_price_ttl,
        spot_price_ttl=settings.spot_price_ttl,
    )


def has_price_list_api(environ: Mapping[str, str]) -> bool:
    """A local emulator has no Price List API (moto has none) unless pricing is pointed elsewhere."""
    return not environ.get("AWS_ENDPOINT_URL") or bool(environ.get("AWS_ENDPOINT_URL_PRICING"))


def read_inventory(factory: ClientFactory, region: str) -> RegionInventory:
    reader = Ec2Inventory(factory.ec2(region), region)
    return RegionInventory(
        region=region,
        instances=tuple(reader.instances()),
        volumes=tuple(reader.volumes()),
        snapshots=tuple(reader.snapshots()),
    )


# Never compared nor hashed: eq=False spares the cold start making __eq__ and __hash__.
@dataclass(frozen=True, eq=False)
class CostEffects:
    """Where a cost check reads runtimes and alert states, and how it tells people."""

    history: RuntimeHistory | None = None
    alerts: AlertStore | None = None
    notifier: Notifier | None = None


def effects_for(factory: ClientFactory, settings: CostSettings) -> CostEffects:
    store = DynamoDbCostStore(factory.dynamodb(), settings.ledger_table)
    notifier = SnsNotifier(factory.sns(), settings.topic_arn) if settings.topic_arn else None
    return CostEffects(history=store, alerts=store, notifier=notifier)


def price_inventories(
    inventories: list[RegionInventory], book: PriceBook, history: Mapping[str, Sequence[Transition]], at: datetime
) -> list[ResourceCost]:
    """Every resource priced through the chain: list prices first, then spot (which falls back on them)."""
    keys, spot_keys = price_keys(inventories)
    quotes = book.quotes(keys)
    return estimate(inventories, quotes, book.spot_quotes(spot_keys, quotes), history, at)


def run_cost_check(
    factory: ClientFactory,
    settings: CostSettings,
    clock: Clock,
    book: PriceBook,
    effects: CostEffects | None = None,
    *,
    providers: Sequence[ProviderCosts] = (),
    aws: bool = True,
) -> CostResult:
    """AWS's regions (unless `aws` is False) and the providers already priced, under the same thresholds."""
    effects = effects or CostEffects()
    at = clock()
    inventories: list[RegionInventory] = []
    if aws:
        with ThreadPoolExecutor(max_workers=min(8, len(settings.regions))) as pool:
            inventories = list(pool.map(lambda region: read_inventory(factory, region), settings.regions))
    notes: list[str] = []
    history = {}
    if aws and effects.history is not None:
        try:
            history = effects.history.read(settings.regions)
        except TrainctlError as exc:
            # Without history the accumulated figures are lower bounds and say so; the burn rate stands.
            notes.append(f"instance state history unavailable: {exc}")
    elif aws:
        notes.append("no instance state history here: accumulated instance cost is a lower bound since LaunchTime")
    costs = price_inventories(inventories, book, history, at) if aws else []
    costs += [cost for provider in providers for cost in provider.resources]
    breaches = find_breaches(costs, settings) + [b for provider in providers for b in provider.breaches]
    notes += [note for provider in providers for note in provider.notes]
    result = CostResult(
        at=at,
        regions=settings.regions if aws else (),
        resources=tuple(sorted(costs, key=lambda c: (-(c.hourly_usd or 0.0), c.resource_id))),
        breaches=tuple(breaches),
        lookups=dict(book.lookups),
        price_file_as_of=book.price_file.as_of,
        notes=tuple(notes),
        providers=tuple(providers),
    )
    book.lookups.clear()
    if effects.alerts is None or effects.notifier is None:
        return result
    return _alert(result, effects.alerts, effects.notifier, settings)


def shown(breach: Breach) -> Breach:
    """The breach as a message shows it: owners come from a tag anyone may write, so each is one escaped line.

    The breach itself (its key, what the alert state remembers) is left as it is.
    """
    offenders = tuple(replace(c, owner=one_line(c.owner), problem=one_line(c.problem)) for c in breach.offenders)
    return replace(breach, scope=one_line(breach.scope), key=one_line(breach.key), offenders=offenders)


def _alert(result: CostResult, alerts: AlertStore, notifier: Notifier, settings: CostSettings) -> CostResult:
    plan = plan_alerts(
        result.breaches, alerts.load(), result.at, cooldown=settings.alert_cooldown, growth=settings.alert_growth
    )
    notified = []
    for breach, why in plan.notify:
        notifier.publish(breach_notice(shown(breach), why, result.at))
        # Saved after the publish: a failed publish is retried next run rather than silently swallowed.
        alerts.save(AlertState(breach.key, breach.value, result.at, breach.headline()))
        notified.append(breach.key)
        logger.info("cost breach notified", extra={"breach": breach.to_json(), "why": why})
    for state in plan.cleared:
        notifier.publish(
            cleared_notice(replace(state, key=one_line(state.key), headline=one_line(state.headline)), result.at)
        )
        alerts.clear(state.key)
    return replace(
        result,
        notified=tuple(notified),
        suppressed=tuple(b.key for b in plan.suppressed),
        cleared=tuple(s.key for s in plan.cleared),
    )
