"""Spot decisions, pure: who may be saved, which hook, what to keep, how long the checkpoint may take."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from trainctl.core import tags
from trainctl.core.protections import volumes_dying_with
from trainctl.core.resources import BlockDevice, Instance, Volume
from trainctl.core.settings import SpotSettings
from trainctl.spot.rules import (
    RECLAIM_WINDOW,
    checkpoint_command,
    checkpoint_wait,
    data_volumes,
    reclaim_warning,
    recovery_refusal,
    recovery_zones,
    refusal,
    saves_data,
)

WARNED = datetime(2026, 11, 28, 8, 22, tzinfo=UTC)
SETTINGS = SpotSettings(
    spot_hooks=("default", "fast"), spot_checkpoint_s3_uri="s3://ckpt/runs", recovery_state_machine_arn="arn:x"
)


def spot(**kw: Any) -> Instance:
    values: dict[str, Any] = {
        "resource_id": "i-0123456789abcdef0",
        "region": "us-east-1",
        "state": "running",
        "instance_type": "g5.xlarge",
        "launch_time": WARNED - timedelta(hours=3),
        "availability_zone": "us-east-1a",
        "lifecycle": "spot",
        "root_device_name": "/dev/xvda",
        "block_devices": (
            BlockDevice("vol-root", "/dev/xvda", True),
            BlockDevice("vol-data", "/dev/sdf", True),
            BlockDevice("vol-kept", "/dev/sdg", False),
        ),
        "tags": {tags.MANAGED: "true", tags.OWNER: "carol"},
    }
    values.update(kw)
    return Instance(**values)


def volume(volume_id: str, **labels: str) -> Volume:
    return Volume(volume_id, "us-east-1", "in-use", 100, "gp3", WARNED, "us-east-1a", tags=labels)


def test_only_live_in_scope_spot_instances_are_saved() -> None:
    assert refusal(spot(), SETTINGS) is None
    assert "unknown instance" in str(refusal(None, SETTINGS))
    assert "not a spot instance" in str(refusal(spot(lifecycle="on-demand"), SETTINGS))
    assert "already gone" in str(refusal(spot(state="shutting-down"), SETTINGS))
    assert "out of scope" in str(refusal(spot(tags={tags.MANAGED: "maybe"}), SETTINGS))


def test_the_checkpoint_command_carries_only_configured_values() -> None:
    command = checkpoint_command(spot(tags={tags.MANAGED: "true", tags.CHECKPOINT_HOOK: "fast"}), SETTINGS)
    assert command.parameters["Hook"] == ["fast"] and command.note == ""
    assert command.parameters["S3Uri"] == ["s3://ckpt/runs/i-0123456789abcdef0/"]
    refused = checkpoint_command(spot(tags={tags.MANAGED: "true", tags.CHECKPOINT_HOOK: "`reboot`"}), SETTINGS)
    assert refused.parameters["Hook"] == ["default"] and "not a configured hook" in refused.note
    resume = checkpoint_command(spot(), SETTINGS, mode="resume")
    assert resume.parameters["Mode"] == ["resume"] and resume.parameters["Hook"] == [SETTINGS.spot_resume_hook]


def test_the_checkpoint_wait_never_eats_into_the_time_to_save_data() -> None:
    assert checkpoint_wait("warning", SETTINGS, event_time=WARNED, now=WARNED + timedelta(seconds=2)) == timedelta(
        seconds=30
    )
    # Late: 70 s after the warning only 10 s are left before the 40 s margin.
    late = checkpoint_wait("warning", SETTINGS, event_time=WARNED, now=WARNED + timedelta(seconds=70))
    assert late == timedelta(seconds=10)
    assert checkpoint_wait("warning", SETTINGS, event_time=WARNED, now=WARNED + timedelta(minutes=3)) == timedelta(0)


def test_a_rebalance_only_checkpoints_unless_configured() -> None:
    assert saves_data("warning", SETTINGS) and not saves_data("rebalance", SETTINGS)
    assert saves_data("rebalance", SETTINGS.model_copy(update={"spot_rebalance_action": "all"}))


def test_data_volumes_exclude_the_root_and_only_volumes_that_must_outlive_it_are_kept() -> None:
    instance = spot()
    assert data_volumes(instance) == ["vol-data", "vol-kept"]
    carols = {tags.MANAGED: "true", tags.OWNER: "carol"}
    volumes = [
        volume("vol-root", **carols),
        volume("vol-data", **carols, **{tags.PERSISTENT: "true"}),
        volume("vol-kept", **{tags.PERSISTENT: "yes"}),
    ]
    # vol-kept already survives termination; vol-data would die with the instance; the root may go with it.
    assert volumes_dying_with(instance, {v.resource_id: v for v in volumes}, tags.MANAGED) == (
        ("vol-data", "/dev/sdf"),
    )
    # A volume the instance does not own, or one trainctl cannot see, outlives it too.
    unseen = {v.resource_id: v for v in volumes if v.resource_id != "vol-root"}
    assert ("vol-root", "/dev/xvda") in volumes_dying_with(instance, unseen, tags.MANAGED)
    borrowed = {**unseen, "vol-root": volume("vol-root", **{tags.MANAGED: "true", tags.OWNER: "dave"})}
    assert ("vol-root", "/dev/xvda") in volumes_dying_with(instance, borrowed, tags.MANAGED)


def test_recovery_needs_a_reclaimed_in_scope_spot_instance_that_asked_for_it() -> None:
    asked = spot(state="terminated", tags={tags.MANAGED: "true", tags.RECOVER: "true"})
    reclaimed = spot(state="terminated", tags=asked.tags, state_reason="Server.SpotInstanceTermination")
    assert recovery_refusal(reclaimed, SETTINGS, warned=True) is None
    assert recovery_refusal(asked, SETTINGS, warned=True) is None  # no reason given is not a person's request
    # EC2's word alone is not enough (issue 17 item 5): only a terminate warning minutes before says reclaimed.
    assert "not reclaimed" in str(recovery_refusal(reclaimed, SETTINGS, warned=False))
    assert "not reclaimed" in str(recovery_refusal(asked, SETTINGS, warned=False))
    for reason in ("Client.UserInitiatedShutdown", "Client.InstanceInitiatedShutdown", "Client.InternalError"):
        by_request = spot(state="terminated", tags=asked.tags, state_reason=reason)
        assert f"terminated by request ({reason})" in str(recovery_refusal(by_request, SETTINGS, warned=True))
    assert "trainctl:recover" in str(recovery_refusal(spot(state="terminated"), SETTINGS, warned=True))
    undeployed = SETTINGS.model_copy(update={"recovery_state_machine_arn": None})
    assert "not deployed" in str(recovery_refusal(reclaimed, undeployed, warned=True))


def warning(action: str = "terminate", at: datetime = WARNED, status: str = "handled") -> dict[str, Any]:
    return {"kind": "warning", "status": status, "action": action, "event_time": at.isoformat(), "snapshots": []}


def test_only_a_handled_terminate_warning_minutes_before_the_termination_counts() -> None:
    """Issue 17 item 5: any handled warning in the ledger's history counted, a stop warning a week ago included."""
    ended = WARNED + timedelta(minutes=2)
    assert reclaim_warning([warning()], ended) == warning()
    assert reclaim_warning([warning()], WARNED + RECLAIM_WINDOW) is not None
    assert reclaim_warning([warning()], WARNED + RECLAIM_WINDOW + timedelta(seconds=1)) is None
    assert reclaim_warning([warning()], WARNED + timedelta(days=7)) is None
    assert reclaim_warning([warning()], WARNED - timedelta(seconds=1)) is None  # a warning after the end
    assert reclaim_warning([warning("stop"), warning("hibernate")], ended) is None
    assert reclaim_warning([warning(status="refused")], ended) is None
    assert reclaim_warning([{"kind": "warning", "status": "handled"}], ended) is None  # nothing says terminate
    assert reclaim_warning([{**warning(), "event_time": "yesterday"}], ended) is None
    assert (
        reclaim_warning([{"kind": "rebalance", "status": "handled", "event_time": WARNED.isoformat()}], ended) is None
    )
    latest = warning(at=WARNED + timedelta(minutes=1))
    assert reclaim_warning([warning(), latest], ended) == latest


def test_recovery_skips_the_lost_zone() -> None:
    assert recovery_zones("us-east-1a", ["us-east-1c", "us-east-1a", "us-east-1b"]) == ["us-east-1b", "us-east-1c"]
