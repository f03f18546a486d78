"""Promises a mutation check broke without any test noticing (issue 25), held under moto through the real paths.

Each test's docstring names the break it catches: the one-line change to the safety code that, applied alone,
makes that test fail. The guards EC2 keeps (termination protection, sharing) are reached through whole sweeps;
a stop or terminate EC2 accepts but does not carry out is played by answering the call without sending it; the
hand commands are called below the command line, as a script or another front end would call them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.test_sweep_adversary import REGION, SETTINGS, T0, ZONE, Account, decision
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.core import tags
from trainctl.core.clock import fixed_clock, format_instant
from trainctl.core.observations import Training, TrainingCheck
from trainctl.handwork import instances as hand_instances
from trainctl.handwork import volumes as hand_volumes
from trainctl.handwork.refusals import Refused
from trainctl.sweep.act import SweepExecutor
from trainctl.sweep.rules import Decision
from trainctl.sweep.run import run_sweep

LATE = SETTINGS.event_delivery_lag + timedelta(minutes=1)


@pytest.fixture
def account(factory: ClientFactory) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


class _Accepted:
    """An HTTP answer of 200: EC2 took the call."""

    status_code = 200


def refuse(factory: ClientFactory, operation: str, code: str) -> None:
    """EC2 refuses `operation` with `code`: the request is never sent to the emulator."""

    def refused(**_: Any) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "refused by the test"}}, operation)

    factory.register(f"before-call.ec2.{operation}", refused)


def accept_without_doing(factory: ClientFactory, operation: str, answer: Callable[[dict[str, Any]], Any]) -> None:
    """EC2 answers `operation` with success and does nothing: the request is never sent to the emulator."""

    def accepted(params: dict[str, Any], **_: Any) -> tuple[_Accepted, Any]:
        return _Accepted(), answer(params)

    factory.register(f"before-call.ec2.{operation}", accepted)


# sweep/rules.py: apply_guards, reached through the sweep --------------------------------------------------------


def test_a_sweep_keeps_an_instance_ec2_protects_from_termination_and_withdraws_its_mark(account: Account) -> None:
    """Break: the termination-protection guard dropped from apply_guards (sweep/rules.py): the sweep would call
    TerminateInstances on an instance whose owner turned on termination protection during the grace period."""
    settings = SETTINGS.model_copy(update={"stopped_max_age": timedelta(hours=1)})
    instance_id = account.instance(stopped=True)
    marked = decision(account.sweep(T0, settings), instance_id)
    assert marked.action == "mark" and marked.announced == "terminate"
    account.ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    kept = decision(account.sweep(marked.cleanup_after + LATE, settings), instance_id)
    assert kept.action == "unmark" and "termination-protected" in kept.protections, kept
    assert kept.outcome == "done" and "termination protection is on" in kept.detail
    assert account.state(instance_id) == "stopped"
    described = account.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert tags.CLEANUP_AFTER not in {t["Key"] for t in described.get("Tags", [])}


def test_a_sweep_keeps_a_snapshot_shared_with_another_account_and_withdraws_its_mark(account: Account) -> None:
    """Break: the shared-snapshot guard dropped from apply_guards (sweep/rules.py): a snapshot shared with
    another account during its grace period would be deleted, and that account's restores with it."""
    settings = SETTINGS.model_copy(update={"snapshot_retention": timedelta(hours=1)})
    labels = [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "alice"}]
    snapshot_id = account.ec2.create_snapshot(
        VolumeId=account.volume(), TagSpecifications=[{"ResourceType": "snapshot", "Tags": labels}]
    )["SnapshotId"]
    marked = decision(account.sweep(T0, settings), snapshot_id)
    assert marked.action == "mark" and marked.announced == "delete"
    account.ec2.modify_snapshot_attribute(
        SnapshotId=snapshot_id, Attribute="createVolumePermission", OperationType="add", UserIds=["111122223333"]
    )
    kept = decision(account.sweep(marked.cleanup_after + LATE, settings), snapshot_id)
    assert kept.action == "unmark" and "shared-snapshot" in kept.protections, kept
    assert "shared with another account" in kept.detail
    assert account.snapshot_exists(snapshot_id)


# sweep/act.py: _verify -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "operation", "answer_key"),
    [("terminate", "TerminateInstances", "TerminatingInstances"), ("stop", "StopInstances", "StoppingInstances")],
)
def test_a_stop_or_terminate_ec2_accepted_but_did_not_carry_out_is_reported_failed(
    account: Account, action: str, operation: str, answer_key: str
) -> None:
    """Break: _verify taking every accepted instance call as done (sweep/act.py, `ok = True` for instances): an
    instance EC2 said yes to but left running would be reported stopped or terminated to its owner."""
    mark = T0 - timedelta(hours=1)
    instance_id = account.instance(**{tags.CLEANUP_AFTER: format_instant(mark)})
    accept_without_doing(account.factory, operation, lambda params: {answer_key: []})
    planned = Decision(
        instance_id,
        "instance",
        REGION,
        action,
        reasons=("idle",),
        cleanup_after=mark,
        seen_state="running",  # type: ignore[arg-type]
    )
    [result] = SweepExecutor(account.factory, concurrency=2).execute([planned])
    assert result.outcome == "failed", result
    assert f"still running after {action}" in result.detail
    assert account.state(instance_id) == "running"


def test_a_volume_delete_ec2_accepted_but_did_not_carry_out_is_reported_failed(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break (mutmut, sweep/act.py _verify): `state in ("deleting", "deleted")` made `not in` for volumes and
    snapshots: a volume EC2 said yes to but kept would be reported deleted to its owner."""
    mark = T0 - timedelta(hours=1)
    volume_id = account.volume(**{tags.CLEANUP_AFTER: format_instant(mark)})
    accept_without_doing(account.factory, "DeleteVolume", lambda params: {})
    # EBS reported no use of it since its mark (that promise has tests of its own).
    monkeypatch.setattr("trainctl.sweep.act.volumes_attached_since", lambda *_: {})
    planned = Decision(volume_id, "volume", REGION, "delete", reasons=("unattached",), cleanup_after=mark)
    [result] = SweepExecutor(account.factory, concurrency=2).execute([planned])
    assert result.outcome == "failed", result
    assert "still available after delete" in result.detail
    assert account.exists(volume_id)


# sweep/run.py: vouch_for_marks with no ledger ------------------------------------------------------------------


def test_with_no_ledger_a_dry_run_previews_a_hand_written_past_mark_as_a_fresh_mark(account: Account) -> None:
    """Break: vouch_for_marks trusting every mark when there is no ledger (sweep/run.py, `ledger is None`): a
    preview with no ledger would show a delete for a mark anyone could have written."""
    volume_id = account.volume(**{tags.CLEANUP_AFTER: "2000-01-01T00:00:00Z"})
    settings = SETTINGS.model_copy(update={"dry_run": True})
    result = run_sweep(account.factory, settings, fixed_clock(T0), ledger=None, notifier=None)
    previewed = decision(result, volume_id)
    assert previewed.action == "mark" and previewed.outcome == "dry-run", previewed
    assert "there is no ledger to confirm its mark" in previewed.detail
    assert account.exists(volume_id)


# handwork/volumes.py: a persistent volume, below the command line ----------------------------------------------


def test_a_persistent_volume_is_refused_by_the_hand_delete_itself_not_only_by_the_command_line(
    account: Account,
) -> None:
    """Break: the persistent check dropped from handwork.volumes.delete_volume (handwork/volumes.py): a script or
    front end calling it without the command line's own check would delete a persistent volume."""
    volume_id = account.volume(**{tags.PERSISTENT: "true"})
    ec2 = account.factory.ec2(REGION)
    with pytest.raises(Refused, match=f"tagged {tags.PERSISTENT}"):
        hand_volumes.delete_volume(ec2, REGION, volume_id, force=False)
    assert account.exists(volume_id)
    # The force the command line asks for (with a confirmation) is what lets it go.
    hand_volumes.delete_volume(ec2, REGION, volume_id, force=True)
    assert not account.exists(volume_id)


def test_an_attached_volume_is_refused_by_the_hand_delete_naming_its_instance(account: Account) -> None:
    """Break (mutmut, handwork/volumes.py delete_volume): the refusal of an attached volume emptied or crashing
    (`Refused(None)`, `attachments[1]`): the person would not learn which instance holds it."""
    volume_id = account.volume()
    instance_id = account.instance()
    account.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    with pytest.raises(Refused) as refused:
        hand_volumes.delete_volume(account.factory.ec2(REGION), REGION, volume_id, force=True)
    assert str(refused.value) == f"{volume_id} is attached to {instance_id}: detach it first"
    assert account.exists(volume_id)


# handwork/instances.py: terminate ------------------------------------------------------------------------------


def _instance_with_persistent_data(account: Account) -> tuple[str, str, hand_instances.TerminationCheck]:
    """A managed instance with a persistent data volume set to die with it, and the check that passed it."""
    ec2 = account.factory.ec2(REGION)
    instance_id = str(
        ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            Placement={"AvailabilityZone": ZONE},
            BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 50, "DeleteOnTermination": True}}],
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]},
            ],
        )["Instances"][0]["InstanceId"]
    )
    machine = hand_instances.instance(ec2, REGION, instance_id)
    data = next(d.volume_id for d in machine.block_devices if d.device_name == "/dev/sdf")
    ec2.create_tags(Resources=[data], Tags=[{"Key": tags.PERSISTENT, "Value": "true"}])
    disks = [hand_volumes.volume(ec2, REGION, d.volume_id) for d in machine.block_devices]
    check = hand_instances.check_termination(
        machine,
        disks,
        TrainingCheck(Training.IDLE),
        now=T0,
        min_age=timedelta(minutes=5),
        scope_tag=tags.MANAGED,
    )
    assert check.verdict == "terminate" and (data, "/dev/sdf") in check.keep
    return instance_id, data, check


def _delete_on_termination(account: Account, instance_id: str, volume_id: str) -> bool:
    found = account.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return bool(
        next(m["Ebs"]["DeleteOnTermination"] for m in found["BlockDeviceMappings"] if m["Ebs"]["VolumeId"] == volume_id)
    )


@pytest.mark.parametrize("how", ["refused", "ignored"])
def test_a_termination_by_hand_stops_when_delete_on_termination_could_not_be_cleared(
    account: Account, how: str
) -> None:
    """Break: handwork.instances.terminate going ahead when keep_volumes failed (handwork/instances.py): the
    persistent volume would die with the instance. EC2 refuses the ModifyInstanceAttribute call ("refused"), or
    takes it and leaves DeleteOnTermination set, as the read-back shows ("ignored")."""
    instance_id, data, check = _instance_with_persistent_data(account)
    if how == "refused":
        refuse(account.factory, "ModifyInstanceAttribute", "UnauthorizedOperation")
    else:
        accept_without_doing(account.factory, "ModifyInstanceAttribute", lambda params: {})
    machine = hand_instances.instance(account.factory.ec2(REGION), REGION, instance_id)
    with pytest.raises(Refused, match="DeleteOnTermination could not be cleared"):
        hand_instances.terminate(account.factory.ec2(REGION), machine, check)
    assert account.state(instance_id) == "running"
    assert _delete_on_termination(account, instance_id, data)  # unchanged: nothing was done
    assert account.exists(data)


# handwork/instances.py: an Auto Scaling group's member ---------------------------------------------------------


def test_a_termination_by_hand_refuses_a_member_of_an_auto_scaling_group(account: Account) -> None:
    """Break: the controller refusal dropped from check_termination (handwork/instances.py): a hand terminate
    would kill an Auto Scaling group's member, and the group would launch another in its place."""
    ec2 = account.factory.ec2(REGION)
    template = ec2.create_launch_template(
        LaunchTemplateName="gpu-pool", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "g5.xlarge"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling = account.factory.client("autoscaling", REGION)
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="gpu-pool",
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=1,
        MaxSize=1,
        AvailabilityZones=[ZONE],
        Tags=[{"Key": tags.MANAGED, "Value": "true", "PropagateAtLaunch": True}],
    )
    [member] = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
    machine = hand_instances.instance(ec2, REGION, member["InstanceId"])
    check = hand_instances.check_termination(
        machine,
        [],
        TrainingCheck(Training.IDLE),
        now=T0,
        min_age=timedelta(minutes=5),
        scope_tag=tags.MANAGED,
        ignore_min_age=True,
        ignore_unknown_training=True,
    )
    assert check.verdict == "refuse"
    assert any("Auto Scaling group gpu-pool" in reason for reason in check.reasons), check.reasons
    with pytest.raises(Refused, match="scale it down there instead"):
        hand_instances.terminate(ec2, machine, check)
    assert account.state(member["InstanceId"]) == "running"
