"""The cleanup sweep as one call: read every region, observe, decide, act (unless dry-run), record, notify."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from trainctl.aws.clients import ClientFactory
from trainctl.aws.ec2 import Ec2Inventory
from trainctl.aws.lease import DynamoDbLease, Lease
from trainctl.aws.notifications import Notifier, SnsNotifier
from trainctl.aws.training_check import SsmTrainingCheck
from trainctl.aws.utilisation import read_utilisation
from trainctl.core.clock import Clock, format_instant
from trainctl.core.observations import TrainingCheck
from trainctl.core.protections import in_scope
from trainctl.core.resources import RegionInventory
from trainctl.core.settings import SweepSettings
from trainctl.sweep.act import RemainingTime, SweepExecutor
from trainctl.sweep.notice import changed, sweep_message
from trainctl.sweep.record import DynamoDbLedger, Ledger
from trainctl.sweep.rules import Decision, Observations, SweepPlan, instances_to_check, plan_sweep

LEASE_DURATION = timedelta(minutes=16)
DRY_RUN_TRAINING_NOTE = "not checked: a dry-run sends no SSM command, and unknown protects"


@dataclass(frozen=True)
class SweepResult:
    sweep_id: str
    dry_run: bool
    at: datetime
    regions: tuple[str, ...]
    plan: SweepPlan
    decisions: tuple[Decision, ...]
    recorded: bool
    notified: bool
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, object]:
        return replace(self.plan, decisions=self.decisions).summary()

    def to_json(self) -> dict[str, object]:
        return {
            "sweep_id": self.sweep_id,
            "dry_run": self.dry_run,
            "at": format_instant(self.at),
            "regions": list(self.regions),
            "summary": self.summary(),
            "recorded": self.recorded,
            "notified": self.notified,
            "notes": list(self.notes),
            "warnings": list(self.plan.warnings),
            "decisions": [d.to_json() for d in self.decisions],
        }


@dataclass(frozen=True)
class SweepEffects:
    """Where an enforced sweep records, tells, and takes its lease; a dry-run has none of them."""

    ledger: Ledger | None = None
    notifier: Notifier | None = None
    lease: Lease | None = None


def effects_for(factory: ClientFactory, settings: SweepSettings) -> SweepEffects:
    if settings.dry_run:
        return SweepEffects()
    return SweepEffects(
        ledger=DynamoDbLedger(factory.dynamodb(), settings.ledger_table),
        notifier=SnsNotifier(factory.sns(), settings.topic_arn) if settings.topic_arn else None,
        lease=DynamoDbLease(factory.dynamodb(), settings.ledger_table),
    )


def read_inventories(factory: ClientFactory, regions: tuple[str, ...]) -> list[RegionInventory]:
    with ThreadPoolExecutor(max_workers=max(1, len(regions))) as pool:
        return list(pool.map(lambda region: Ec2Inventory(factory.ec2(region), region).read(), regions))


def observe(
    factory: ClientFactory,
    inventories: list[RegionInventory],
    settings: SweepSettings,
    now: datetime,
) -> Observations:
    utilisation = {}
    for inventory in inventories:
        watched = [
            i.resource_id
            for i in inventory.instances
            if i.state == "running" and in_scope(i, settings.scope_tag) and now - i.launch_time >= settings.idle_window
        ]
        if watched:
            utilisation.update(
                read_utilisation(factory.cloudwatch(inventory.region), watched, settings.idle_window, now)
            )
    observations = Observations(utilisation=utilisation)
    if settings.dry_run:
        return replace(observations, training_unchecked_reason=DRY_RUN_TRAINING_NOTE)
    training: dict[str, TrainingCheck] = {}
    by_region: dict[str, list[str]] = {}
    for instance in instances_to_check(inventories, observations, settings, now):
        by_region.setdefault(instance.region, []).append(instance.resource_id)
    for region, instance_ids in by_region.items():
        checker = SsmTrainingCheck(
            factory.ssm(region),
            document=settings.training_document,
            pid_file=settings.training_pid_file,
            process_patterns=settings.training_process_patterns,
            timeout=settings.training_check_timeout,
        )
        training.update(checker.check(instance_ids))
    return replace(observations, training=training)


def run_sweep(
    factory: ClientFactory,
    settings: SweepSettings,
    clock: Clock,
    *,
    ledger: Ledger | None,
    notifier: Notifier | None,
    remaining_ms: RemainingTime = None,
    lease: Lease | None = None,
) -> SweepResult:
    """Dry-run stops before the first write: no tag, no ledger item, no message, no SSM command.

    An enforced sweep with a lease acts only while it holds it; a sweep that finds it taken does nothing.
    """
    now = clock()
    if settings.dry_run or lease is None:
        return _sweep(factory, settings, now, ledger=ledger, notifier=notifier, remaining_ms=remaining_ms)
    # Held for the Lambda's longest run; a holder that dies frees it when it runs out.
    if not lease.acquire(now, LEASE_DURATION):
        plan = SweepPlan(at=now, decisions=(), scanned=0, in_scope=0)
        note = "another sweep holds the lease: this one did nothing"
        return SweepResult(uuid.uuid4().hex[:12], False, now, settings.regions, plan, (), False, False, (note,))
    try:
        return _sweep(factory, settings, now, ledger=ledger, notifier=notifier, remaining_ms=remaining_ms)
    finally:
        lease.release()


def _sweep(
    factory: ClientFactory,
    settings: SweepSettings,
    now: datetime,
    *,
    ledger: Ledger | None,
    notifier: Notifier | None,
    remaining_ms: RemainingTime,
) -> SweepResult:
    sweep_id = uuid.uuid4().hex[:12]
    inventories = read_inventories(factory, settings.regions)
    observations = observe(factory, inventories, settings, now)
    plan = plan_sweep(inventories, observations, settings, now)
    notes: list[str] = []
    if settings.dry_run:
        decisions = tuple(replace(d, outcome="dry-run") for d in plan.decisions)
        notes.append("dry-run: nothing was changed and nothing was recorded")
        return SweepResult(sweep_id, True, now, settings.regions, plan, decisions, False, False, tuple(notes))

    executor = SweepExecutor(
        factory,
        concurrency=settings.action_concurrency,
        remaining_ms=remaining_ms,
        deadline_margin_ms=int(settings.deadline_margin.total_seconds() * 1000),
    )
    decisions = tuple(executor.execute(plan.decisions))
    result = SweepResult(sweep_id, False, now, settings.regions, plan, decisions, False, False)
    recorded = notified = False
    if ledger is not None:
        ledger.record(sweep_id, now, result.summary(), decisions)
        recorded = True
    else:
        notes.append("no ledger: decisions were not recorded")
    if notifier is not None and changed(decisions):
        subject, message = sweep_message(plan, decisions, dry_run=False)
        notifier.publish(subject, message)
        notified = True
    if any(d.outcome == "deferred" for d in decisions):
        notes.append("stopped before the deadline; the next sweep resumes with what is left")
    return replace(result, recorded=recorded, notified=notified, notes=tuple(notes))
