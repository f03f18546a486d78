"""The providers' sweep (RunPod, Lyceum): the AWS sweep's two phases, with its ledger, notices and blast radius.

Neither provider has tags, so everything a tag holds on AWS lives in the ledger, under the provider's own ids
(`runpod:<id>`, `lyceum:<id>`): the marks (`mark#runpod:<id>`), each decision (`resource#runpod:<id>`), and what
a sweep has seen of a resource over time (`observed#runpod:<id>`: when it was first seen, since when it has been
exited or unmounted, its GPU samples). Each provider's sweeps are recorded in their own partition
(`sweep#runpod`), so that an AWS mark is never judged against a provider's sweep, nor the other way round.

The rules are each provider's (`runpod.rules`, `lyceum.rules`): what they judge of a resource comes here as a
`Judged`, and `decide` turns it into the AWS sweep's `Decision` by the same mark cycle: a mark of trainctl's own
and a full grace period, acted on only after the delivery lag, only if the ledger vouches that the mark was
trainctl's, for the same action, and that every sweep since saw the resource a candidate. Dry-run reads the
ledger and writes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws import ledger as keys
from trainctl.aws.batch_get import get_items
from trainctl.aws.notifications import Notifier
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.errors import TrainctlError
from trainctl.core.marks import UNOBSERVED
from trainctl.core.notices import Notice
from trainctl.core.permissions import needs
from trainctl.core.protections import Protection
from trainctl.core.sweep_settings import SweepSettings
from trainctl.core.text import one_line
from trainctl.providers.http import ProviderError, ProviderKeyRejected
from trainctl.sweep.notice import owner_notices
from trainctl.sweep.record import DynamoDbLedger, ledger_items
from trainctl.sweep.rules import MARK_SLACK, Action, Decision, SweepPlan, action_budget, apply_blast_radius
from trainctl.sweep.run import SweepResult, vouch_for_marks

# The provider's own sweeps are read back to vouch for a mark; writes and gets go through record and batch_get.
PERMISSIONS = needs("dynamodb:Query")

PROVIDER_PRICE_SOURCE = "provider-api"
# A resource's samples older than this many idle windows cannot matter to any rule.
SAMPLE_WINDOWS_KEPT = 2
# On a provider's current-mark item: the mark was withdrawn (unmarked) or fulfilled at this instant.
WITHDRAWN = "withdrawn_at"
# An act that kept its mark's promise (its effect seen, already there, or accepted and not yet seen): as the AWS
# sweep takes the tag off a stopped instance, the ledger takes the mark off, or the next sweep withdraws it as news.
FULFILLED = ("done", "unverified")


def whole_second(at: datetime) -> datetime:
    """An instant as the ledger keeps it (format_instant): rules that compare it with a stored one use this too."""
    return at.replace(microsecond=0)


def ledger_id(provider: str, resource_id: str) -> str:
    """The id a provider's resource has in the ledger: never the same as an AWS id, nor another provider's."""
    return f"{provider}:{resource_id}"


def provider_id(ledger_resource_id: str) -> str:
    return ledger_resource_id.split(":", 1)[1]


# -- what a sweep has seen of a resource over time -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observed:
    """What trainctl's sweeps saw of one resource: the facts a provider's API does not keep for us."""

    first_seen: datetime
    # Since when it has been seen in the state a rule counts from (a pod exited, a volume unmounted); None if not.
    since: datetime | None = None
    # (when, the busiest GPU's utilisation in percent), oldest first.
    samples: tuple[tuple[datetime, float], ...] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "first_seen": format_instant(self.first_seen),
                "since": format_instant(self.since) if self.since else None,
                "samples": [[format_instant(at), util] for at, util in self.samples],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Observed:
        raw = json.loads(text)
        return cls(
            first_seen=parse_instant(str(raw["first_seen"])),
            since=parse_instant(str(raw["since"])) if raw.get("since") else None,
            samples=tuple((parse_instant(str(at)), float(util)) for at, util in raw.get("samples") or ()),
        )


def observed_key(resource_id: str) -> dict[str, Any]:
    """Where the ledger keeps what the sweeps saw of a provider's resource: one item, overwritten each sweep."""
    return keys.key(f"observed#{resource_id}", "current")


def sweep_partition(provider: str) -> str:
    return f"{keys.SWEEP_PARTITION}#{provider}"


class ProviderLedger(DynamoDbLedger):
    """The AWS sweep's ledger (same table, same key scheme), with the provider's sweeps in their own partition
    and what its sweeps observed beside the decisions."""

    def __init__(self, dynamodb: Any, table_name: str, provider: str) -> None:
        super().__init__(dynamodb, table_name)
        self.provider = provider
        self.sweep_partition = sweep_partition(provider)

    def record(self, sweep_id: str, at: datetime, summary: dict[str, object], decisions: Sequence[Decision]) -> None:
        # The ledger is the only place a provider's mark lives: an unmark withdraws it there, an act fulfils it.
        withdrawn = [
            {**keys.current_mark(d.resource_id), WITHDRAWN: {"S": format_instant(at)}, **keys.expires(at)}
            for d in decisions
            if (d.action == "unmark" and d.outcome == "done") or (d.destructive and d.outcome in FULFILLED)
        ]
        items = ledger_items(sweep_id, at, summary, decisions, sweep_partition=self.sweep_partition)
        self._write_all([*items, *withdrawn])

    def marks_written(self, resource_ids: Sequence[str]) -> dict[str, datetime]:
        """The mark trainctl last wrote on each resource and has not withdrawn."""
        keys_wanted = [keys.current_mark(r) for r in dict.fromkeys(resource_ids)]
        return {
            str(item[keys.PARTITION_KEY]["S"]).removeprefix("mark#"): parse_instant(str(item["cleanup_after"]["S"]))
            for item in get_items(self._dynamodb, self._table, keys_wanted)
            if WITHDRAWN not in item and "cleanup_after" in item
        }

    def _sweeps_unreadable(self, exc: ClientError | BotoCoreError) -> TrainctlError:
        return TrainctlError(f"the ledger's {self.provider} sweeps could not be read ({type(exc).__name__})")

    def observed(self, resource_ids: Sequence[str]) -> dict[str, Observed]:
        found: dict[str, Observed] = {}
        for item in get_items(self._dynamodb, self._table, [observed_key(r) for r in dict.fromkeys(resource_ids)]):
            resource_id = str(item[keys.PARTITION_KEY]["S"]).removeprefix("observed#")
            try:
                found[resource_id] = Observed.from_json(str(item["observed"]["S"]))
            except (KeyError, ValueError, TypeError):
                continue  # an item trainctl cannot read is no sighting: the resource starts afresh, later
        return found

    def record_observed(self, observed: Mapping[str, Observed], at: datetime) -> None:
        self._write_all(
            [
                {**observed_key(resource_id), "observed": {"S": seen.to_json()}, **keys.expires(at)}
                for resource_id, seen in observed.items()
            ]
        )


# -- deciding: the mark cycle over what a provider's rules judged ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Judged:
    """What a provider's rules say of one resource at one sweep, before the mark cycle."""

    resource_id: str  # its ledger id
    resource_type: str
    region: str
    action: Action  # what its reasons call for (what a mark announces)
    owner: str | None = None
    reasons: tuple[str, ...] = ()
    protections: tuple[str, ...] = ()
    detail: str = ""
    # Nothing either way was seen this sweep (no utilisation in the answer): no answer is not evidence.
    unobserved: bool = False
    hourly_usd: float | None = None
    price_source: str = ""


@dataclass(frozen=True, slots=True)
class Judgement:
    """A provider's rules over one account read: each resource judged, and what to remember of each."""

    judged: tuple[Judged, ...]
    observed: Mapping[str, Observed]
    scanned: int
    in_scope: int
    warnings: tuple[str, ...] = ()


def fresh_mark(base: Decision, action: Action, settings: SweepSettings, now: datetime, *, why: str = "") -> Decision:
    """A mark of trainctl's own: a full grace period, the action it announces, and a notice."""
    cleanup_after = now + settings.grace_period
    note = f"will {action} after {format_instant(cleanup_after)} if still a candidate"
    return replace(
        base,
        action="mark",
        cleanup_after=cleanup_after,
        announced=action,
        detail=f"{why}: marked afresh; {note}" if why else note,
    )


def decide(judged: Judged, mark_at: datetime | None, settings: SweepSettings, now: datetime) -> Decision | None:
    """The mark cycle, as the AWS sweep runs it, over a mark that only the ledger holds."""
    base = Decision(
        resource_id=judged.resource_id,
        resource_type=judged.resource_type,
        region=judged.region,
        action="keep",
        reasons=judged.reasons,
        owner=judged.owner,
        cleanup_after=mark_at,
        hourly_usd=judged.hourly_usd,
        price_source=judged.price_source,
    )
    if str(Protection.UNREADABLE) in judged.protections:
        # Named every sweep: what cannot be read is kept, and its mark (if any) withdrawn.
        action: Action = "unmark" if mark_at is not None else "keep"
        return replace(base, action=action, protections=judged.protections, detail=judged.detail)
    if not judged.reasons:
        if mark_at is not None and judged.unobserved:
            return replace(base, outcome=UNOBSERVED, detail=f"{judged.detail}: the mark stays")
        if mark_at is not None:
            return replace(base, action="unmark", detail=judged.detail or "no longer a candidate")
        return None
    if judged.protections:
        # A protected resource loses its mark: a full grace period (and a notice) if the protection ever lifts.
        return replace(
            base,
            action="unmark" if mark_at is not None else "keep",
            protections=judged.protections,
            detail=judged.detail,
        )
    if mark_at is None:
        return fresh_mark(base, judged.action, settings, now)
    if mark_at > now + settings.grace_period + MARK_SLACK:
        return fresh_mark(base, judged.action, settings, now, why="its mark is further ahead than trainctl writes")
    if now < mark_at:
        return replace(base, detail=f"grace period until {format_instant(mark_at)}")
    if now < mark_at + settings.event_delivery_lag:
        heard_by = format_instant(mark_at + settings.event_delivery_lag)
        return replace(base, detail=f"grace period over; waits for late news until {heard_by}")
    return replace(
        base,
        action=judged.action,
        detail=f"marked until {format_instant(mark_at)}; grace period over"
        + (f"; {judged.detail}" if judged.detail else ""),
    )


# -- one provider's sweep ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSweepResult:
    """One provider's sweep: the AWS sweep's result shape, with the provider's name and its error, if any."""

    provider: str
    result: SweepResult
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {**self.result.to_json(), "provider": self.provider, "error": self.error}


@dataclass(frozen=True)
class ProviderRoom:
    """What the shared sweep needs from a provider: its name, its rules over an account already read, its actions
    (decision in, (outcome, detail) out; a refused key raises), and what its notices tell a person to do."""

    provider: str
    judge: Callable[[Mapping[str, Observed]], Judgement]
    act: Callable[[Decision], tuple[str, str]]
    next_steps: tuple[str, ...] = field(default=())
    observed_ids: tuple[str, ...] = ()  # the ledger ids whose sightings the rules read
    # Just before its act, a destructive decision read again: the decision that keeps it instead, or None (act on).
    recheck: Callable[[Decision], Decision | None] = field(default=lambda _decision: None)


def failed_sweep(provider: str, settings: SweepSettings, now: datetime, error: TrainctlError) -> ProviderSweepResult:
    """A provider that could not be read: one clear line, nothing decided, nothing written."""
    said = one_line(str(error), 300)
    plan = SweepPlan(at=now, decisions=(), scanned=0, in_scope=0)
    result = SweepResult(uuid.uuid4().hex[:12], settings.dry_run, now, (provider,), plan, (), False, False, (said,))
    return ProviderSweepResult(provider, result, said)


Inventory = TypeVar("Inventory")


def sweep_after_read(
    provider: str,
    read: Callable[[], Inventory],
    room: Callable[[Inventory], ProviderRoom],
    settings: SweepSettings,
    now: datetime,
    *,
    ledger: ProviderLedger | None,
    notifier: Notifier | None,
) -> ProviderSweepResult:
    """Read the provider's account, then sweep it; an account that cannot be read is this provider's error alone."""
    try:
        inventory = read()
    except TrainctlError as exc:  # a refused key, an outage, an answer without its documented envelope
        return failed_sweep(provider, settings, now, exc)
    return run_provider_sweep(room(inventory), settings, now, ledger=ledger, notifier=notifier)


def run_provider_sweep(
    room: ProviderRoom,
    settings: SweepSettings,
    now: datetime,
    *,
    ledger: ProviderLedger | None,
    notifier: Notifier | None,
) -> ProviderSweepResult:
    """Observe (from the ledger), judge, decide, vouch; then, enforced only: intent, act, tell, record."""
    sweep_id = uuid.uuid4().hex[:12]
    notes: list[str] = []
    observed: dict[str, Observed] = {}
    marks: dict[str, datetime] = {}
    if ledger is not None:
        try:
            observed = ledger.observed(room.observed_ids)
        except TrainctlError as exc:
            if not settings.dry_run:
                return failed_sweep(room.provider, settings, now, _ledger_error(room.provider, exc))
            notes.append(f"the ledger could not be read ({exc}): no sightings, marks or samples from earlier sweeps")
            ledger = None
    judgement = room.judge(observed)
    if ledger is not None:
        try:
            marks = ledger.marks_written([j.resource_id for j in judgement.judged])
        except TrainctlError as exc:
            if not settings.dry_run:
                return failed_sweep(room.provider, settings, now, _ledger_error(room.provider, exc))
            notes.append(f"the ledger's marks could not be read ({exc})")
    decided = [decide(j, marks.get(j.resource_id), settings, now) for j in judgement.judged]
    decisions = apply_blast_radius([d for d in decided if d is not None], action_budget(judgement.in_scope, settings))
    decisions = _vouched(ledger, decisions, settings, now)
    plan = SweepPlan(now, tuple(decisions), judgement.scanned, judgement.in_scope, judgement.warnings)
    regions = (room.provider,)
    if settings.dry_run:
        notes.append("dry-run: nothing was changed and nothing was recorded")
        previews = tuple(replace(d, outcome="dry-run") for d in decisions)
        result = SweepResult(sweep_id, True, now, regions, plan, previews, False, False, tuple(notes))
        return ProviderSweepResult(room.provider, result)
    if ledger is None:
        return failed_sweep(room.provider, settings, now, TrainctlError(f"{room.provider}: no ledger to record in"))
    error: str | None = None
    acted: list[Decision] = []
    try:
        destructive = [d for d in decisions if d.destructive]
        if destructive:
            ledger.record_intent(sweep_id, now, destructive)  # no destructive call without its row (safety 7)
    except TrainctlError as exc:
        return failed_sweep(room.provider, settings, now, _ledger_error(room.provider, exc))
    for decision in decisions:
        if not decision.destructive or error is not None:
            acted.append(_withheld(decision, error) if error and decision.destructive else _done_if_marking(decision))
            continue
        try:
            kept = room.recheck(decision)
            if kept is not None:
                acted.append(kept)
                continue
            outcome, detail = room.act(decision)
        except ProviderKeyRejected as exc:
            error = one_line(str(exc), 300)
            acted.append(_withheld(decision, error))
            continue
        except ProviderError as exc:
            outcome, detail = "failed", one_line(str(exc), 300)
        acted.append(
            replace(decision, outcome=outcome, detail=f"{decision.detail}; {detail}" if detail else decision.detail)
        )
    told, notified, notice_failure = _tell(notifier, plan, acted, sweep_id, room.next_steps)
    if notice_failure:
        notes.append(f"a notice could not be sent: {notice_failure}")
    result = SweepResult(sweep_id, False, now, regions, plan, tuple(told), False, notified, tuple(notes))
    try:
        ledger.record(sweep_id, now, result.summary(), told)
        ledger.record_observed(judgement.observed, now)
        recorded = True
    except TrainctlError as exc:
        recorded = False
        notes.append(f"the ledger write failed: {exc}")
        error = error or f"{room.provider}: the ledger write failed"
    if error:
        notes.append(error)
    return ProviderSweepResult(room.provider, replace(result, recorded=recorded, notes=tuple(notes)), error)


def _ledger_error(provider: str, exc: TrainctlError) -> TrainctlError:
    return TrainctlError(f"{provider}: the ledger could not be read or written ({exc}); nothing was done")


def _done_if_marking(decision: Decision) -> Decision:
    """A mark or unmark is written by recording it: the ledger is the only place a provider's mark lives."""
    if decision.action in ("mark", "unmark") and decision.outcome == "planned":
        return replace(decision, outcome="done")
    return decision


def _withheld(decision: Decision, why: str | None) -> Decision:
    return replace(decision, action="keep", outcome="failed", detail=f"{decision.detail}; {why}: nothing done")


def _vouched(
    ledger: ProviderLedger | None, decisions: Sequence[Decision], settings: SweepSettings, now: datetime
) -> list[Decision]:
    """A destructive decision whose mark the ledger cannot vouch for becomes a fresh mark (safety model 3)."""
    # The sightings it reads are kept to the whole second: a sweep one idle window after the last is not later.
    vouched = vouch_for_marks(ledger, decisions, {}, now=whole_second(now), idle_window=settings.idle_window)
    confirmed = []
    for decision in decisions:
        why = vouched.distrusted.get(decision.resource_id)
        if decision.destructive and why is not None:
            confirmed.append(fresh_mark(decision, decision.action, settings, now, why=why))
        elif decision.destructive:
            confirmed.append(replace(decision, marked_at=vouched.marked_at.get(decision.resource_id)))
        else:
            confirmed.append(decision)
    return confirmed


def _tell(
    notifier: Notifier | None,
    plan: SweepPlan,
    acted: Sequence[Decision],
    sweep_id: str,
    next_steps: tuple[str, ...],
) -> tuple[list[Decision], bool, str]:
    """One notice per owner; a mark whose notice did not go out is recorded unannounced, and never acted on."""
    if notifier is None:
        return list(acted), False, ""
    untold: set[str | None] = set()
    failure = ""
    notices = owner_notices(plan, acted, dry_run=False, sweep_id=sweep_id)
    for notice in notices:
        try:
            notifier.publish(_with_steps(notice, next_steps))
        except TrainctlError as exc:
            untold.add(notice.owner)
            failure = one_line(str(exc), 300)
    told = [
        replace(d, outcome="unannounced", detail=f"{d.detail}; its notice could not be sent")
        if d.action == "mark" and d.outcome == "done" and d.owner in untold
        else d
        for d in acted
    ]
    return told, bool(notices) and not untold, failure


def _with_steps(notice: Notice, next_steps: tuple[str, ...]) -> Notice:
    """The AWS notice's steps speak of tags; a provider has none, so its own steps replace them."""
    kept = tuple(step for step in notice.next_steps if "tag" not in step)
    return replace(notice, next_steps=(*next_steps, *kept))
