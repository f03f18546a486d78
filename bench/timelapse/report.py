"""The time-lapse's figures: per promise, the resources acted on correctly, too late, too early and wrongly;
notices per resource and per mark; API calls per run of each function; and the dollars the fleet burned with
trainctl against the same fleet without it (trainctl's own stops, terminations and deletions undone), priced
from the shipped price file as the sweep's own DollarsAvoided figure is (spot at its on-demand price).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from bench.timelapse.harness import Record
from bench.timelapse.oracle import DESTRUCTIVE, Judgement
from trainctl.cost.prices.model import PriceKey, PriceNotFound
from trainctl.cost.prices.price_file import PriceFile, load_price_file
from trainctl.cost.rules import HOURS_PER_MONTH

REGION = "us-east-1"
# A change EC2 shows after a sweep acted on that resource (or on the instance a volume died with) is the sweep's.
ACTION_REACH = timedelta(minutes=20)
VERDICTS = ("correct", "too late", "too early", "wrong")
SECTION_HEADING = "## (f) Time-lapse: the deployed schedules for weeks"


@dataclass(frozen=True)
class Dollars:
    with_trainctl: float
    without_trainctl: float
    unpriced: tuple[str, ...]

    @property
    def saved(self) -> float:
        return self.without_trainctl - self.with_trainctl


def _hourly(prices: PriceFile, record: Record, resource_id: str) -> float | None:
    try:
        if resource_id in record.instance_types:
            return prices.price(PriceKey("instance", REGION, record.instance_types[resource_id])).cost(1)
        if resource_id in record.volume_sizes:
            size, volume_type = record.volume_sizes[resource_id]
            return prices.price(PriceKey("storage", REGION, volume_type)).cost(size) / HOURS_PER_MONTH
        size = record.snapshot_sizes[resource_id]
        return prices.price(PriceKey("snapshot", REGION, "standard")).cost(size) / HOURS_PER_MONTH
    except PriceNotFound:
        return None


def _billed(state: str) -> bool:
    return state in ("running", "exists")


def _cost(history: list[tuple[datetime, str]], end: datetime, hourly: float) -> float:
    hours = 0.0
    for (at, state), nxt in zip(history, [*history[1:], (end, "")], strict=True):
        if _billed(state):
            hours += (nxt[0] - at).total_seconds() / 3600
    return hours * hourly


def dollars(record: Record) -> Dollars:
    """Both bills from what EC2 showed: the second keeps each resource as it was before trainctl acted on it."""
    prices = load_price_file()
    acted: dict[str, list[datetime]] = defaultdict(list)
    for resource_id, decisions in record.decisions.items():
        for decision in decisions:
            if decision.action in DESTRUCTIVE and decision.outcome == "done":
                acted[resource_id].append(decision.at)

    def by_trainctl(resource_id: str, at: datetime) -> bool:
        causes = [resource_id, record.volume_instance.get(resource_id, "")]
        return any(a <= at <= a + ACTION_REACH for cause in causes for a in acted.get(cause, []))

    with_total = without_total = 0.0
    unpriced = []
    for resource_id, history in record.states.items():
        hourly = _hourly(prices, record, resource_id)
        if hourly is None:
            unpriced.append(resource_id)
            continue
        counterfactual: list[tuple[datetime, str]] = []
        for at, state in history:
            if counterfactual and by_trainctl(resource_id, at):
                continue  # without trainctl, the state before its action lasts until the next change of another
            counterfactual.append((at, state))
        with_total += _cost(history, record.end, hourly)
        without_total += _cost(counterfactual, record.end, hourly)
    return Dollars(round(with_total, 2), round(without_total, 2), tuple(unpriced))


def api_calls(record: Record) -> dict[str, tuple[int, float, int, int]]:
    """Per function: runs, mean, median and most calls per run."""
    per: dict[str, list[int]] = defaultdict(list)
    for invocation in record.invocations:
        per[invocation.function].append(invocation.api_calls)
    return {
        function: (len(calls), statistics.fmean(calls), int(statistics.median(calls)), max(calls))
        for function, calls in sorted(per.items())
    }


def stories(judgement: Judgement) -> list[str]:
    """The cast's stories, in the order the cast tells them (else those of the resources judged)."""
    return judgement.stories or list(dict.fromkeys(truth.story for truth in judgement.truths))


def notices_per_mark(judgement: Judgement) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for lives in judgement.marks.values():
        for life in lives:
            counts[life.notices] += 1
    return dict(sorted(counts.items()))


def text_report(record: Record, judgement: Judgement, *, wall_seconds: float | None = None) -> str:
    days = (record.end - record.start) / timedelta(days=1)
    runs = api_calls(record)
    lines = [
        f"time-lapse: seed {record.seed}, {days:g} days from {record.start:%Y-%m-%d %H:%M} UTC, "
        f"{len(judgement.truths)} resources of {len({t.user for t in judgement.truths})} users"
        + (f", {wall_seconds:.0f} s wall" if wall_seconds is not None else ""),
        "",
        "per promise (resources): " + " / ".join(VERDICTS),
    ]
    for promise, counts in sorted(judgement.by_promise().items()):
        lines.append(f"  {promise:<42} " + " / ".join(str(counts[v]) for v in VERDICTS))
    lines += [
        "",
        "notices per mark to one person (notices: marks): "
        + ", ".join(f"{n}: {m}" for n, m in notices_per_mark(judgement).items()),
    ]
    lines.append("marks and notices per resource:")
    for truth in judgement.truths:
        lives = judgement.marks.get(truth.resource_id, [])
        told = judgement.notices_per_resource.get(truth.resource_id, 0)
        lines.append(
            f"  {truth.user:<10} {truth.resource_id:<22} {truth.story:<45} marks {len(lives):>3}  notices {told:>3}"
        )
    lines += ["", "API calls per run (runs, mean, median, max):"]
    for function, (count, mean, median, most) in runs.items():
        lines.append(f"  {function:<18} {count:>5} runs  mean {mean:6.1f}  median {median:>4}  max {most:>4}")
    money = dollars(record)
    lines += [
        "",
        f"dollars burned: ${money.with_trainctl:,.2f} with trainctl, ${money.without_trainctl:,.2f} without "
        f"(saved ${money.saved:,.2f})" + (f"; unpriced: {', '.join(money.unpriced)}" if money.unpriced else ""),
    ]
    errors = record.errors()
    if errors:
        lines += ["", f"handler errors: {len(errors)}"]
        lines += [f"  {e.function} at {e.at:%Y-%m-%d %H:%M}: {e.error.splitlines()[0]}" for e in errors[:10]]
    if record.refused:
        lines += ["", f"calls the users made that AWS refused: {len(record.refused)}"]
        lines += [f"  {at:%Y-%m-%d %H:%M} {who}: {error}" for at, who, error in record.refused[:10]]
    failures = judgement.failures()
    lines += ["", f"findings that are not correct: {len(failures)}"]
    lines += [f"  {finding}" for finding in failures]
    return "\n".join(lines)


def markdown_section(record: Record, judgement: Judgement, *, command: str, wall_seconds: float | None = None) -> str:
    """The section bench/RESULTS.md carries (bench.results)."""
    days = (record.end - record.start) / timedelta(days=1)
    money = dollars(record)
    out = [
        SECTION_HEADING,
        "",
        f"`{command}`: {days:g} simulated days, seed {record.seed}, {len(judgement.truths)} resources of "
        f"{len({t.user for t in judgement.truths})} users (bench/timelapse/cast.py), the stack's own schedules "
        "and Lambda environment (enforcing), CloudTrail delivered 30 s to 15 min late (median 5)"
        + (f"; {wall_seconds / 60:.1f} minutes of wall time." if wall_seconds is not None else "."),
        "",
        "Stories: " + "; ".join(stories(judgement)) + ".",
        "",
        "| promise | correct | too late | too early | wrong |",
        "|---|---:|---:|---:|---:|",
    ]
    for promise, counts in sorted(judgement.by_promise().items()):
        out.append(f"| {promise} | " + " | ".join(str(counts[v]) for v in VERDICTS) + " |")
    per_mark = notices_per_mark(judgement)
    out += [
        "",
        "Notices per mark to one person, the tag's owner or the owner of record (notices: marks): "
        + (", ".join(f"{n}: {m}" for n, m in per_mark.items()) or "no marks")
        + f"; {len(record.notices)} notices in all.",
        "",
        "| function | runs | API calls per run: mean | median | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for function, (count, mean, median, most) in api_calls(record).items():
        out.append(f"| {function} | {count} | {mean:.1f} | {median} | {most} |")
    out += [
        "",
        f"Dollars burned: ${money.with_trainctl:,.2f} with trainctl, ${money.without_trainctl:,.2f} without "
        f"(saved ${money.saved:,.2f}), from the shipped price file.",
    ]
    failures = judgement.failures()
    if failures:
        out += ["", f"Findings that are not correct ({len(failures)}):", ""]
        out += [f"- {finding}" for finding in failures[:20]]
    return "\n".join(out) + "\n"
