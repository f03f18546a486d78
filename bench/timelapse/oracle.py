"""The oracle: per resource, what must happen and by when, and what must never happen, judged against what the
time-lapse saw.

A promise is "this resource became a lasting candidate at T": trainctl must act (stop, terminate, delete) no
earlier than T + grace (a full grace period after the first sweep that could see it; never before a ttl ends),
and no later than

    T (+ idle window, for idleness) + grace + delivery lag + 2 sweep periods

The two sweep periods: the first sweep after the resource became a candidate (or after its idle window filled)
comes up to one period later and marks it; the first sweep after the grace and the delivery lag have passed comes
up to one period after that and acts. The delivery lag is TRAINCTL_EVENT_DELIVERY_LAG (0 where the deployed
settings have none): a mark is acted on only once every use before its grace ended has been heard.

A promise restarted by news trainctl hears late (an owner tag rewritten on a marked resource withdraws the
mark; CloudTrail delivers the call up to its tail later) adds that tail to the latest bound.

Never: a destructive action on a resource in use at any time in the grace period before the action (a use
withdraws the mark), or on one that never became a candidate. At most two sweep notices per mark to each
person told (the mark, and its outcome or withdrawal): a mark is told to the owner the tag names and to the
owner of record, each once. Never a mark, nor a sweep notice, while a resource is kept by a protection its
story knows holds (a volume the pre-warm workflow waits on), and the sweeps say that protection at least once.
Each action on a resource whose owner tag someone rewrote is told to the owner of record and to the tag's owner.

With a second account (bench/timelapse/accounts.py), every decision, notice, ledger line and mark tag about a
resource belongs to the account that holds the resource: never one of another account's. A member's launch that
reaches the hub through the organization bus is stamped in the member (owner of record: the member's user who made
it, the creator's ARN in the member's account) within CloudTrail's tail of the call. A member's burn over its
account's threshold is told by the organization's cost run within one cost period of the burn starting, and every
cost notice carries the account its breach speaks of (the hub's own cost check's: none but the hub's; the
organization's total or an owner across it: none).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from bench.timelapse.clock import DeployedStack
from bench.timelapse.deliveries import ACCOUNT_ID, CLOUDTRAIL_TAIL
from bench.timelapse.harness import NoticeSeen, Record, SweepDecision
from infra.config import PROVIDERS
from trainctl.core.clock import format_instant

DESTRUCTIVE = ("stop", "terminate", "delete")
NOTICES_PER_MARK = 2
Verdict = Literal["correct", "too late", "too early", "wrong"]


@dataclass(frozen=True)
class Promise:
    """The resource became a lasting candidate at `since` for `reason`; trainctl must `action` it."""

    name: str  # e.g. "idle instance stopped"
    since: datetime
    action: str
    idle: bool = False
    # A ttl ends here: nothing may happen before it, whatever the grace says.
    not_before: datetime | None = None
    # What started it reaches trainctl this late at most (a CloudTrail record in the tail): added to the bound.
    late_news: timedelta = timedelta(0)


@dataclass
class Quiet:
    """A span in which the sweeps keep the resource by `protection`: no mark, no sweep notice of it."""

    name: str  # e.g. "never marked while pre-warming"
    since: datetime
    until: datetime | None  # None: still kept when the run ends
    protection: str


@dataclass(frozen=True)
class Told:
    """Every action from `since` on is told to each of `owners` (the owner of record and the tag's owner)."""

    owners: tuple[str, ...]
    since: datetime


@dataclass(frozen=True)
class Stamp:
    """The resource was made by `owner` in `account` at `since`: age_guard owes its creator stamp there."""

    owner: str
    account: str
    since: datetime


@dataclass(frozen=True)
class Burn:
    """From `since` the resource alone puts `account` over its cost threshold: the breach is owed a notice."""

    account: str
    since: datetime


@dataclass
class Truth:
    """What a user's script knows of one resource: when it is in use, and what trainctl owes it."""

    user: str
    story: str
    resource_id: str
    kind: str  # instance, volume, snapshot
    uses: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    promises: list[Promise] = field(default_factory=list)
    # Ended by someone else (EC2 reclaiming a spot instance, the user): no action of trainctl is owed after.
    ended_by_others: datetime | None = None
    # Spot warnings EC2 sent for it: each owes a handled interruption and a notice.
    spot_warnings: list[datetime] = field(default_factory=list)
    quiet: list[Quiet] = field(default_factory=list)
    told: list[Told] = field(default_factory=list)
    account: str = ACCOUNT_ID  # the account that holds it
    stamp: Stamp | None = None
    burns: list[Burn] = field(default_factory=list)

    def begin_use(self, at: datetime) -> None:
        if not self.uses or self.uses[-1][1] is not None:
            self.uses.append((at, None))

    def end_use(self, at: datetime) -> None:
        if self.uses and self.uses[-1][1] is None:
            self.uses[-1] = (self.uses[-1][0], at)

    def used_between(self, start: datetime, end: datetime) -> datetime | None:
        """The latest instant of use within [start, end], if any."""
        latest = None
        for began, ended in self.uses:
            stop = ended or end
            if began <= end and stop >= start:
                latest = min(stop, end)
        return latest


@dataclass(frozen=True)
class Finding:
    """One judged fact, with who, what and when: a failure message names all three."""

    promise: str
    verdict: Verdict
    user: str
    story: str
    resource_id: str
    at: datetime | None
    detail: str

    def __str__(self) -> str:
        when = format_instant(self.at) if self.at else "-"
        return f"{self.verdict}: {self.promise}: {self.user} ({self.story}) {self.resource_id} at {when}: {self.detail}"


@dataclass(frozen=True)
class Bounds:
    grace: timedelta
    delivery_lag: timedelta
    idle_window: timedelta
    sweep_period: timedelta
    cost_period: timedelta

    @classmethod
    def of(cls, stack: DeployedStack) -> Bounds:
        sweep = stack.config.sweep
        return cls(
            grace=sweep.grace_period,
            # Settings without it (before the delivery lag existed) wait for no late event.
            delivery_lag=getattr(sweep, "event_delivery_lag", None) or timedelta(0),
            idle_window=sweep.idle_window,
            sweep_period=stack.schedule_of("cleanup_sweep").period,
            cost_period=stack.schedule_of("cost_alerts").period,
        )

    def earliest(self, promise: Promise) -> datetime:
        start = promise.since + (self.idle_window if promise.idle else timedelta(0)) + self.grace
        return max(start, promise.not_before) if promise.not_before else start

    def latest(self, promise: Promise) -> datetime:
        start = promise.since + (self.idle_window if promise.idle else timedelta(0)) + promise.late_news
        return start + self.grace + self.delivery_lag + 2 * self.sweep_period


@dataclass
class MarkLife:
    """One mark of one resource: the sweep that made it, the notices told while it stood (per person told), how
    it ended."""

    resource_id: str
    marked_at: datetime
    told: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ended: str = "standing"

    @property
    def notices(self) -> int:
        """The most notices one person had of this mark: what the rule of two bounds."""
        return max(self.told.values(), default=0)


@dataclass
class Judgement:
    findings: list[Finding]
    marks: dict[str, list[MarkLife]]
    notices_per_resource: dict[str, int]
    truths: list[Truth]
    # Every story of the cast, also those that own no resource (a colleague writing tags on others').
    stories: list[str] = field(default_factory=list)

    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict != "correct"]

    def by_promise(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(("correct", "too late", "too early", "wrong"), 0)
        )
        for finding in self.findings:
            table[finding.promise][finding.verdict] += 1
        return dict(table)


def judge(record: Record, truths: list[Truth], stack: DeployedStack) -> Judgement:
    bounds = Bounds.of(stack)
    marks = mark_lives(record)
    findings: list[Finding] = []
    for truth in truths:
        acted = [
            d for d in record.decisions.get(truth.resource_id, []) if d.action in DESTRUCTIVE and d.outcome == "done"
        ]
        findings += _judge_actions(truth, acted, marks.get(truth.resource_id, []), bounds, record.end)
        findings += _judge_spot(truth, record)
        findings += _judge_quiet(truth, record)
        findings += _judge_told(truth, acted, record, bounds)
        findings += _judge_stamp(truth, record)
        findings += _judge_burns(truth, record, bounds)
    findings += _judge_cost_labels(record, truths)
    for resource_id, lives in marks.items():
        owner = next((t for t in truths if t.resource_id == resource_id), None)
        for life in lives:
            if life.notices > NOTICES_PER_MARK:
                findings.append(
                    Finding(
                        "at most two notices per mark",
                        "wrong",
                        owner.user if owner else "?",
                        owner.story if owner else "?",
                        resource_id,
                        life.marked_at,
                        f"{life.notices} notices to one person for the mark made at "
                        f"{format_instant(life.marked_at)} ({_told_text(life)})",
                    )
                )
    notices: dict[str, int] = defaultdict(int)
    for notice in record.notices:
        for resource_id in notice.resources:
            notices[resource_id] += 1
    return Judgement(findings, marks, dict(notices), truths)


def _judge_actions(
    truth: Truth, acted: list[SweepDecision], lives: list[MarkLife], bounds: Bounds, end: datetime
) -> list[Finding]:
    findings: list[Finding] = []
    kept = list(acted)
    for index, promise in enumerate(truth.promises):
        # A later promise starts a new story: an action after it answers that one.
        until = truth.promises[index + 1].since if index + 1 < len(truth.promises) else end
        earliest, latest = bounds.earliest(promise), bounds.latest(promise)
        window = (
            f"became a candidate at {format_instant(promise.since)}; due between {format_instant(earliest)} "
            f"and {format_instant(latest)}"
        )
        match = next((d for d in kept if promise.since <= d.at < until), None)
        if truth.ended_by_others and truth.ended_by_others < latest and match is None:
            continue
        if match is None:
            if latest <= end:
                findings.append(
                    Finding(
                        promise.name,
                        "too late",
                        truth.user,
                        truth.story,
                        truth.resource_id,
                        latest,
                        f"never {promise.action}: {window}; {_flapping(lives, promise.since)}",
                    )
                )
            continue
        kept.remove(match)
        used = truth.used_between(match.at - bounds.grace, match.at)
        if used is not None or match.action != promise.action:
            verdict: Verdict = "wrong"
            why = f"in use at {format_instant(used)}" if used else f"{match.action} where {promise.action} was due"
        elif match.at < earliest:
            verdict, why = "too early", window
        elif match.at > latest:
            verdict, why = "too late", f"{window}; {_flapping(lives, promise.since)}"
        else:
            verdict, why = "correct", window
        findings.append(
            Finding(
                promise.name, verdict, truth.user, truth.story, truth.resource_id, match.at, f"{match.action}: {why}"
            )
        )
    for decision in kept:
        used = truth.used_between(decision.at - bounds.grace, decision.at)
        why = f"in use at {format_instant(used)}" if used else "it never became a lasting candidate"
        findings.append(
            Finding(
                "nothing in use is stopped or destroyed",
                "wrong",
                truth.user,
                truth.story,
                truth.resource_id,
                decision.at,
                f"{decision.action} ({decision.detail}): {why}",
            )
        )
    if not acted and not truth.promises:
        findings.append(
            Finding(
                "nothing in use is stopped or destroyed",
                "correct",
                truth.user,
                truth.story,
                truth.resource_id,
                None,
                "never acted on",
            )
        )
    return findings


def _judge_spot(truth: Truth, record: Record) -> list[Finding]:
    findings = []
    for warned in truth.spot_warnings:
        handled = [
            i
            for i in record.invocations
            if i.function == "spot_interruption"
            and i.at >= warned
            and i.result
            and i.result.get("instance_id") == truth.resource_id
            and i.result.get("kind", "warning") == "warning"
        ]
        told = [n for n in record.notices if n.kind == "spot" and truth.resource_id in n.resources and n.at >= warned]
        failed = [i for i in record.invocations if i.function == "spot_interruption" and i.error and i.at >= warned]
        ok = bool(handled) and bool(told)
        detail = (
            f"warning handled ({handled[0].result.get('status') if handled else 'no run'}), "
            f"{len(told)} spot notice(s)" + (f"; failed: {failed[0].error.splitlines()[0]}" if failed else "")
        )
        findings.append(
            Finding(
                "a spot warning is handled and told",
                "correct" if ok else "wrong",
                truth.user,
                truth.story,
                truth.resource_id,
                warned,
                detail,
            )
        )
    return findings


def _judge_quiet(truth: Truth, record: Record) -> list[Finding]:
    """No mark and no sweep notice while a protection the story knows holds; the sweeps name it at least once."""
    findings = []
    decisions = record.decisions.get(truth.resource_id, [])
    for quiet in truth.quiet:
        until = quiet.until or record.end
        inside = [d for d in decisions if quiet.since <= d.at < until]
        marked = [d for d in inside if d.action != "keep"]
        told = [
            n
            for n in record.notices
            if n.kind == "sweep" and truth.resource_id in n.resources and quiet.since <= n.at < until
        ]
        kept = [d for d in inside if d.action == "keep" and quiet.protection in d.protections]
        span = f"from {format_instant(quiet.since)} to {format_instant(until)}"
        verdict: Verdict = "wrong"
        at = None
        if marked:
            at = marked[0].at
            detail = f"{marked[0].action} at {format_instant(at)} ({marked[0].detail}); {len(marked)} in all {span}"
        elif told:
            at = told[0].at
            detail = f"a sweep notice to {told[0].owner or 'no owner'} at {format_instant(at)}; {len(told)} {span}"
        elif not kept:
            detail = f"no sweep named {quiet.protection} {span}"
        else:
            verdict = "correct"
            detail = f"kept as {quiet.protection} by {len(kept)} sweeps {span}, never marked or told"
        findings.append(Finding(quiet.name, verdict, truth.user, truth.story, truth.resource_id, at, detail))
    return findings


def _judge_told(truth: Truth, acted: list[SweepDecision], record: Record, bounds: Bounds) -> list[Finding]:
    """Each action after an owner tag was rewritten reaches the owner of record and the tag's owner, from the
    sweep that acted (its notices are read as it returns)."""
    findings = []
    for told in truth.told:
        for decision in (d for d in acted if d.at >= told.since):
            heard = {
                n.owner
                for n in record.notices
                if n.kind == "sweep"
                and truth.resource_id in n.resources
                and decision.at <= n.at < decision.at + bounds.sweep_period
            }
            missing = [owner for owner in told.owners if owner not in heard]
            verdict: Verdict = "wrong" if missing else "correct"
            detail = f"{decision.action} told to {', '.join(sorted(o or 'no owner' for o in heard)) or 'nobody'}"
            if missing:
                detail += f"; never told: {', '.join(missing)}"
            findings.append(
                Finding(
                    "the owner of record is told of the action",
                    verdict,
                    truth.user,
                    truth.story,
                    truth.resource_id,
                    decision.at,
                    detail,
                )
            )
    return findings


STAMPED = "a member's launch is stamped in the member by its creator"
BURN_TOLD = "an account's cost breach is told within one cost period"
COST_LABELLED = "each cost notice carries the account it speaks of"
CLEARED = "trainctl cost: cleared "  # cost.rules.cleared_notice's title


def _judge_stamp(truth: Truth, record: Record) -> list[Finding]:
    """age_guard's stamp as EC2 showed it first: the creator's session and account, within CloudTrail's tail."""
    owed = truth.stamp
    if owed is None:
        return []
    seen = record.stamps.get(truth.resource_id)
    due = owed.since + CLOUDTRAIL_TAIL
    if seen is None:
        if due > record.end:
            return []
        detail = f"never stamped; due by {format_instant(due)}"
        return [Finding(STAMPED, "too late", truth.user, truth.story, truth.resource_id, due, detail)]
    at, owner, created_by = seen
    # age_guard names an assumed role's maker by its role and session (the person signed in)
    creator = f"arn:aws:iam::{owed.account}:role/MLTeam session {owed.owner}"
    verdict: Verdict = "correct"
    if owner != owed.owner or created_by != creator:
        verdict = "wrong"
    elif at > due:
        verdict = "too late"
    detail = f"owner {owner}, created by {created_by} at {format_instant(at)}; owed {owed.owner}, {creator}"
    return [Finding(STAMPED, verdict, truth.user, truth.story, truth.resource_id, at, detail)]


def _is_breach_of(notice: NoticeSeen, account: str) -> bool:
    return notice.kind == "cost" and (notice.breach or "").startswith(f"org:account:{account}:")


def _judge_burns(truth: Truth, record: Record, bounds: Bounds) -> list[Finding]:
    """The first notice of the account's breach after the burn began, no later than one cost period after it."""
    findings = []
    for burn in truth.burns:
        due = burn.since + bounds.cost_period
        told = [
            n
            for n in record.notices
            if _is_breach_of(n, burn.account) and n.at >= burn.since and not n.title.startswith(CLEARED)
        ]
        if not told:
            if due <= record.end:
                detail = f"never told; due by {format_instant(due)}"
                findings.append(Finding(BURN_TOLD, "too late", truth.user, truth.story, truth.resource_id, due, detail))
            continue
        first = told[0]
        verdict: Verdict = "correct" if first.at <= due else "too late"
        detail = (
            f"{first.breach} told at {format_instant(first.at)} under {first.label or 'no account'}; burning since "
            f"{format_instant(burn.since)}, due by {format_instant(due)}"
        )
        findings.append(Finding(BURN_TOLD, verdict, truth.user, truth.story, truth.resource_id, first.at, detail))
    return findings


def _judge_cost_labels(record: Record, truths: list[Truth]) -> list[Finding]:
    """Per breach: every notice of it (told, reminded, cleared) under the account it speaks of, and no other."""
    burners = {burn.account: truth for truth in truths for burn in truth.burns}
    by_breach: dict[str, list[NoticeSeen]] = defaultdict(list)
    for notice in record.notices:
        if notice.kind == "cost" and notice.breach:
            by_breach[notice.breach].append(notice)
    findings = []
    for breach, notices in sorted(by_breach.items()):
        parts = breach.split(":")
        if breach.startswith("org:account:"):
            owed: str | None = parts[2]
        elif breach.startswith("org:"):
            owed = None  # the organization's total, or an owner across it: no one account's
        else:
            owed = ACCOUNT_ID  # the hub's own cost check
        wrong = [n for n in notices if (n.label or (None if owed is None else ACCOUNT_ID)) != owed]
        truth = burners.get(owed or "")
        if wrong:
            first = wrong[0]
            what = "cleared notice" if first.title.startswith(CLEARED) else "notice"
            detail = (
                f"{len(wrong)} of {len(notices)} notices not under {owed or 'no account'}, the first a {what} at "
                f"{format_instant(first.at)} under {first.label or 'no account'}"
            )
        else:
            detail = f"{len(notices)} notices, all under {owed or 'no account'}"
        findings.append(
            Finding(
                COST_LABELLED,
                "wrong" if wrong else "correct",
                truth.user if truth else "-",
                truth.story if truth else "-",
                breach,
                wrong[0].at if wrong else None,
                detail,
            )
        )
    return findings


def _told_text(life: MarkLife) -> str:
    return ", ".join(f"{owner or 'no owner'}: {n}" for owner, n in sorted(life.told.items()))


def _flapping(lives: list[MarkLife], since: datetime) -> str:
    after = [life for life in lives if life.marked_at >= since]
    if not after:
        return "never marked"
    endings: dict[str, int] = defaultdict(int)
    for life in after:
        endings[life.ended] += 1
    ends = ", ".join(f"{n} {how}" for how, n in sorted(endings.items()))
    return (
        f"marked {len(after)} times from {format_instant(after[0].marked_at)} to "
        f"{format_instant(after[-1].marked_at)} ({ends}); {sum(sum(life.told.values()) for life in after)} notices"
    )


def mark_lives(record: Record) -> dict[str, list[MarkLife]]:
    """Each resource's marks from the sweeps' decisions, with the sweep notices told while each stood."""
    lives: dict[str, list[MarkLife]] = {}
    for resource_id, decisions in record.decisions.items():
        mine: list[MarkLife] = []
        for decision in decisions:
            if decision.action == "mark" and decision.outcome in ("done", "planned"):
                if mine and mine[-1].ended == "standing":
                    mine[-1].ended = "re-marked"
                mine.append(MarkLife(resource_id, decision.at))
            elif mine and mine[-1].ended == "standing" and decision.action != "keep":
                why = decision.protections[0] if decision.protections else decision.detail.split(";")[0][:40]
                mine[-1].ended = f"{decision.action} ({why})" if decision.action == "unmark" else decision.action
        if mine:
            lives[resource_id] = mine
    for notice in record.notices:
        if notice.kind != "sweep":
            continue
        for resource_id in notice.resources:
            standing = [life for life in lives.get(resource_id, []) if life.marked_at <= notice.at]
            if standing:
                standing[-1].told[notice.owner or ""] += 1
    return lives


ACCOUNTS_APART = "nothing of one account lands in another's"


@dataclass(frozen=True)
class AccountLine:
    """One thing trainctl wrote or said about a resource (`what`), and the account it was written under."""

    what: str  # e.g. "sweep decision", "notice", "ledger row", "mark tag"
    resource_id: str
    account: str
    at: datetime | None = None


def judge_accounts(truths: list[Truth], holders: dict[str, str], lines: list[AccountLine]) -> list[Finding]:
    """Per resource trainctl spoke of: every line under the account that holds it (`holders`, as EC2 showed). A
    provider's resource (`runpod:...`, `lyceum:...`) is in no EC2: it is the hub's, whose deployment sweeps it."""
    owners = {truth.resource_id: truth for truth in truths}
    about: dict[str, list[AccountLine]] = defaultdict(list)
    for line in lines:
        about[line.resource_id].append(line)
    findings = []
    for resource_id, found in sorted(about.items()):
        outside_aws = resource_id.split(":", 1)[0] in PROVIDERS
        holder = holders.get(resource_id, ACCOUNT_ID if outside_aws else "no account")
        mixed = [line for line in found if line.account != holder]
        truth = owners.get(resource_id)
        kinds = ", ".join(f"{n} {what}" for what, n in sorted(_counts(found).items()))
        if mixed:
            first = mixed[0]
            detail = (
                f"held by {holder}; {len(mixed)} of {len(found)} lines under another account, the first a "
                f"{first.what} under {first.account}"
            )
        else:
            detail = f"held by {holder}: {kinds}, all under it"
        findings.append(
            Finding(
                ACCOUNTS_APART,
                "wrong" if mixed else "correct",
                truth.user if truth else "?",
                truth.story if truth else "?",
                resource_id,
                mixed[0].at if mixed else None,
                detail,
            )
        )
    return findings


def _counts(lines: list[AccountLine]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for line in lines:
        counts[line.what] += 1
    return dict(counts)
