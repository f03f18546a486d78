"""Issue 24 item 4: fourteen days of the deployed schedules (a sweep every hour, a cost check every 15 minutes)
on a simulated clock, with CloudTrail minutes late and a small cast of users, judged by the oracle of
bench/timelapse/oracle.py. A failure names the user, the resource and the simulated instant; the seed is printed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.timelapse.oracle import Finding
from bench.timelapse.report import text_report
from bench.timelapse.run import Run, time_lapse
from tests.conftest import CALLS

SEED = 24
DAYS = 14


@pytest.fixture(scope="module")
def fortnight() -> Iterator[tuple[Run, list[str]]]:
    print(f"time-lapse seed {SEED}")
    before = len(CALLS.undeclared)
    run = time_lapse(days=DAYS, seed=SEED, cast="small")
    print(text_report(run.record, run.judgement, wall_seconds=run.wall_seconds))
    yield run, CALLS.undeclared[before:]


def named(findings: list[Finding]) -> str:
    return f"seed {SEED}, {DAYS} days:\n" + "\n".join(f"  {finding}" for finding in findings)


def test_every_handler_run_succeeds_and_calls_only_what_it_declares(fortnight: tuple[Run, list[str]]) -> None:
    run, undeclared = fortnight
    errors = [f"  {i.function} at {i.at:%Y-%m-%dT%H:%M:%SZ} ({i.trigger}): {i.error}" for i in run.record.errors()]
    assert not errors, f"seed {SEED}:\n" + "\n".join(errors)
    assert not sorted(set(undeclared)), "\n".join(sorted(set(undeclared)))


def test_nothing_in_use_is_stopped_or_destroyed(fortnight: tuple[Run, list[str]]) -> None:
    run, _ = fortnight
    wrong = [f for f in run.judgement.findings if f.verdict == "wrong" and "notices" not in f.promise]
    assert not wrong, named(wrong)


def test_every_idle_instance_is_stopped_by_its_bound(fortnight: tuple[Run, list[str]]) -> None:
    run, _ = fortnight
    idle = [f for f in run.judgement.findings if f.promise == "idle instance stopped"]
    assert idle, "the cast has a forgotten notebook: its promise must be judged"
    late = [f for f in idle if f.verdict != "correct"]
    assert not late, named(late)


def test_at_most_two_notices_per_mark(fortnight: tuple[Run, list[str]]) -> None:
    run, _ = fortnight
    chatty = [f for f in run.judgement.findings if f.promise == "at most two notices per mark"]
    assert not chatty, named(chatty)
    assert run.judgement.marks, "the cast's forgotten resources are marked"


def test_each_spot_warning_is_handled_and_told(fortnight: tuple[Run, list[str]]) -> None:
    run, _ = fortnight
    spot = [f for f in run.judgement.findings if f.promise == "a spot warning is handled and told"]
    assert len(spot) == 2, named(spot)
    assert all(f.verdict == "correct" for f in spot), named(spot)
