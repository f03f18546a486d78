"""The cleanup sweep as one call: read every region, observe, decide, act (unless dry-run), record, notify."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple

from trainctl.aws.clients import ClientFactory
from trainctl.aws.ec2 import Ec2Inventory, read_guards
from trainctl.aws.lease import DynamoDbLease, Lease
from trainctl.aws.notifications import Notifier, SnsNotifier
from trainctl.aws.training_check import SsmTrainingCheck
from trainctl.aws.utilisation import read_utilisation
from trainctl.core.clock import Clock, format_instant
from trainctl.core.errors import TrainctlError
from trainctl.core.marks import distrust
from trainctl.core.notices import Notice
from trainctl.core.observations import TrainingCheck
from trainctl.core.protections import Protection, in_scope
from trainctl.core.resources import Guards, RegionInventory, Resource
from trainctl.core.sweep_settings import SweepSettings
from trainctl.core.text import one_line
from trainctl.cost.decided import hourly_prices
from trainctl.sweep.act import RemainingTime, SweepExecutor, deferred, interleaved
from trainctl.sweep.notice import changed, owner_notices
from trainctl.sweep.record import DynamoDbLedger, Ledger
from trainctl.sweep.rules import (
    Decision,
    Observations,
    SweepPlan,
    apply_guards,
    confirm_marks,
    confirm_pending_marks,
    instances_to_check,
    plan_sweep,
)

LEASE_DURATION = timedelta(minutes=16)
# A warning about an unreadable value that could not be sent: the next sweep warns again.
UNWARNED = "unwarned"
# Volumes are vouched for and deleted this many at a time: small enough that deletes start within seconds.
VOUCH_BATCH = 100
NOTICE_SENDERS = 8
DRY_RUN_TRAINING_NOTE = "not checked: a dry-run sends no SSM command, and unknown protects"


@dataclass(frozen=True)
class SweepResult:
    """A sweep's outcome: its plan, what was done, and whether it was recorded and told."""

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
        return self.plan._replace(decisions=self.decisions).summary()

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


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class SweepEffects(NamedTuple):
    """Where an enforced sweep records, tells, and takes its lease; a dry-run has none of them."""

    ledger: Ledger | None = None
    notifier: Notifier | None = None
    lease: Lease | None = None


def effects_for(factory: ClientFactory, settings: SweepSettings) -> SweepEffects:
    if settings.dry_run:
        # A dry-run writes nothing, but reads the ledger to show which marks trainctl can vouch for.
        return SweepEffects(ledger=DynamoDbLedger(factory.dynamodb(), settings.ledger_table))
    return SweepEffects(
        ledger=DynamoDbLedger(factory.dynamodb(), settings.ledger_table),
        notifier=SnsNotifier(factory.sns(), settings.topic_arn) if settings.topic_arn else None,
        lease=DynamoDbLease(factory.dynamodb(), settings.ledger_table),
    )


def read_inventories(factory: ClientFactory, regions: tuple[str, ...]) -> list[RegionInventory]:
    with ThreadPoolExecutor(max_workers=max(1, len(regions))) as pool:
        return list(
            pool.map(
                lambda region: Ec2Inventory(factory.ec2(region), region, factory.client("autoscaling", region)).read(),
                regions,
            )
        )


def observe(
    factory: ClientFactory,
    inventories: list[RegionInventory],
    settings: SweepSettings,
    now: datetime,
    remaining_ms: RemainingTime = None,
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
            remaining_ms=remaining_ms,
        )
        # A dry-run sends no command, but which instances SSM does not manage is a read it may make.
        training.update(checker.unmanaged(instance_ids) if settings.dry_run else checker.check(instance_ids))
    if settings.dry_run:
        return observations._replace(training=training, training_unchecked_reason=DRY_RUN_TRAINING_NOTE)
    return observations._replace(training=training)


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
        return _sweep(factory, settings, clock, ledger=ledger, notifier=notifier, remaining_ms=remaining_ms)
    # Held for the Lambda's longest run; a holder that dies frees it when it runs out.
    if not lease.acquire(now, LEASE_DURATION):
        plan = SweepPlan(at=now, decisions=(), scanned=0, in_scope=0)
        note = "another sweep holds the lease: this one did nothing"
        return SweepResult(uuid.uuid4().hex[:12], False, now, settings.regions, plan, (), False, False, (note,))
    try:
        return _sweep(
            factory, settings, clock, ledger=ledger, notifier=notifier, remaining_ms=remaining_ms, lease=lease
        )
    finally:
        lease.release()


def vouch_for_marks(
    ledger: Ledger | None,
    decisions: Sequence[Decision],
    resources: Mapping[str, Resource],
    *,
    now: datetime,
    idle_window: timedelta,
) -> Vouched:
    """Why trainctl cannot vouch for the mark behind each destructive decision (absent: it can), and when the
    ledger says each mark was written."""
    destructive = [d for d in decisions if d.destructive and d.cleanup_after is not None]
    if not destructive:
        return Vouched()
    if ledger is None:
        return Vouched({d.resource_id: "there is no ledger to confirm its mark" for d in destructive})
    try:
        by_resource = ledger.histories([d.resource_id for d in destructive])
        histories = {d: by_resource[d.resource_id] for d in destructive}
        marked_at = [e.at for h in histories.values() for e in h if e.action == "mark" and e.outcome == "done"]
        sweeps = ledger.sweeps_since(min(marked_at)) if marked_at else []
    except TrainctlError as exc:
        return Vouched({d.resource_id: f"the ledger could not be read ({exc})" for d in destructive})
    distrusted: dict[str, str] = {}
    written: dict[str, datetime] = {}
    told: dict[str, str] = {}
    for decision, history in histories.items():
        newest_mark = next((e for e in history if e.action == "mark" and e.outcome == "done"), None)
        if newest_mark is not None:
            written[decision.resource_id] = newest_mark.at
            if newest_mark.owner:
                told[decision.resource_id] = newest_mark.owner
        assert decision.cleanup_after is not None
        # CloudTrail hears a volume attached or an instance started; nothing hears a running instance used, so an
        # idle one must have been seen idle at least once per idle window since its mark.
        gap = idle_window if set(decision.reasons) <= {"idle", "ttl-expiring"} else None
        why = distrust(
            decision.cleanup_after, decision.action, history, sweeps, now=now, max_gap=gap, owner=decision.owner
        )
        if why is not None:
            distrusted[decision.resource_id] = why
    return Vouched(distrusted, written, told)


# A NamedTuple for the cold start, as SweepEffects.
class Vouched(NamedTuple):
    """What the ledger says of the marks behind destructive decisions."""

    distrusted: Mapping[str, str] = MappingProxyType({})  # resource id -> why its mark is not trainctl's
    marked_at: Mapping[str, datetime] = MappingProxyType({})  # resource id -> when trainctl wrote its mark
    told: Mapping[str, str] = MappingProxyType({})  # resource id -> the owner its mark was announced to


def guards_of(factory: ClientFactory, decisions: Sequence[Decision]) -> Guards:
    """EC2's own protections of what is about to be acted on: one read per resource, only for these few."""
    by_region: dict[str, tuple[list[str], list[str]]] = {}
    for decision in decisions:
        if decision.destructive:
            instances, snapshots = by_region.setdefault(decision.region, ([], []))
            if decision.resource_type == "instance":
                instances.append(decision.resource_id)
            elif decision.resource_type == "snapshot":
                snapshots.append(decision.resource_id)
    # A client per API and region: EC2 throttles each apart, and the guards are read while volumes are deleted.
    reads = [
        *((region, "instances", ids, ()) for region, (ids, _) in by_region.items() if ids),
        *((region, "snapshots", (), ids) for region, (_, ids) in by_region.items() if ids),
    ]
    if not reads:
        return Guards()
    with ThreadPoolExecutor(max_workers=len(reads)) as pool:
        read = list(pool.map(lambda r: read_guards(factory.ec2(r[0], lane=f"guard-{r[1]}"), r[2], r[3]), reads))
    return Guards(
        termination_protected=frozenset().union(*(g.termination_protected for g in read)),
        stop_protected=frozenset().union(*(g.stop_protected for g in read)),
        shared_snapshots=frozenset().union(*(g.shared_snapshots for g in read)),
        unreadable={rid: why for g in read for rid, why in g.unreadable.items()},
    )


def priced(plan: SweepPlan, resources: Mapping[str, Resource], now: datetime) -> SweepPlan:
    """Each destructive decision carries its resource's hourly price as decided: dollars avoided reads it there."""
    acting = [resources[d.resource_id] for d in plan.decisions if d.destructive and d.resource_id in resources]
    if not acting:
        return plan
    prices = hourly_prices(acting, now)
    return plan._replace(
        decisions=tuple(
            replace(d, hourly_usd=prices[d.resource_id].usd, price_source=prices[d.resource_id].source)
            if d.destructive and d.resource_id in prices
            else d
            for d in plan.decisions
        ),
    )


def _sweep(
    factory: ClientFactory,
    settings: SweepSettings,
    clock: Clock,
    *,
    ledger: Ledger | None,
    notifier: Notifier | None,
    remaining_ms: RemainingTime,
    lease: Lease | None = None,
) -> SweepResult:
    now = clock()
    sweep_id = uuid.uuid4().hex[:12]
    inventories = read_inventories(factory, settings.regions)
    observations = observe(factory, inventories, settings, now, remaining_ms)
    plan = plan_sweep(inventories, observations, settings, now)
    resources = {r.resource_id: r for inventory in inventories for r in inventory.resources()}
    plan = priced(plan, resources, now)
    notes: list[str] = []
    plan, pending_note = _pending_marks_confirmed(ledger, plan, resources, observations, settings, now)
    if pending_note:
        notes.append(pending_note)
    crash: Exception | None = None

    def confirmed(decisions: Sequence[Decision]) -> list[Decision]:
        # Confirming marks only ever turns a destructive decision into a fresh mark: the planned ones cover what acts.
        vouched = vouch_for_marks(ledger, decisions, resources, now=now, idle_window=settings.idle_window)
        return [
            _told_before(replace(d, marked_at=vouched.marked_at.get(d.resource_id)) if d.destructive else d, vouched)
            for d in confirm_marks(decisions, vouched.distrusted, resources, settings, now)
        ]

    # EC2's guards are read while the ledger's histories are: both are one call per resource.
    with ThreadPoolExecutor(max_workers=2) as background:
        guards = background.submit(guards_of, factory, plan.decisions)
        if settings.dry_run:
            decisions = confirmed(plan.decisions)
            previews = tuple(replace(d, outcome="dry-run") for d in apply_guards(decisions, guards.result()))
            notes.append("dry-run: nothing was changed and nothing was recorded")
            return SweepResult(sweep_id, True, now, settings.regions, plan, previews, False, False, tuple(notes))

        executor = SweepExecutor(
            factory,
            concurrency=settings.action_concurrency,
            remaining_ms=remaining_ms,
            deadline_margin_ms=int(settings.deadline_margin.total_seconds() * 1000),
            grace_period=settings.grace_period,
            clock=clock,
        )
        if lease is not None and not lease.renew(clock(), LEASE_DURATION):
            # The lease ran out while this sweep read and decided: another may be acting now.
            why = "the sweep's lease ran out before it could act"
            withheld = [_withheld(d, why) for d in confirmed(plan.decisions)]
            acted_by_id = {d.resource_id: d for d in executor.execute(withheld)}
        else:
            # What EC2 guards (instances, snapshots) waits for its guards. Volumes are vouched for, recorded and
            # deleted a batch at a time: the first deletes start within seconds and drain their own throttling
            # bucket while later histories and the guards are still being read.
            unguarded = [d for d in plan.decisions if not _guarded(d)]
            volumes_vouched: Future[Any] = Future()

            def unguarded_batches() -> Iterator[list[Decision]]:
                # Regions in turn: a batch holding one region's deletes only would leave the other's bucket idle.
                destructive = interleaved([d for d in unguarded if d.destructive])
                for start in range(0, len(destructive), VOUCH_BATCH):
                    if executor.out_of_time():
                        # Inside the deadline margin: no more ledger reads or intent rows, the rest waits its turn.
                        yield [deferred(d) for d in destructive[start:]]
                        break
                    yield _record_intent(ledger, sweep_id, now, confirmed(destructive[start : start + VOUCH_BATCH]))
                volumes_vouched.set_result(None)
                yield [d for d in unguarded if not d.destructive]

            first = background.submit(executor.execute_batches, unguarded_batches())
            # The ledger's 32 readers are taken by the volumes' histories until they are read (or that thread fails).
            wait([first, volumes_vouched], return_when=FIRST_COMPLETED)
            if not volumes_vouched.done():
                first.result()  # what stopped the volumes stops the sweep, before any instance or snapshot is touched
            planned = [d for d in plan.decisions if _guarded(d)]
            try:
                if executor.out_of_time():
                    guarded = [deferred(d) if d.destructive else d for d in planned]
                else:
                    guarded = _record_intent(ledger, sweep_id, now, apply_guards(confirmed(planned), guards.result()))
            except Exception as exc:  # re-raised once what was already done is told and recorded
                crash = exc
                guarded = [_withheld(d, "the sweep failed while deciding on it") for d in planned]
            acted_by_id = {d.resource_id: d for d in executor.execute(guarded)}
            acted_by_id.update((d.resource_id, d) for d in first.result())
    warned, warn_note = _warn_newly_unreadable(ledger, [acted_by_id[d.resource_id] for d in plan.decisions])
    acted_in_order, owners_note = _with_recorded_owners(ledger, warned, now)
    acted = tuple(acted_in_order)
    notes.extend(note for note in (warn_note, owners_note) if note)
    # Tell first: a mark whose notice did not go out is recorded as unannounced, and no sweep acts on it.
    acted, notified, notice_failure = _tell_owners(notifier, plan, acted, sweep_id)
    if notice_failure is not None:
        notes.append(f"a notice could not be sent: {notice_failure}")
    result = SweepResult(sweep_id, False, now, settings.regions, plan, acted, False, False)
    recorded = False
    ledger_failure: TrainctlError | None = None
    if ledger is not None:
        try:
            ledger.record(sweep_id, now, result.summary(), acted)
            recorded = True
        except TrainctlError as exc:
            ledger_failure = exc
            notes.append(f"the ledger write failed: {exc}")
    else:
        notes.append("no ledger: decisions were not recorded")
    if any(d.outcome == "deferred" for d in acted):
        notes.append("stopped before the deadline; the next sweep resumes with what is left")
    if crash is not None:
        raise crash
    if ledger_failure is not None:
        raise ledger_failure
    if notice_failure is not None:
        raise notice_failure
    return replace(result, recorded=recorded, notified=notified, notes=tuple(notes))


def _tell_owners(
    notifier: Notifier | None, plan: SweepPlan, acted: Sequence[Decision], sweep_id: str
) -> tuple[tuple[Decision, ...], bool, TrainctlError | None]:
    """One notice per owner; the owners hear of every action, whatever then happens to the ledger."""
    if notifier is None:
        return tuple(acted), False, None
    unannounced: set[str | None] = set()
    failure: TrainctlError | None = None
    notices = owner_notices(plan, acted, dry_run=False, sweep_id=sweep_id)

    def publish(notice: Notice) -> TrainctlError | None:
        try:
            notifier.publish(notice)
        except TrainctlError as exc:
            return exc
        return None

    # One Publish per owner, a few at once: a big sweep tells dozens of owners.
    with ThreadPoolExecutor(max_workers=NOTICE_SENDERS) as pool:
        for notice, error in zip(notices, pool.map(publish, notices), strict=True):
            if error is not None:
                unannounced.add(notice.owner)
                failure = error

    def untold(d: Decision) -> bool:
        return bool({d.owner, *d.also_tell} & unannounced)

    # An unreadable value's only word to its owner may be a withdrawn mark: if that notice failed, warn again.
    told_of = {d.resource_id for d in changed(acted)}

    told = tuple(
        replace(d, outcome="unannounced", detail=f"{d.detail}; its notice could not be sent")
        if d.action == "mark" and d.outcome == "done" and untold(d)
        else replace(d, outcome=UNWARNED, detail=f"{d.detail}; its notice could not be sent")
        if (d.outcome == "warned" or str(Protection.UNREADABLE) in d.protections)
        and d.resource_id in told_of
        and untold(d)
        else d
        for d in acted
    )
    return told, bool(notices) and not unannounced, failure


def _told_before(decision: Decision, vouched: Vouched) -> Decision:
    """The owner its mark was announced to hears what comes of it, also when the tag names someone else now."""
    earlier = vouched.told.get(decision.resource_id)
    if earlier is None or earlier == decision.owner:
        return decision
    return with_owners_of_record(decision, [earlier])


def with_owners_of_record(decision: Decision, owners: Sequence[str]) -> Decision:
    others = tuple(o for o in dict.fromkeys([*decision.also_tell, *owners]) if o != decision.owner)
    if others == decision.also_tell:
        return decision
    named = ", ".join(one_line(o, 64) for o in others)
    now = one_line(decision.owner, 64) if decision.owner else "no owner"
    return replace(
        decision,
        also_tell=others,
        detail=f"{decision.detail}; its trainctl:owner tag says {now}, trainctl recorded {named}: both are told",
    )


def _pending_marks_confirmed(
    ledger: Ledger | None,
    plan: SweepPlan,
    resources: Mapping[str, Resource],
    observations: Observations,
    settings: SweepSettings,
    now: datetime,
) -> tuple[SweepPlan, str]:
    """Every pending mark checked against the one trainctl wrote (one batched read); a ledger that cannot say
    leaves the marks as they are (nothing is acted on before the ledger vouches for the mark anyway)."""
    pending = [
        d.resource_id for d in plan.decisions if d.action == "keep" and d.cleanup_after and d.cleanup_after > now
    ]
    if ledger is None or not pending:
        return plan, ""
    try:
        written = ledger.marks_written(pending)
    except TrainctlError as exc:
        return plan, f"pending marks could not be checked against the ledger ({exc})"
    confirmed = confirm_pending_marks(plan.decisions, written, resources, observations, settings, now)
    return plan._replace(decisions=tuple(confirmed)), ""


def _warn_newly_unreadable(ledger: Ledger | None, decisions: Sequence[Decision]) -> tuple[list[Decision], str]:
    """A value trainctl cannot read keeps its resource, so its owner hears of it once: when it first shows."""
    unreadable = [d.resource_id for d in decisions if str(Protection.UNREADABLE) in d.protections]
    if ledger is None or not unreadable:
        return list(decisions), ""
    try:
        newest = ledger.newest(unreadable)
    except TrainctlError as exc:
        return list(decisions), f"whether unreadable values are news could not be read ({exc})"
    news = {
        r
        for r in unreadable
        if r not in newest
        or str(Protection.UNREADABLE) not in newest[r].protections
        or newest[r].outcome == UNWARNED  # the last warning could not be sent: warn again
    }
    return [
        replace(d, outcome="warned", detail=f"{d.detail}; kept until it is fixed: its owner is told once")
        if d.resource_id in news and d.action == "keep"
        else d
        for d in decisions
    ], ""


def _with_recorded_owners(
    ledger: Ledger | None, decisions: Sequence[Decision], now: datetime
) -> tuple[list[Decision], str]:
    """Each decision with news, with the owners trainctl recorded; what could not be read is said, not fatal."""
    news = [d.resource_id for d in changed(decisions)]
    if ledger is None or not news:
        return list(decisions), ""
    try:
        recorded = ledger.owners_of_record(news)
        # A resource age_guard never heard of (made before the stack): the owner its first mark is told of is its
        # owner of record from now on, so a tag rewritten later never takes the news away from them.
        first_told = {
            d.resource_id: d.owner
            for d in decisions
            if d.action == "mark" and d.outcome == "done" and d.owner and d.resource_id not in recorded
        }
        ledger.claim_owners(first_told, now)
    except TrainctlError as exc:
        return list(decisions), f"the owners of record could not be read ({exc}): the tags' owners were told"
    return [
        with_owners_of_record(d, [recorded[d.resource_id]]) if d.resource_id in recorded else d for d in decisions
    ], ""


def _guarded(decision: Decision) -> bool:
    """Acting on it waits for EC2's own guards (termination and stop protection, sharing): guards_of reads them."""
    return decision.destructive and decision.resource_type in ("instance", "snapshot")


def _withheld(decision: Decision, why: str) -> Decision:
    if not decision.destructive:
        return decision
    return replace(
        decision, action="keep", keep_volumes=(), outcome="failed", detail=f"{decision.detail}; {why}: nothing done"
    )


def _record_intent(
    ledger: Ledger | None, sweep_id: str, now: datetime, decisions: Sequence[Decision]
) -> list[Decision]:
    """No destructive call without a ledger row written first (safety model 7)."""
    destructive = [d for d in decisions if d.destructive and d.outcome == "planned"]
    if not destructive:
        return list(decisions)
    if ledger is None:
        return [_withheld(d, "no ledger to record the intent") for d in decisions]
    try:
        ledger.record_intent(sweep_id, now, destructive)
    except TrainctlError as exc:
        return [_withheld(d, f"the intent could not be recorded ({exc})") for d in decisions]
    return list(decisions)
