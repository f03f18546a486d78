"""Issue 25, pure: what a recovery execution may be given, when EC2 reclaimed an instance, which warning is late."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.test_spot_decisions import SETTINGS, WARNED, spot
from trainctl.core import tags
from trainctl.spot.rules import (
    RECLAIM_WINDOW,
    WARNING_LEAD,
    RecoveryRefused,
    plan_refusal,
    recovery_instance_id,
    restore_mappings,
    snapshot_refusal,
    warning_is_late,
)

INSTANCE = "i-0123456789abcdef0"
RECLAIMED = {"state": "terminated", "state_reason": "Server.SpotInstanceTermination"}
OPTED_IN = {tags.MANAGED: "true", tags.OWNER: "carol", tags.RECOVER: "true"}
WARNING = {"event_time": "2026-11-28T08:22:00Z", "status": "handled", "kind": "warning", "action": "terminate"}


def test_the_recovery_input_holds_the_instance_id_alone() -> None:
    assert recovery_instance_id({"instance_id": INSTANCE}) == INSTANCE
    with pytest.raises(RecoveryRefused, match="unexpected field 'owner'"):
        recovery_instance_id({"instance_id": INSTANCE, "owner": "mallory"})
    # A field name is shown escaped, on one line.
    with pytest.raises(RecoveryRefused) as refused:
        recovery_instance_id({"instance_id": INSTANCE, "x\nforged: line": 1})
    assert "\n" not in str(refused.value) and "x\\\\nforged" in str(refused.value)
    for bad in ({}, {"instance_id": "i-../../etc"}, {"instance_id": 7}, ["instance_id"]):
        with pytest.raises(RecoveryRefused):
            recovery_instance_id(bad)


def test_only_an_instance_ec2_reclaimed_after_a_recorded_warning_is_planned() -> None:
    now = WARNED + timedelta(minutes=3)
    reclaimed = spot(tags=OPTED_IN, **RECLAIMED)
    assert plan_refusal(reclaimed, WARNING, SETTINGS, now=now) is None
    assert "not reclaimed by EC2: running" in str(plan_refusal(spot(tags=OPTED_IN), WARNING, SETTINGS, now=now))
    by_a_person = spot(tags=OPTED_IN, state="terminated", state_reason="Client.UserInitiatedShutdown")
    assert "not reclaimed by EC2" in str(plan_refusal(by_a_person, WARNING, SETTINGS, now=now))
    assert "no handled terminate warning" in str(plan_refusal(reclaimed, None, SETTINGS, now=now))
    not_opted = spot(tags={tags.MANAGED: "true"}, **RECLAIMED)
    assert f"no {tags.RECOVER}=true" in str(plan_refusal(not_opted, WARNING, SETTINGS, now=now))
    late = WARNED + RECLAIM_WINDOW + SETTINGS.spot_event_delivery_lag + timedelta(seconds=1)
    assert "too old" in str(plan_refusal(reclaimed, WARNING, SETTINGS, now=late))


def test_a_warning_past_its_window_and_the_delivery_lag_is_late() -> None:
    edge = WARNED + WARNING_LEAD + SETTINGS.spot_event_delivery_lag
    assert not warning_is_late(WARNED, edge, SETTINGS)
    assert warning_is_late(WARNED, edge + timedelta(seconds=1), SETTINGS)


def test_a_snapshot_is_restored_only_if_it_is_the_handlers_checkpoint_of_that_very_instance() -> None:
    recorded = {"snapshot_id": "snap-1", "volume_id": "vol-data", "device": "/dev/sdf", "volume_type": "gp3"}
    checkpoint = {
        "SnapshotId": "snap-1",
        "VolumeId": "vol-data",
        "Tags": [{"Key": tags.SPOT_INSTANCE, "Value": INSTANCE}],
    }
    assert snapshot_refusal(INSTANCE, recorded, checkpoint) is None
    carols = {**checkpoint, "Tags": [{"Key": tags.OWNER, "Value": "carol"}]}
    assert "is not tagged" in str(snapshot_refusal(INSTANCE, recorded, carols))
    bobs = {**checkpoint, "Tags": [{"Key": tags.SPOT_INSTANCE, "Value": "i-0fedcba9876543210"}]}
    assert "is not tagged" in str(snapshot_refusal(INSTANCE, recorded, bobs))
    other_volume = {**checkpoint, "VolumeId": "vol-other"}
    assert "not taken of the volume" in str(snapshot_refusal(INSTANCE, recorded, other_volume))
    assert "not in this account" in str(snapshot_refusal(INSTANCE, recorded, None))
    launch, keep = restore_mappings([recorded, {**recorded, "device": ""}])
    assert [m["Ebs"]["SnapshotId"] for m in launch] == ["snap-1"]
    assert keep == [{"DeviceName": "/dev/sdf", "Ebs": {"DeleteOnTermination": False}}]
