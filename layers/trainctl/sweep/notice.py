"""What the topic's readers see of a sweep that changed something: one message per owner, so that no owner's
notice is cut off by another's, each filterable by its `owner` attribute."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from trainctl.core.clock import format_instant
from trainctl.core.text import one_line
from trainctl.sweep.rules import Decision, SweepPlan

MAX_LINES = 200  # SNS messages stop at 256 KB; the ledger holds the full story
DETAIL_LIMIT = 1000  # per decision line; the ledger holds the rest


def changed(decisions: Sequence[Decision]) -> list[Decision]:
    return [d for d in decisions if d.action != "keep" or d.outcome == "failed"]


def sweep_message(plan: SweepPlan, decisions: Sequence[Decision], *, dry_run: bool) -> tuple[str, str]:
    moved = changed(decisions)
    counts: dict[str, int] = defaultdict(int)
    for decision in moved:
        counts[decision.action] += 1
    subject = "trainctl sweep: " + ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    lines = [
        f"trainctl cleanup sweep at {format_instant(plan.at)} ({'dry-run' if dry_run else 'enforced'})",
        f"scanned {plan.scanned} resources, {plan.in_scope} in scope",
        "",
    ]
    by_owner: dict[str, list[Decision]] = defaultdict(list)
    for decision in moved:
        # The owner is a tag anyone may write: shown escaped, it can never start a line of its own.
        by_owner[one_line(decision.owner) if decision.owner else "(no owner)"].append(decision)
    shown = 0
    for owner in sorted(by_owner):
        lines.append(f"owner {owner}:")
        for decision in by_owner[owner]:
            if shown >= MAX_LINES:
                break
            shown += 1
            why = one_line(",".join(decision.reasons), DETAIL_LIMIT) or "-"
            guard = f" protected by {one_line(','.join(decision.protections))}" if decision.protections else ""
            lines.append(
                f"  {decision.action:<9} {decision.resource_type:<8} {one_line(decision.resource_id)} "
                f"({one_line(decision.region)}) because {why}{guard}: {one_line(decision.outcome)}; "
                f"{one_line(decision.detail, DETAIL_LIMIT)}"
            )
    if len(moved) > shown:
        lines.append(f"... and {len(moved) - shown} more in the ledger")
    return subject[:100], "\n".join(lines)


def owner_messages(
    plan: SweepPlan, decisions: Sequence[Decision], *, dry_run: bool
) -> list[tuple[str | None, str, str]]:
    """(owner, subject, message) for each owner with news; a mark is a promise to that person in particular."""
    by_owner: dict[str | None, list[Decision]] = defaultdict(list)
    for decision in changed(decisions):
        by_owner[decision.owner].append(decision)
    # Every decision is named in some message: an owner with more news than one message holds gets several.
    return [
        (owner, *sweep_message(plan, mine[start : start + MAX_LINES], dry_run=dry_run))
        for owner, mine in sorted(by_owner.items(), key=lambda item: item[0] or "")
        for start in range(0, len(mine), MAX_LINES)
    ]
