"""Issue 25, no orphans: a launch's own volumes die with their instance; every volume kept behind is named, with
its owner and its monthly cost. Pure rules: core/protections.py, the sweep's decision, the inventory's reading."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.unit.builders import LONG_AGO, NOW, instance, inventory, volume
from trainctl.aws.ec2 import instance_from_api
from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.protections import volumes_dying_with, volumes_left_behind
from trainctl.core.resources import BlockDevice, Instance, Volume
from trainctl.core.settings import SweepSettings
from trainctl.sweep.rules import Observations, plan_sweep

SETTINGS = SweepSettings(max_actions=1000, max_action_share=1.0)
MARK_PASSED = format_instant(NOW - SETTINGS.event_delivery_lag - timedelta(minutes=1))
LAUNCHED = LONG_AGO
ROOT = BlockDevice("vol-root", "/dev/xvda", delete_on_termination=True, attach_time=LAUNCHED)


def untagged(volume_id: str, **labels: str) -> Volume:
    """A volume as EC2 makes it for a launch: no trainctl tag at all unless given."""
    return replace(volume(volume_id, attached_to="i-1"), tags=dict(labels))


def alices(*devices: BlockDevice) -> Instance:
    return instance("i-1", state="stopped", launched=LAUNCHED, devices=devices, owner="alice")


def by_id(*volumes: Volume) -> dict[str, Volume]:
    return {v.resource_id: v for v in volumes}


def test_the_launchs_own_untagged_root_volume_dies_with_its_instance() -> None:
    machine = alices(ROOT)
    # Out of scope and unowned as EC2 made it, yet the launch's own: kept, it is an orphan no sweep may delete.
    assert volumes_dying_with(machine, by_id(untagged("vol-root")), tags.MANAGED) == ()
    assert volumes_left_behind(machine, by_id(untagged("vol-root")), tags.MANAGED) == ()
    # A second or so between the launch and its attachments is still the launch.
    late_by_a_second = ROOT._replace(attach_time=LAUNCHED + timedelta(seconds=1))
    assert volumes_dying_with(alices(late_by_a_second), by_id(untagged("vol-root")), tags.MANAGED) == ()


def test_the_launchs_own_volume_stays_when_its_own_tags_say_so() -> None:
    machine = alices(ROOT)
    cases = {
        "persistent": untagged("vol-root", **{tags.PERSISTENT: "true"}),
        "out of scope": untagged("vol-root", **{tags.MANAGED: "false"}),
        "owned by someone else": untagged("vol-root", **{tags.OWNER: "bob"}),
    }
    for why, disk in cases.items():
        left = volumes_left_behind(machine, by_id(disk), tags.MANAGED)
        assert [(v.volume_id, v.why, v.clear_delete_on_termination) for v in left] == [("vol-root", why, True)]
    # Unknown protects: a volume trainctl cannot see is kept, the launch's own or not.
    assert volumes_dying_with(machine, {}, tags.MANAGED) == (("vol-root", "/dev/xvda"),)
    # Tagged as the instance's, it goes too.
    mine = untagged("vol-root", **{tags.MANAGED: "true", tags.OWNER: "alice"})
    assert volumes_dying_with(machine, by_id(mine), tags.MANAGED) == ()


def test_a_volume_attached_after_the_launch_is_kept_unless_in_scope_and_the_instances_owners() -> None:
    later = BlockDevice("vol-data", "/dev/sdf", delete_on_termination=True, attach_time=LAUNCHED + timedelta(hours=1))
    unknown = BlockDevice("vol-data", "/dev/sdf", delete_on_termination=True)  # attach time not read: not the launch
    for device in (later, unknown):
        machine = alices(device)
        for disk, why in (
            (untagged("vol-data"), "out of scope"),
            (untagged("vol-data", **{tags.MANAGED: "true"}), "its owner is unknown"),
            (untagged("vol-data", **{tags.MANAGED: "true", tags.OWNER: "bob"}), "owned by someone else"),
        ):
            left = volumes_left_behind(machine, by_id(disk), tags.MANAGED)
            assert [(v.volume_id, v.why) for v in left] == [("vol-data", why)]
        mine = untagged("vol-data", **{tags.MANAGED: "true", tags.OWNER: "alice"})
        assert volumes_dying_with(machine, by_id(mine), tags.MANAGED) == ()


def test_the_first_launch_counts_not_the_last_start() -> None:
    """LaunchTime moves with every start; the primary network interface's attach time stays at the first launch."""
    restarted = LAUNCHED + timedelta(days=3)
    root = ROOT
    near_the_restart = BlockDevice("vol-data", "/dev/sdf", delete_on_termination=True, attach_time=restarted)
    machine = replace(alices(root, near_the_restart), launch_time=restarted, first_launch_time=LAUNCHED)
    left = volumes_left_behind(machine, by_id(untagged("vol-root"), untagged("vol-data")), tags.MANAGED)
    assert [(v.volume_id, v.why) for v in left] == [("vol-data", "out of scope")]


def test_a_volume_never_set_to_go_is_named_as_left_behind_but_needs_no_clearing() -> None:
    shared = BlockDevice("vol-shared", "/dev/sdg", delete_on_termination=False, attach_time=LAUNCHED)
    left = volumes_left_behind(alices(ROOT, shared), by_id(untagged("vol-root"), untagged("vol-shared")), tags.MANAGED)
    assert [(v.volume_id, v.clear_delete_on_termination) for v in left] == [("vol-shared", False)]


def test_the_sweeps_terminate_takes_the_root_and_names_each_volume_left_with_its_owner_and_monthly_cost() -> None:
    checkpoint = BlockDevice("vol-ckpt", "/dev/sdf", delete_on_termination=True, attach_time=LAUNCHED + timedelta(1))
    dataset = BlockDevice("vol-data", "/dev/sdg", delete_on_termination=False, attach_time=LAUNCHED + timedelta(1))
    stopped = instance(
        "i-1",
        state="stopped",
        launched=LAUNCHED,
        stopped_since=LONG_AGO,
        devices=(ROOT, checkpoint, dataset),
        owner="alice",
        cleanup_after=MARK_PASSED,
    )
    bobs = volume("vol-ckpt", attached_to="i-1", owner="bob")  # 100 GiB gp3 in us-east-1: $0.08 a GiB-month
    shared = replace(volume("vol-data", attached_to="i-1"), tags={tags.OWNER: "carol\nforged line"})
    plan = plan_sweep([inventory(stopped, untagged("vol-root"), bobs, shared)], Observations(), SETTINGS, NOW)
    decision = next(d for d in plan.decisions if d.resource_id == "i-1")
    assert decision.action == "terminate"
    assert decision.keep_volumes == (("vol-ckpt", "/dev/sdf"),)
    assert "vol-root" not in decision.detail
    assert "vol-ckpt (owner bob, 100 GiB gp3, $8.00 a month: owned by someone else)" in decision.detail
    assert "vol-data (owner carol\\nforged line, 100 GiB gp3, $8.00 a month: not set to go with it)" in decision.detail


def test_the_inventory_reads_each_attach_time_and_the_first_launch() -> None:
    raw = {
        "InstanceId": "i-1",
        "State": {"Name": "stopped"},
        "LaunchTime": NOW,
        "BlockDeviceMappings": [
            {
                "DeviceName": "/dev/xvda",
                "Ebs": {"VolumeId": "vol-root", "DeleteOnTermination": True, "AttachTime": LAUNCHED},
            },
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeId": "vol-old", "DeleteOnTermination": False}},
        ],
        "NetworkInterfaces": [
            {"Attachment": {"DeviceIndex": 1, "AttachTime": NOW}},
            {"Attachment": {"DeviceIndex": 0, "AttachTime": LAUNCHED}},
        ],
    }
    read = instance_from_api("us-east-1", raw)
    assert read.first_launch_time == LAUNCHED and read.launch_time == NOW
    assert [d.attach_time for d in read.block_devices] == [LAUNCHED, None]
    assert instance_from_api("us-east-1", {**raw, "NetworkInterfaces": []}).first_launch_time is None
