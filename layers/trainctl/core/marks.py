"""What a mark says, and when trainctl may trust it.

A mark (`trainctl:cleanup-after`) is trainctl's promise to a person: "after this instant, unless things change,
this action". Anyone allowed to tag can write the tag, so the tag alone proves nothing. A sweep acts only on a
mark its own ledger recorded, for the same instant and the same announced action, and only if every enforced
sweep since then saw the resource still a candidate and nobody used it in between. Anything else earns a fresh
mark and a full grace period. Pure: tags and ledger entries in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, NamedTuple

from trainctl.core import tags
from trainctl.core.clock import parse_instant
from trainctl.core.durations import format_duration

if TYPE_CHECKING:  # only named: age_guard reads AGE_GUARD from here without loading the resource model
    from trainctl.core.resources import Resource

# Who records the uses CloudTrail reports (age_guard), beside the sweeps' own lines.
AGE_GUARD = "age_guard"
# What a sweep records for a marked resource it saw nothing of, either way (no utilisation datapoints).
UNOBSERVED = "unobserved"


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class TagMark(NamedTuple):
    """What the cleanup-after tag says: absent, an instant, or something unreadable."""

    present: bool
    at: datetime | None = None
    unreadable: str = ""


def read_mark(resource: Resource) -> TagMark:
    raw = resource.tags.get(tags.CLEANUP_AFTER)
    if raw is None:
        return TagMark(False)
    try:
        return TagMark(True, parse_instant(raw))
    except ValueError as exc:
        # Never trusted, never a crash: the resource gets a fresh mark of trainctl's own.
        return TagMark(True, None, str(exc))


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One line of a resource's history in the ledger: what a sweep (or the stamping function) recorded."""

    at: datetime
    recorded_by: str  # a sweep id, or "age_guard"
    action: str
    outcome: str
    candidate: bool  # the sweep found a reason to act and no protection
    cleanup_after: datetime | None = None
    announced: str | None = None
    detail: str = ""
    owner: str | None = None  # the trainctl:owner the resource carried when this was recorded
    protections: tuple[str, ...] = ()


class RecordedSweep(NamedTuple):
    """An enforced sweep the ledger recorded: when it ran."""

    at: datetime
    sweep_id: str


def distrust(
    tag_at: datetime,
    intended: str,
    history: Sequence[LedgerEntry],
    sweeps: Sequence[RecordedSweep],
    *,
    now: datetime,
    max_gap: timedelta | None = None,
    owner: str | None = None,
) -> str | None:
    """Why the mark on a resource cannot be acted on, or None when trainctl may keep its promise.

    `history` is the resource's ledger entries, newest first; `sweeps` the enforced sweeps recorded since
    (any order). The mark must be trainctl's (recorded, done), for the instant the tag names and the action
    about to be taken; after it, every recorded sweep saw the resource as a candidate and nothing unmarked it.
    """
    seen_since: set[str] = set()
    accounted: set[str] = set()
    marks = [e for e in history if e.action == "mark" and e.outcome == "done"]
    if marks:
        # The ledger keeps whole seconds: a use in the mark's own second may sort either side of it, and the
        # sweep read the resource before it marked it, so such a use came after what the sweep saw.
        marked_second = marks[0].at.replace(microsecond=0)
        same_second_use = any(
            e.recorded_by == AGE_GUARD and e.at.replace(microsecond=0) == marked_second for e in history
        )
        if same_second_use:
            return "it was used in the second it was marked"
    for entry in history:
        if entry.action == "mark" and entry.outcome == "done":
            if entry.cleanup_after != tag_at:
                return "the mark on it is not the one trainctl wrote"
            if entry.announced != intended:
                return f"its mark announced {entry.announced or 'a warning'}, not {intended}"
            if entry.owner != owner:
                # The notice went to the owner of that day: whoever owns it now has not been told.
                return "its owner changed since it was marked"
            # The ledger keeps whole seconds: a sweep is later than the mark if it is not the marking sweep itself.
            marked_at = entry.at.replace(microsecond=0)
            missed = sorted(
                s.at
                for s in sweeps
                if s.at.replace(microsecond=0) >= marked_at
                and s.sweep_id != entry.recorded_by
                and s.sweep_id not in seen_since
                and s.sweep_id not in accounted
            )
            if missed:
                return f"it was not seen as a candidate by the sweep at {missed[0]:%Y-%m-%dT%H:%MZ}"
            if max_gap is None:
                return None
            # Use nobody hears of (a running instance's work) needs watching: no stretch longer than max_gap unseen.
            seen = sorted([entry.at, *(e.at for e in history if e.recorded_by in seen_since), now])
            longest = max(later - earlier for earlier, later in pairwise(seen))
            if longest > max_gap:
                return f"no sweep saw it for {format_duration(longest)} since it was marked"
            return None
        if entry.action == "unmark" or (entry.recorded_by == AGE_GUARD and entry.action != "mark"):
            return entry.detail or "it was used or taken out of scope since it was marked"
        if entry.outcome == UNOBSERVED:
            # A sweep that saw nothing either way: not missed, but no sighting for the gap rule either.
            accounted.add(entry.recorded_by)
            continue
        if not entry.candidate:
            return "it stopped being a candidate since it was marked"
        seen_since.add(entry.recorded_by)
    return "trainctl's ledger has no record of that mark"
