"""Promises a mutation check broke without any test noticing (issue 25), each now held by a test of its own.

Each test's docstring names the break it catches: the one-line change to the safety code that, applied alone,
makes that test fail. `make mutate` keeps watching for new ones (bench/RESULTS.md, "Mutation testing").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.unit.builders import LONG_AGO, NOW, instance, inventory, snapshot, volume
from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.marks import LedgerEntry, distrust
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.protections import (
    LAUNCH_ATTACH_SLACK,
    Protection,
    made_by_launch,
    must_outlive,
    volumes_dying_with,
    volumes_left_behind,
)
from trainctl.core.resources import BlockDevice, Guards
from trainctl.core.settings import SweepSettings
from trainctl.handwork.instances import check_termination
from trainctl.sweep.rules import Decision, Observations, apply_guards, plan_sweep
from trainctl.sweep.run import vouch_for_marks

SETTINGS = SweepSettings(regions=("us-east-1",), dry_run=False, max_action_share=1.0)
MARKED_AT = NOW - timedelta(days=2)
DUE = MARKED_AT + timedelta(days=1)


def _mark(announced: str, *, owner: str | None = "alice") -> LedgerEntry:
    return LedgerEntry(
        at=MARKED_AT,
        recorded_by="sweep-1",
        action="mark",
        outcome="done",
        candidate=True,
        cleanup_after=DUE,
        announced=announced,
        owner=owner,
    )


# core/marks.py: distrust ---------------------------------------------------------------------------------------


def test_a_mark_that_announced_a_stop_is_not_trusted_for_a_terminate() -> None:
    """Break: `if entry.announced != intended` dropped from distrust (core/marks.py): a mark that announced "stop"
    would be carried out as a terminate, since the ledger row matches in every other way."""
    history = [_mark("stop")]
    why = distrust(DUE, "terminate", history, [], now=NOW, owner="alice")
    assert why == "its mark announced stop, not terminate"
    # Only the announced action stands in the way: the same mark is trusted for the action it announced.
    assert distrust(DUE, "stop", history, [], now=NOW, owner="alice") is None


def test_a_mark_that_announced_nothing_is_not_trusted_for_any_action() -> None:
    """Break: the announced-action check dropped from distrust (core/marks.py): a warning-only mark (no announced
    action) would be acted on."""
    why = distrust(DUE, "delete", [replace(_mark("stop"), announced=None)], [], now=NOW, owner="alice")
    assert why == "its mark announced a warning, not delete"


def test_a_use_heard_in_the_second_a_mark_was_written_voids_it_whichever_way_the_ledger_sorts_them() -> None:
    """Break: the same-second check dropped from distrust (core/marks.py, e.g. `marks = None` or the "mark"/"done"
    filter changed, as mutmut found): a volume attached in the very second the sweep marked it, sorted by the
    ledger's whole seconds just before the mark, would be deleted on that mark."""
    mark = replace(_mark("delete"), at=MARKED_AT.replace(microsecond=500_000))
    attached = LedgerEntry(
        at=MARKED_AT.replace(microsecond=200_000),
        recorded_by="age_guard",
        action="attach",
        outcome="heard",
        candidate=False,
    )
    assert distrust(DUE, "delete", [mark, attached], [], now=NOW, owner="alice") == (
        "it was used in the second it was marked"
    )
    # A use a second earlier is before the sweep read the resource: the mark stands.
    earlier = replace(attached, at=MARKED_AT - timedelta(seconds=1))
    assert distrust(DUE, "delete", [mark, earlier], [], now=NOW, owner="alice") is None


def test_an_idle_mark_no_sweep_looked_at_for_longer_than_the_window_is_not_trusted() -> None:
    """Break (mutmut, core/marks.py distrust): the gap rule's reason built from None (`format_duration(None)`), which
    raises in the sweep instead of naming the gap, or its bound moved (`>` made `>=`): a running instance nobody saw
    idle for two days would be stopped on a two-day-old look, or the sweep would crash on it."""
    history = [_mark("stop")]
    why = distrust(DUE, "stop", history, [], now=NOW, max_gap=timedelta(hours=1), owner="alice")
    assert why == "no sweep saw it for 2d since it was marked"
    # Seen exactly the window apart is seen often enough.
    assert distrust(DUE, "stop", history, [], now=NOW, max_gap=NOW - MARKED_AT, owner="alice") is None


# sweep/rules.py: apply_guards ----------------------------------------------------------------------------------


def _destructive(resource_id: str, resource_type: str, action: str) -> Decision:
    return Decision(
        resource_id,
        resource_type,
        "us-east-1",
        action,  # type: ignore[arg-type]
        reasons=("stopped-too-long",),
        cleanup_after=DUE,
        keep_volumes=(("vol-data", "/dev/sdf"),),
        hibernate=action == "stop",
    )


def test_ec2_termination_protection_keeps_an_instance_and_takes_its_mark_away() -> None:
    """Break: the termination-protection guard dropped from apply_guards (sweep/rules.py): a terminate of an
    instance EC2 protects would go ahead (and fail at EC2) instead of being kept and unmarked by name."""
    terminate = _destructive("i-guarded", "instance", "terminate")
    [guarded] = apply_guards([terminate], Guards(termination_protected=frozenset({"i-guarded"})))
    assert guarded.action == "unmark" and not guarded.destructive
    assert Protection.TERMINATION_PROTECTED in guarded.protections
    assert guarded.detail == "termination protection is on"
    assert guarded.keep_volumes == () and guarded.hibernate is False
    # Termination protection does not guard a stop, and stop protection does not guard a terminate.
    stop = _destructive("i-guarded", "instance", "stop")
    assert apply_guards([stop], Guards(termination_protected=frozenset({"i-guarded"}))) == [stop]
    assert apply_guards([terminate], Guards(stop_protected=frozenset({"i-guarded"}))) == [terminate]


def test_ec2_stop_protection_keeps_an_instance_from_a_stop() -> None:
    """Break: the stop-protection guard dropped from apply_guards (sweep/rules.py)."""
    stop = _destructive("i-guarded", "instance", "stop")
    [guarded] = apply_guards([stop], Guards(stop_protected=frozenset({"i-guarded"})))
    assert guarded.action == "unmark" and Protection.TERMINATION_PROTECTED in guarded.protections
    assert guarded.detail == "stop protection is on"


def test_a_snapshot_shared_with_another_account_is_kept_and_unmarked() -> None:
    """Break: the shared-snapshot guard dropped from apply_guards (sweep/rules.py): a snapshot another account
    restores from would be deleted under it."""
    delete = _destructive("snap-shared", "snapshot", "delete")
    other = _destructive("snap-mine", "snapshot", "delete")
    guarded, untouched = apply_guards([delete, other], Guards(shared_snapshots=frozenset({"snap-shared"})))
    assert guarded.action == "unmark" and Protection.SHARED_SNAPSHOT in guarded.protections
    assert guarded.detail == "shared with another account"
    assert untouched == other


def test_a_guard_that_could_not_be_read_protects_by_name() -> None:
    """Break: the unreadable-guard check dropped from apply_guards (sweep/rules.py): no answer is not evidence."""
    terminate = _destructive("i-unknown", "instance", "terminate")
    [guarded] = apply_guards([terminate], Guards(unreadable={"i-unknown": "Throttling"}))
    assert guarded.action == "unmark" and Protection.UNREADABLE in guarded.protections
    assert "Throttling" in guarded.detail


def test_guards_leave_a_mark_or_a_keep_alone() -> None:
    """Break: apply_guards reaching past destructive decisions (`if decision.destructive` dropped): a guard would
    turn a fresh mark into an unmark, and the owner would never be warned."""
    mark = replace(_destructive("i-guarded", "instance", "terminate"), action="mark")
    everything = Guards(
        termination_protected=frozenset({"i-guarded"}),
        stop_protected=frozenset({"i-guarded"}),
        shared_snapshots=frozenset({"i-guarded"}),
        unreadable={"i-guarded": "x"},
    )
    assert apply_guards([mark], everything) == [mark]


# core/protections.py: a volume trainctl cannot see -------------------------------------------------------------


def test_a_volume_missing_from_the_inventory_must_outlive_its_instance() -> None:
    """Break: `must_outlive` answering None for a volume not in the inventory (core/protections.py): a volume
    trainctl cannot see would die with its instance; unknown protects."""
    launch_root = BlockDevice("vol-unseen", "/dev/xvda", delete_on_termination=True, attach_time=LONG_AGO)
    machine = instance(devices=(launch_root,), owner="alice")
    assert must_outlive(machine, launch_root, None, tags.MANAGED) == "not in the inventory"
    [left] = volumes_left_behind(machine, {}, tags.MANAGED)
    assert (left.volume_id, left.why, left.volume, left.clear_delete_on_termination) == (
        "vol-unseen",
        "not in the inventory",
        None,
        True,
    )
    assert volumes_dying_with(machine, {}, tags.MANAGED) == (("vol-unseen", "/dev/xvda"),)


def test_the_sweep_clears_delete_on_termination_on_a_volume_it_cannot_see() -> None:
    """Break: `must_outlive` answering None for a volume not in the inventory (core/protections.py): the sweep's
    terminate would not keep the unseen volume (keep_volumes empty)."""
    unseen = BlockDevice("vol-unseen", "/dev/sdf", delete_on_termination=True, attach_time=LONG_AGO)
    seen = BlockDevice("vol-root", "/dev/xvda", delete_on_termination=True, attach_time=LONG_AGO)
    stopped = instance(
        state="stopped",
        stopped_since=NOW - timedelta(days=30),
        devices=(seen, unseen),
        owner="alice",
        cleanup_after=format_instant(NOW - timedelta(hours=1)),
    )
    root = replace(volume("vol-root", attached_to=stopped.resource_id, owner="alice"), tags={})
    plan = plan_sweep([inventory(stopped, root)], Observations(), SETTINGS, NOW)
    [terminate] = [d for d in plan.decisions if d.resource_id == stopped.resource_id]
    assert terminate.action == "terminate"
    assert terminate.keep_volumes == (("vol-unseen", "/dev/sdf"),)
    assert "vol-unseen" in terminate.detail


def test_a_termination_by_hand_keeps_a_volume_it_cannot_see() -> None:
    """Break: `must_outlive` answering None for a volume not in the inventory (core/protections.py), seen from
    the hand command: the check must name the unseen volume among those it keeps."""
    unseen = BlockDevice("vol-unseen", "/dev/sdf", delete_on_termination=True, attach_time=LONG_AGO)
    machine = instance(devices=(unseen,), owner="alice")
    check = check_termination(
        machine, [], TrainingCheck(Training.IDLE), now=NOW, min_age=timedelta(minutes=5), scope_tag=tags.MANAGED
    )
    assert check.verdict == "terminate"
    assert check.keep == (("vol-unseen", "/dev/sdf"),)


def test_a_volume_not_set_to_go_does_not_end_the_look_at_the_volumes_after_it() -> None:
    """Break (mutmut, core/protections.py volumes_left_behind): `continue` made `break` after a volume not set to
    die with the instance: a persistent volume on a later device would then die with it."""
    kept_anyway = BlockDevice("vol-scratch", "/dev/sdf", delete_on_termination=False, attach_time=LONG_AGO)
    checkpoints = BlockDevice("vol-ckpt", "/dev/sdg", delete_on_termination=True, attach_time=LONG_AGO)
    machine = instance(devices=(kept_anyway, checkpoints), owner="alice")
    disks = {"vol-ckpt": volume("vol-ckpt", attached_to="i-1", owner="alice", persistent="true")}
    scratch, ckpt = volumes_left_behind(machine, disks, tags.MANAGED)
    assert (scratch.volume_id, scratch.device_name, scratch.why) == ("vol-scratch", "/dev/sdf", "not set to go with it")
    assert (ckpt.volume_id, ckpt.why, ckpt.clear_delete_on_termination) == ("vol-ckpt", "persistent", True)
    assert volumes_dying_with(machine, disks, tags.MANAGED) == (("vol-ckpt", "/dev/sdg"),)


def test_a_volume_attached_within_the_launch_slack_is_the_launchs_own() -> None:
    """Break (mutmut, core/protections.py made_by_launch): `<=` made `<`: a volume EC2 dated exactly the slack after
    the launch would count as attached later, and the launch's own untagged root would be left an orphan."""
    at_the_edge = BlockDevice("vol-root", "/dev/xvda", delete_on_termination=True, attach_time=LONG_AGO)
    machine = instance(launched=LONG_AGO - LAUNCH_ATTACH_SLACK, devices=(at_the_edge,), owner="alice")
    assert made_by_launch(machine, at_the_edge)
    assert not made_by_launch(
        replace(machine, launch_time=LONG_AGO - LAUNCH_ATTACH_SLACK - timedelta(seconds=1)), at_the_edge
    )


# sweep/run.py: vouch_for_marks with no ledger ------------------------------------------------------------------


def test_with_no_ledger_no_mark_is_vouched_for() -> None:
    """Break: vouch_for_marks trusting every mark when there is no ledger (sweep/run.py `ledger is None` branch):
    a hand-written past mark would be previewed, or acted on, as a delete."""
    delete = Decision("vol-1", "volume", "us-east-1", "delete", reasons=("unattached",), cleanup_after=DUE)
    keep = Decision("vol-2", "volume", "us-east-1", "keep")
    vouched = vouch_for_marks(None, [delete, keep], {}, now=NOW, idle_window=timedelta(hours=1))
    assert vouched.distrusted == {"vol-1": "there is no ledger to confirm its mark"}


# handwork/instances.py: another controller's instance ---------------------------------------------------------


def test_a_termination_by_hand_refuses_an_instance_an_auto_scaling_group_runs() -> None:
    """Break: the `machine.controller` refusal dropped from check_termination (handwork/instances.py): an Auto
    Scaling group's member would be terminated by hand (and the group would launch another)."""
    member = replace(instance(owner="alice"), controller="Auto Scaling group gpu-pool")
    check = check_termination(
        member,
        [],
        TrainingCheck(Training.IDLE),
        now=NOW,
        min_age=timedelta(minutes=5),
        scope_tag=tags.MANAGED,
        ignore_min_age=True,
        ignore_unknown_training=True,
    )
    assert check.verdict == "refuse"
    assert check.reasons == ("run by Auto Scaling group gpu-pool: scale it down there instead",)


def test_a_termination_by_hand_waives_nothing_unless_asked() -> None:
    """Break (mutmut, handwork/instances.py check_termination): `ignore_min_age` or `ignore_unknown_training`
    defaulting to True: a caller that names no waiver would terminate a young instance with no training verdict."""
    young = instance(launched=NOW - timedelta(minutes=1), owner="alice")
    check = check_termination(
        young, [], TrainingCheck(Training.UNKNOWN), now=NOW, min_age=timedelta(minutes=5), scope_tag=tags.MANAGED
    )
    assert check.verdict == "refuse"
    assert check.reasons == (
        "younger than the minimum age 5m (--ignore-min-age)",
        "the training check gave no verdict (--ignore-unknown-training)",
    )


def test_a_termination_by_hand_refuses_an_instance_already_going_by_name() -> None:
    """Break (mutmut, handwork/instances.py check_termination): the `already shutting-down/terminated` states
    misspelt or the reason emptied: the person would be told nothing true about why nothing happened."""
    for state in ("shutting-down", "terminated"):
        going = instance(state=state, owner="alice")
        check = check_termination(
            going, [], TrainingCheck(Training.IDLE), now=NOW, min_age=timedelta(minutes=5), scope_tag=tags.MANAGED
        )
        assert (check.verdict, check.reasons) == ("refuse", (f"already {state}",))


def test_a_termination_by_hand_lets_a_later_volume_of_the_same_owner_in_scope_go_with_it() -> None:
    """Break (mutmut, handwork/instances.py check_termination): the scope tag not handed to volumes_left_behind:
    every volume attached later would read as out of scope and be left behind, an orphan no sweep deletes."""
    later = BlockDevice("vol-later", "/dev/sdh", delete_on_termination=True, attach_time=NOW - timedelta(days=1))
    machine = instance(devices=(later,), owner="alice")
    disk = volume("vol-later", attached_to="i-1", owner="alice")
    check = check_termination(
        machine, [disk], TrainingCheck(Training.IDLE), now=NOW, min_age=timedelta(minutes=5), scope_tag=tags.MANAGED
    )
    assert check.verdict == "terminate" and check.keep == () and check.left_behind == ()


def test_an_unguarded_snapshot_due_for_deletion_goes_through_the_guards_untouched() -> None:
    """Break: a guard that protects without its fact (e.g. `if rid in guards.shared_snapshots` made always true in
    apply_guards, sweep/rules.py): nothing would ever be deleted. Also shows the guard tests above stand on the
    guard alone: without it, the same kind of snapshot is deleted once its mark is due."""
    old = snapshot(cleanup_after=format_instant(NOW - timedelta(hours=1)))
    [decision] = plan_sweep([inventory(old)], Observations(), SETTINGS, NOW).decisions
    assert decision.action == "delete"
    assert apply_guards([decision], Guards()) == [decision]
