"""cleanup_sweep: run by an EventBridge Scheduler schedule; one domain call, a JSON summary back."""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import handler_tracer, logger, metrics
from trainctl.core.clock import Clock, system_clock
from trainctl.core.events import InvalidEvent, parse_sweep_trigger
from trainctl.core.settings import SweepSettings
from trainctl.sweep.rules import Decision
from trainctl.sweep.run import SweepResult, effects_for, run_sweep

if TYPE_CHECKING:
    from trainctl.cost.prices.model import PriceKey, Quote
    from trainctl.cost.prices.price_file import PriceFile

tracer = handler_tracer()
clock: Clock = system_clock  # integration tests step this

# Dollars avoided, an estimate (the dashboard says so on its widget): the hourly list price of what a sweep
# stopped, terminated or deleted, as the sweep's own EC2 reads described it before it acted (the shipped price
# file; spot at its on-demand price, an upper bound; unpriced counts nothing), times the hours it would
# otherwise have kept costing before someone noticed.
DOLLARS_AVOIDED_METRIC = "DollarsAvoided"
HOURS_UNTIL_NOTICED = 168
AVOIDING_ACTIONS = ("stop", "terminate", "delete")
# Protections that can keep a resource from the guardrail for good: each such decision is logged every sweep.
EVADING = ("unreadable", "min-age")
# The few fields pricing reads, kept per resource from the sweep's own Describe* pages (no call of their own).
PRICED_FIELDS = {
    "DescribeInstances": ("InstanceId", "State", "InstanceType", "LaunchTime", "Placement", "InstanceLifecycle"),
    "DescribeVolumes": ("VolumeId", "State", "Size", "VolumeType", "CreateTime", "Iops", "Throughput"),
    "DescribeSnapshots": ("SnapshotId", "State", "StartTime", "VolumeSize"),
}


@cache
def deployed_settings() -> SweepSettings:
    """Loaded once per cold start; a bad setting fails every invocation loudly, naming the variable."""
    return SweepSettings.from_env(os.environ)


@cache
def client_factory() -> ClientFactory:
    return ClientFactory()


class Described:
    """What the sweep's own EC2 reads said of each resource, first read first (before anything was done)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self._hooked: weakref.WeakSet[ClientFactory] = weakref.WeakSet()

    def watch(self, factory: ClientFactory) -> None:
        """Forget the last sweep's reads; hook the factory's EC2 clients once."""
        self.items.clear()
        if factory not in self._hooked:
            factory.register("after-call.ec2", self.keep)
            self._hooked.add(factory)

    def keep(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        fields = PRICED_FIELDS.get(model.name)
        if fields is None:
            return
        if model.name == "DescribeInstances":
            found = [i for r in parsed.get("Reservations", []) for i in r.get("Instances", [])]
        else:
            found = parsed.get("Volumes" if model.name == "DescribeVolumes" else "Snapshots", [])
        for item in found:
            self.items.setdefault(str(item[fields[0]]), {k: item[k] for k in fields if k in item})


described = Described()


@cache
def price_file() -> PriceFile:
    # Cold start: the price file and the cost rules (about 10 ms) only once a sweep has acted.
    from trainctl.cost.prices.price_file import load_price_file

    return load_price_file()


def file_quote(key: PriceKey) -> Quote:
    # Cold start: as price_file.
    from trainctl.cost.prices.model import PriceNotFound, Quote

    try:
        return Quote(price_file().price(key), "file")
    except PriceNotFound as exc:
        return Quote(None, "unpriced", str(exc))


def dollars_avoided(decisions: Sequence[Decision], at: datetime) -> float:
    """HOURS_UNTIL_NOTICED hours of what the acted-on resources cost per hour when the sweep read them."""
    acted = [
        (d, described.items[d.resource_id])
        for d in decisions
        if d.outcome == "done" and d.action in AVOIDING_ACTIONS and d.resource_id in described.items
    ]
    if not acted:
        return 0.0
    # Cold start: the cost rules and the price file (about 10 ms) only once a sweep has acted.
    from trainctl.aws.ec2 import instance_from_api, snapshot_from_api, volume_from_api
    from trainctl.core.resources import RegionInventory
    from trainctl.cost.prices.model import PriceKey
    from trainctl.cost.rules import estimate, price_keys

    parts: dict[str, tuple[list[Any], list[Any], list[Any]]] = {}
    for decision, raw in acted:
        instances, volumes, snapshots = parts.setdefault(decision.region, ([], [], []))
        if decision.resource_type == "instance":
            instances.append(instance_from_api(decision.region, raw))
        elif decision.resource_type == "volume":
            volumes.append(volume_from_api(decision.region, raw))
        else:
            snapshots.append(snapshot_from_api(decision.region, raw))
    inventories = [RegionInventory(r, tuple(i), tuple(v), tuple(s)) for r, (i, v, s) in parts.items()]
    keys, spot_keys = price_keys(inventories)
    quotes = {key: file_quote(key) for key in keys}
    on_demand = {key: quotes[PriceKey("instance", key.region, key.instance_type)] for key in spot_keys}
    hourly = sum(cost.hourly_usd or 0.0 for cost in estimate(inventories, quotes, on_demand, {}, at))
    return round(hourly * HOURS_UNTIL_NOTICED, 2)


def emit_metrics(result: SweepResult, summary: dict[str, Any]) -> None:
    """One value per metric and sweep: EMF takes at most 100 values per metric, a sweep can decide thousands."""
    metrics.add_metric(name="Scanned", unit=MetricUnit.Count, value=summary["scanned"])
    metrics.add_metric(name="Candidates", unit=MetricUnit.Count, value=summary["candidates"])
    for action, count in summary["actions"].items():
        metrics.add_metric(name=f"Action_{action}", unit=MetricUnit.Count, value=count)
    for protection, count in summary["protections"].items():
        metrics.add_metric(name=f"Protection_{protection}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=summary["outcomes"].get("failed", 0))
    avoided = dollars_avoided(result.decisions, result.at)
    metrics.add_metric(name=DOLLARS_AVOIDED_METRIC, unit=MetricUnit.NoUnit, value=avoided)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse_sweep_trigger(event)
    except InvalidEvent:
        logger.exception("refused event")
        raise
    settings = deployed_settings()
    if request.dry_run is False and settings.dry_run:
        raise InvalidEvent("this deployment is dry-run: an event cannot turn enforcement on")
    regions = request.regions or settings.regions
    unknown = set(regions) - set(settings.regions)
    if unknown:
        raise InvalidEvent(f"regions {sorted(unknown)} are not in TRAINCTL_REGIONS {list(settings.regions)}")
    effective = settings.model_copy(update={"dry_run": settings.dry_run or bool(request.dry_run), "regions": regions})
    factory = client_factory()
    described.watch(factory)
    effects = effects_for(factory, effective)
    result = run_sweep(
        factory,
        effective,
        clock,
        ledger=effects.ledger,
        notifier=effects.notifier,
        lease=effects.lease,
        remaining_ms=context.get_remaining_time_in_millis,
    )
    summary = result.summary()
    emit_metrics(result, summary)
    logger.info("sweep finished", extra={"sweep_id": result.sweep_id, "summary": summary})
    for decision in result.decisions:
        # Changes, failures, and what evades the guardrail (the dashboard lists what stays so for a week).
        if decision.action != "keep" or decision.outcome == "failed" or set(EVADING) & set(decision.protections):
            logger.info("decision", extra={"decision": decision.to_json()})
    return result.to_json()
