"""What the topic's readers see of a sweep that changed something: one notice per owner, so that no owner's
notice is cut off by another's, each filterable by its `owner` attribute and rendered per channel."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.notices import NO_OWNER, Notice, Severity, digest
from trainctl.core.text import counted, one_line, shell_word
from trainctl.sweep.rules import Decision, SweepPlan

MAX_LINES = 200  # SNS messages stop at 256 KB; the ledger holds the full story
DETAIL_LIMIT = 1000  # per decision line; the ledger holds the rest


def changed(decisions: Sequence[Decision]) -> list[Decision]:
    return [d for d in decisions if d.action != "keep" or d.outcome in ("failed", "warned")]


def decision_line(decision: Decision) -> str:
    why = one_line(",".join(decision.reasons), DETAIL_LIMIT) or "-"
    guard = f" protected by {one_line(','.join(decision.protections))}" if decision.protections else ""
    return (
        f"{decision.action:<9} {decision.resource_type:<8} {one_line(decision.resource_id)} "
        f"({one_line(decision.region)}) because {why}{guard}: {one_line(decision.outcome)}; "
        f"{one_line(decision.detail, DETAIL_LIMIT)}"
    )


def report_command(owner: str | None) -> str:
    """The report of this owner's resources, as they would type it; a name a shell would misread is quoted, and
    one that cannot stand for itself (a control character) is left for the reader to fill in."""
    word = shell_word(owner or NO_OWNER)
    if word is None:
        return f"trainctl report --since 1d --owner NAME (NAME as the {tags.OWNER} tag holds it)"
    return f"trainctl report --since 1d --owner {word}"


def next_steps(decisions: Sequence[Decision], *, dry_run: bool, owner: str | None) -> tuple[str, ...]:
    """What the reader can do about this news, in the words of the tags and commands they already use."""
    actions = {d.action for d in decisions}
    protections = {p for d in decisions for p in d.protections}
    steps: list[str] = []
    if dry_run:
        steps.append("This was a dry-run: nothing was changed. A deployed sweep acts once TRAINCTL_DRY_RUN=false.")
    if "mark" in actions:
        steps.append(
            f"To keep a marked resource, use it (attach the volume, start the instance) or tag it "
            f"{tags.PERSISTENT}=true before the time in its {tags.CLEANUP_AFTER} tag."
        )
    if actions & {"stop", "terminate", "delete"}:
        steps.append(f"Each action is in the ledger with its reason: {report_command(owner)}.")
    if "managed-elsewhere" in protections:
        steps.append("Resources an Auto Scaling group or another service manages are yours to scale down there.")
    if any(d.outcome in ("failed", "unannounced") for d in decisions):
        steps.append("Failed actions are tried again at the next sweep; the function's log says why each failed.")
    if owner is None:
        steps.append(f"Resources without {tags.OWNER} are reported to everyone: tag them with their owner.")
    return tuple(steps)


def owner_notice(
    plan: SweepPlan, decisions: Sequence[Decision], *, dry_run: bool, sweep_id: str, owner: str | None
) -> Notice:
    """One owner's news from one sweep; `decisions` are theirs (at most MAX_LINES)."""
    counts: dict[str, int] = defaultdict(int)
    for decision in decisions:
        counts[decision.action] += 1
    done = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    # The owner is a tag anyone may write: shown escaped, it can never start a line of its own.
    whose = one_line(owner, 64) if owner else "no owner"
    severity: Severity = "info"
    if any(d.destructive and d.outcome == "done" for d in decisions):
        severity = "warning"
    if any(d.outcome == "failed" for d in decisions):
        severity = "critical"
    return Notice(
        kind="sweep",
        title=f"trainctl sweep: {done} ({whose})",
        summary=(
            f"Cleanup sweep at {format_instant(plan.at)} ({'dry-run' if dry_run else 'enforced'}): scanned "
            f"{counted(plan.scanned, 'resource')}, {plan.in_scope} in scope; for {whose}: {done}."
        ),
        lines=tuple(decision_line(d) for d in decisions),
        next_steps=next_steps(decisions, dry_run=dry_run, owner=owner),
        owner=owner,
        severity=severity,
        # One chat thread per sweep and owner: an owner's several messages from one sweep stay together.
        thread=f"trainctl-sweep-{digest(sweep_id)}-{digest(owner or NO_OWNER)}",
        resources=tuple(one_line(d.resource_id) for d in decisions),
        facts={"sweep_id": one_line(sweep_id), "at": format_instant(plan.at), "dry_run": str(dry_run).lower()},
    )


def owner_notices(plan: SweepPlan, decisions: Sequence[Decision], *, dry_run: bool, sweep_id: str) -> list[Notice]:
    """A notice for each owner with news; a mark is a promise to that person in particular."""
    by_owner: dict[str | None, list[Decision]] = defaultdict(list)
    for decision in changed(decisions):
        # The tag's owner and every owner of record: a tag anyone may rewrite never silences the resource's maker.
        for owner in dict.fromkeys([decision.owner, *decision.also_tell]):
            by_owner[owner].append(decision)
    # Every decision is named in some notice: an owner with more news than one notice holds gets several.
    return [
        owner_notice(plan, mine[start : start + MAX_LINES], dry_run=dry_run, sweep_id=sweep_id, owner=owner)
        for owner, mine in sorted(by_owner.items(), key=lambda item: item[0] or "")
        for start in range(0, len(mine), MAX_LINES)
    ]
