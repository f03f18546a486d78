"""Issue 29: the time-lapse gains a second account. Three days of the deployed schedules with the small cast in the
hub and, beside it, a member account that joins the covered unit on the second day and is swept by the
organization run (organization_plan, then organization_sweep per item). Its people are named as the hub's are, and
its forgotten notebook is named as nora's in the hub: a mark, notice or ledger line that crossed would show.

The member's own events reach the hub through the organization bus once it is covered (its spot job reclaimed the
morning after the join, its launches stamped by age_guard through the spoke), and the organization's cost run prices
it at the cost schedule (its large GPU instance left running is a breach of its account's threshold).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from bench.timelapse.accounts import LARGE_GPU, ONBOARDED_STOP, accounts_report
from bench.timelapse.clock import deployed_stack
from bench.timelapse.harness import NoticeSeen, Record
from bench.timelapse.oracle import (
    ACCOUNTS_APART,
    BURN_TOLD,
    COST_LABELLED,
    STAMPED,
    AccountLine,
    Finding,
    Truth,
    judge,
    judge_accounts,
)
from bench.timelapse.report import text_report
from bench.timelapse.run import Run, time_lapse
from tests.conftest import CALLS

SEED = 29
DAYS = 3


@pytest.fixture(scope="module")
def two_accounts() -> Iterator[tuple[Run, list[str]]]:
    print(f"time-lapse seed {SEED}")
    before = len(CALLS.undeclared)
    # With the providers, as `python -m bench.timelapse` runs by default: their sweeps' ledger rows are the hub's.
    run = time_lapse(days=DAYS, seed=SEED, cast="small", organization=True, providers=True)
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
    assert len(members) == 6
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


# ---- the member's own events, through the organization bus ---------------------------------------------------


def member_truths(run: Run, user: str) -> list[Truth]:
    assert run.accounts is not None
    return [t for t in run.judgement.truths if t.account == run.accounts.member and t.user == user]


def test_the_members_events_reach_the_hub_only_once_it_is_covered_and_never_the_cost_check(
    two_accounts: tuple[Run, list[str]],
) -> None:
    run, _ = two_accounts
    seen = run.accounts
    assert seen is not None and seen.joined_at is not None
    forwarded = [i for i in run.record.invocations if i.trigger.startswith("forwarded ")]
    # Before the join its calls and state changes happened (its first people launched and tagged) and went nowhere.
    assert seen.not_forwarded > 0
    assert forwarded and min(i.at for i in forwarded) >= seen.joined_at
    assert {i.function for i in forwarded} == {"spot_interruption", "age_guard"}
    # Every forwarded run was judged the member's, none refused: the spoke's events are a covered account's.
    assert {(i.result or {}).get("account") for i in forwarded} == {seen.member}
    assert not [i for i in forwarded if (i.result or {}).get("status") == "refused"]
    # Launched before the join, nothing stamped them: their owner tag is their users' own.
    before = [t for t in run.judgement.truths if t.account == seen.member and t.stamp is None]
    assert before and not [t.resource_id for t in before if t.resource_id in run.record.stamps]


def test_the_members_launches_after_the_join_are_stamped_in_the_member_by_their_creator(
    two_accounts: tuple[Run, list[str]],
) -> None:
    run, _ = two_accounts
    assert run.accounts is not None
    stamped = [f for f in run.judgement.findings if f.promise == STAMPED]
    assert sorted((f.user, f.verdict) for f in stamped) == [("spencer", "correct"), ("stan", "correct")], named(stamped)
    for truth in member_truths(run, "stan") + member_truths(run, "spencer"):
        _, owner, created_by = run.record.stamps[truth.resource_id]
        assert owner == truth.user
        assert created_by == f"arn:aws:iam::{run.accounts.member}:role/MLTeam session {truth.user}"
    # The hub has its own spencer and stan: none of their resources carries a stamp naming the member.
    hub_stamps = [r for r, (_, _, by) in run.record.stamps.items() if run.accounts.holders.get(r) == run.accounts.hub]
    assert not [r for r in hub_stamps if run.accounts.member in (run.record.stamps[r][2] or "")]


def test_a_members_spot_job_is_checkpointed_and_snapshotted_in_the_member_within_two_minutes(
    two_accounts: tuple[Run, list[str]],
) -> None:
    run, _ = two_accounts
    seen = run.accounts
    assert seen is not None
    [job] = member_truths(run, "spencer")
    [warned] = job.spot_warnings
    told = [f for f in run.judgement.findings if f.promise == "a spot warning is handled and told"]
    assert [f.verdict for f in told if f.resource_id == job.resource_id] == ["correct"], named(told)
    [handled] = [
        i
        for i in run.record.invocations
        if i.function == "spot_interruption"
        and (i.result or {}).get("instance_id") == job.resource_id
        and (i.result or {}).get("kind") == "warning"
    ]
    result = handled.result or {}
    assert result["status"] == "handled" and result["account"] == seen.member and result["why_dry_run"] is None
    steps = {s["step"]: s for s in result["steps"]}
    assert steps["checkpoint-command"]["outcome"] == "done" and steps["snapshot"]["outcome"] == "done"
    # Within the warning's two minutes, counting EventBridge's delivery.
    assert handled.at - warned + timedelta(milliseconds=steps["snapshot"]["at_ms"]) < timedelta(minutes=2)
    [snapshot] = [s["snapshot_id"] for s in result["snapshots"]]
    assert seen.holders[snapshot] == seen.member  # the snapshot is in the member, none in the hub
    [notice] = [n for n in run.record.notices if n.kind == "spot" and job.resource_id in n.resources]
    assert notice.label == seen.member and notice.owner == "spencer"
    rows = [
        line for line in run.account_lines if line.what == "ledger spot row" and line.resource_id == job.resource_id
    ]
    assert [line.account for line in rows] == [seen.member]


# ---- the organization's cost run -------------------------------------------------------------------------------


def test_the_cost_run_prices_the_member_per_account_as_its_inventory_says_once_it_is_covered(
    two_accounts: tuple[Run, list[str]],
) -> None:
    run, _ = two_accounts
    seen = run.accounts
    assert seen is not None and seen.joined_at is not None
    period = timedelta(minutes=15)  # cdk.json leaves cost_schedule at its default, rate(15 minutes)
    assert len(seen.cost_runs) == DAYS * timedelta(days=1) // period
    assert {r.covered for r in seen.cost_runs if r.at < seen.joined_at} == {()}
    after = [r for r in seen.cost_runs if r.at > seen.joined_at]
    assert {r.covered for r in after} == {(seen.member,)}  # the hub's own account is never a child
    compared = [r for r in after if r.member_expected_usd is not None]
    assert len(compared) > len(after) * 0.9
    for r in compared:
        assert r.accounts[seen.member]["hourly_usd"] == pytest.approx(r.member_expected_usd, abs=1e-3), r.at
    # The large GPU instance is in it while it runs: the member's burn rose by its price, and fell once it stopped.
    burns = [float(r.accounts[seen.member]["hourly_usd"]) for r in after]
    assert max(burns) - min(burns) > 20.0, LARGE_GPU


def test_a_breach_in_the_member_is_told_within_one_cost_period_under_the_members_account(
    two_accounts: tuple[Run, list[str]],
) -> None:
    run, _ = two_accounts
    seen = run.accounts
    assert seen is not None
    told = [f for f in run.judgement.findings if f.promise == BURN_TOLD]
    assert [(f.user, f.verdict) for f in told] == [("stan", "correct")], named(told)
    breach = f"org:account:{seen.member}:daily"
    notices = [n for n in run.record.notices if n.breach == breach and "cleared" not in n.title]
    assert notices and {n.label for n in notices} == {seen.member}
    # The hub's own cost check speaks of the hub only: no notice of its breaches under the member.
    assert not [n for n in run.record.notices if n.kind == "cost" and n.label == seen.member and n.breach != breach]


def test_every_cost_notice_of_an_accounts_breach_carries_that_account_its_clearing_too(
    two_accounts: tuple[Run, list[str]],
) -> None:
    run, _ = two_accounts
    assert run.accounts is not None
    labelled = [f for f in run.judgement.findings if f.promise == COST_LABELLED]
    # The member's breach was cleared once the sweep stopped the instance: there was a clearing to label.
    cleared = f"trainctl cost: cleared org:account:{run.accounts.member}:daily"
    assert [n for n in run.record.notices if n.title == cleared]
    assert labelled and not [f for f in labelled if f.verdict != "correct"], named(labelled)


def test_the_oracle_sees_a_cost_notice_under_the_wrong_account(two_accounts: tuple[Run, list[str]]) -> None:
    """The same run with the member's first breach notice relabelled as the hub's: the check is not blind."""
    run, _ = two_accounts
    assert run.accounts is not None
    member = run.accounts.member
    notices = list(run.record.notices)

    def mislabelled(notices: list[NoticeSeen]) -> list[Finding]:
        record = Record(**{**vars(run.record), "notices": notices})
        findings = judge(record, run.judgement.truths, deployed_stack()).findings
        return [f for f in findings if f.promise == COST_LABELLED and f.verdict != "correct"]

    assert mislabelled(notices) == []
    index = next(n for n, seen in enumerate(notices) if seen.label == member and seen.kind == "cost")
    notices[index] = replace(notices[index], label=run.accounts.hub, account=run.accounts.hub)
    wrong = mislabelled(notices)
    assert [f.resource_id for f in wrong] == [f"org:account:{member}:daily"]
    assert f"under {run.accounts.hub}" in wrong[0].detail


def test_a_providers_resource_is_held_to_the_hubs_account_which_sweeps_it() -> None:
    """RunPod's and Lyceum's resources are in no account's EC2: the hub's deployment sweeps them, so their lines are
    the hub's, and one under a member's account is wrong."""
    hub, member = "123456789012", "210987654321"
    pod = Truth("ana", "forgotten RunPod pod", "runpod:pod1", "instance")
    lines = [AccountLine("sweep decision", "runpod:pod1", hub), AccountLine("sweep notice", "runpod:pod1", hub)]
    [held] = judge_accounts([pod], {}, lines)
    assert held.verdict == "correct" and f"held by {hub}" in held.detail
    [crossed] = judge_accounts([pod], {}, [*lines, AccountLine("ledger resource row", "runpod:pod1", member)])
    assert crossed.verdict == "wrong" and f"a ledger resource row under {member}" in crossed.detail
