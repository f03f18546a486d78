"""Issue 29: the time-lapse gains a second account. Three days of the deployed schedules with the small cast in the
hub and, beside it, a member account that joins the covered unit on the second day and is swept by the
organization run (organization_plan, then organization_sweep per item). Its people are named as the hub's are, and
its forgotten notebook is named as nora's in the hub: a mark, notice or ledger line that crossed would show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from bench.timelapse.accounts import ONBOARDED_STOP, accounts_report
from bench.timelapse.oracle import ACCOUNTS_APART, Finding, judge_accounts
from bench.timelapse.report import text_report
from bench.timelapse.run import Run, time_lapse
from tests.conftest import CALLS

SEED = 29
DAYS = 3


@pytest.fixture(scope="module")
def two_accounts() -> Iterator[tuple[Run, list[str]]]:
    print(f"time-lapse seed {SEED}")
    before = len(CALLS.undeclared)
    run = time_lapse(days=DAYS, seed=SEED, cast="small", organization=True)
    assert run.accounts is not None
    print(text_report(run.record, run.judgement, wall_seconds=run.wall_seconds))
    print("\n".join(accounts_report(run.accounts, run.account_lines)))
    yield run, CALLS.undeclared[before:]


def named(findings: list[Finding]) -> str:
    return f"seed {SEED}, {DAYS} days:\n" + "\n".join(f"  {finding}" for finding in findings)


def test_every_handler_run_succeeds_the_organization_run_included_and_calls_only_what_it_declares(
    two_accounts: tuple[Run, list[str]],
) -> None:
    run, undeclared = two_accounts
    errors = [f"  {i.function} at {i.at:%Y-%m-%dT%H:%M:%SZ} ({i.trigger}): {i.error}" for i in run.record.errors()]
    assert not errors, f"seed {SEED}:\n" + "\n".join(errors)
    assert not sorted(set(undeclared)), "\n".join(sorted(set(undeclared)))
    functions = {i.function for i in run.record.invocations}
    assert {"organization_plan", "organization_sweep"} <= functions


def test_nothing_of_one_account_lands_in_the_other(two_accounts: tuple[Run, list[str]]) -> None:
    run, _ = two_accounts
    assert run.accounts is not None
    apart = [f for f in run.judgement.findings if f.promise == ACCOUNTS_APART]
    mixed = [f for f in apart if f.verdict != "correct"]
    assert not mixed, named(mixed)
    member = run.accounts.member
    members = {t.resource_id for t in run.judgement.truths if t.account == member}
    assert len(members) == 4
    # The member's resources were spoken of in every way the check reads, so that mixing could have shown.
    kinds = {line.what for line in run.account_lines if line.resource_id in members}
    assert {"sweep decision", "sweep notice", "mark tag", "ledger resource row", "ledger row's sweep"} <= kinds
    # Every resource trainctl spoke of is judged, in both accounts (the member's busy boxes never are spoken of).
    assert {f.resource_id for f in apart} == {line.resource_id for line in run.account_lines}
    # Same names in both accounts: nora's notebook in the hub and in the member.
    noras = {t.account for t in run.judgement.truths if t.user == "nora" and t.kind == "instance"}
    assert noras == {run.accounts.hub, member}
    # The hub's own account is never a child of the organization run, nor a member's partition in the ledger.
    assert {c.account for c in run.accounts.children} == {member}
    assert run.accounts.hub_partition_rows == 0


def test_nothing_is_stopped_or_destroyed_wrongly_in_either_account(two_accounts: tuple[Run, list[str]]) -> None:
    run, _ = two_accounts
    failures = run.judgement.failures()
    assert not failures, named(failures)


def test_the_members_forgotten_notebook_is_stopped_within_its_bound_after_the_onboarding_dry_run(
    two_accounts: tuple[Run, list[str]],
) -> None:
    run, _ = two_accounts
    seen = run.accounts
    assert seen is not None and seen.joined_at is not None
    period = timedelta(hours=1)  # cdk.json's sweep_schedule, which the organization run shares
    assert not [c for c in seen.children if c.at < seen.joined_at], "the member was swept before it joined"
    onboarding = seen.onboarding()
    assert onboarding is not None and onboarding is seen.children[0]
    assert onboarding.dry_run and seen.joined_at < onboarding.at <= seen.joined_at + period
    [notebook] = [t for t in run.judgement.truths if t.account == seen.member and t.user == "nora"]
    assert notebook.resource_id in onboarding.candidates  # the report names it
    # The dry-run report wrote nothing and told no one: the first mark, notice and tag come after it.
    said = [line for line in run.account_lines if line.resource_id == notebook.resource_id and line.at is not None]
    assert said and min(line.at for line in said if line.at is not None) > onboarding.at
    stopped = [f for f in run.judgement.findings if f.promise == ONBOARDED_STOP]
    assert [f.verdict for f in stopped] == ["correct"], named(stopped)
    assert stopped[0].resource_id == notebook.resource_id


def test_the_oracle_sees_a_line_written_under_the_wrong_account(two_accounts: tuple[Run, list[str]]) -> None:
    """The same run's lines with one member notice relabelled as the hub's: the check is not blind."""
    run, _ = two_accounts
    assert run.accounts is not None
    member = run.accounts.member
    lines = list(run.account_lines)
    index = next(n for n, line in enumerate(lines) if line.what == "sweep notice" and line.account == member)
    lines[index] = replace(lines[index], account=run.accounts.hub)
    judged = judge_accounts(run.judgement.truths, run.accounts.holders, lines)
    wrong = [f for f in judged if f.verdict == "wrong"]
    assert [f.resource_id for f in wrong] == [lines[index].resource_id]
    assert f"a sweep notice under {run.accounts.hub}" in wrong[0].detail
