"""Issue 24 item 4: fourteen days of the deployed schedules (a sweep every hour, a cost check every 15 minutes)
on a simulated clock, with CloudTrail minutes late and a small cast of users, judged by the oracle of
bench/timelapse/oracle.py. A failure names the user, the resource and the simulated instant; the seed is printed.

Issue 27's pre-warm from a snapshot (a restore kept as pre-warming while EBS initialises it, one abandoned) and
issue 25's owners of record (a colleague rewriting the owner of a marked notebook) are stories of the cast.
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
PREWARMING = "never marked while pre-warming"
OWNER_OF_RECORD = "the owner of record is told of the action"


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
    judged_apart = ("notices", PREWARMING, OWNER_OF_RECORD)
    wrong = [
        f for f in run.judgement.findings if f.verdict == "wrong" and not any(p in f.promise for p in judged_apart)
    ]
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


def test_a_restore_is_never_marked_while_it_pre_warms_and_deleted_once_forgotten(
    fortnight: tuple[Run, list[str]],
) -> None:
    run, _ = fortnight
    quiet = [f for f in run.judgement.findings if f.promise == PREWARMING]
    assert len(quiet) == 2, named(quiet)  # the restore the workflow reported on, and the abandoned one
    assert all(f.verdict == "correct" for f in quiet), named(quiet)
    restores = {f.resource_id for f in quiet}
    deleted = [
        f for f in run.judgement.findings if f.resource_id in restores and f.promise == "unattached volume deleted"
    ]
    assert len(deleted) == 2, named(deleted)
    assert all(f.verdict == "correct" for f in deleted), named(deleted)


def test_the_owner_of_record_hears_of_the_action_after_a_colleague_rewrites_the_owner(
    fortnight: tuple[Run, list[str]],
) -> None:
    run, _ = fortnight
    told = [f for f in run.judgement.findings if f.promise == OWNER_OF_RECORD]
    assert told, "the colleague rewrote the owner of the marked notebook: its stop must be judged"
    assert all(f.verdict == "correct" for f in told), named(told)
    notebook = {f.resource_id for f in told}
    stopped = [f for f in run.judgement.findings if f.resource_id in notebook and f.promise == "idle instance stopped"]
    assert all(f.verdict == "correct" for f in stopped), named(stopped)
