"""The sweep cannot be tricked, surprised or crashed: each defect of the second safety review, under moto.

Every test here failed on the sweep before the review's fixes: a forged or borrowed mark, an escalated action,
use between sweeps, a tag value out of range, another controller's instance, a launch template's snapshot, an
out-of-scope volume on a swept instance, a ledger that cannot be written, and a free-form worker tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

from tests.integration.faults import Faults
from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.cli import stack_resources
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock, format_instant
from trainctl.core.errors import TrainctlError
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.settings import SweepSettings
from trainctl.sweep.record import DynamoDbLedger
from trainctl.sweep.run import SweepResult, run_sweep

REGION = "us-east-1"
ZONE = "us-east-1a"
# moto stamps creation with the real clock: the sweeps run a little later than that.
T0 = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
GRACE = timedelta(hours=24)
SETTINGS = SweepSettings(
    regions=(REGION,),
    dry_run=False,
    grace_period=GRACE,
    min_age=timedelta(minutes=5),
    max_action_share=1.0,
    training_check_timeout=timedelta(seconds=1),
    training_document=names.TRAINING_DOCUMENT,
)


@dataclass
class Account:
    factory: ClientFactory
    ledger: DynamoDbLedger
    notifier: InMemoryNotifier = field(default_factory=InMemoryNotifier)

    @property
    def ec2(self) -> Any:
        return self.factory.ec2(REGION)

    def sweep(self, at: datetime, settings: SweepSettings = SETTINGS, **kwargs: Any) -> SweepResult:
        return run_sweep(self.factory, settings, fixed_clock(at), ledger=self.ledger, notifier=self.notifier, **kwargs)

    def volume(self, **labels: str) -> str:
        values = {tags.MANAGED: "true", tags.OWNER: "alice", tags.CREATED_AT: format_instant(T0 - timedelta(days=3))}
        values.update(labels)
        spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in values.items()]}]
        return str(self.ec2.create_volume(Size=10, AvailabilityZone=ZONE, TagSpecifications=spec)["VolumeId"])

    def set_tags(self, resource_id: str, **labels: str) -> None:
        self.ec2.create_tags(Resources=[resource_id], Tags=[{"Key": k, "Value": v} for k, v in labels.items()])

    def exists(self, volume_id: str) -> bool:
        return bool(self.ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"])

    def tag(self, resource_id: str, key: str) -> str | None:
        found = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
        return next((t["Value"] for t in found if t["Key"] == key), None)


@pytest.fixture
def account(factory: ClientFactory) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, DynamoDbLedger(factory.dynamodb(), names.LEDGER_TABLE))


def decision(result: SweepResult, resource_id: str) -> Any:
    return next(d for d in result.decisions if d.resource_id == resource_id)


# 1. A forged mark skips the grace period ------------------------------------------------------------------


@pytest.mark.parametrize("extra", [{}, {tags.TTL: "0s"}])
def test_a_mark_trainctl_did_not_write_earns_a_fresh_mark_and_a_notice(account: Account, extra: dict[str, str]) -> None:
    volume_id = account.volume(**{tags.CLEANUP_AFTER: "2000-01-01T00:00:00Z", **extra})
    first = account.sweep(T0)
    forged = decision(first, volume_id)
    assert account.exists(volume_id)
    assert forged.action == "mark" and forged.announced == "delete"
    assert "no record of that mark" in forged.detail and "marked afresh" in forged.detail
    assert forged.cleanup_after is not None and forged.cleanup_after > T0
    assert account.tag(volume_id, tags.CLEANUP_AFTER) == format_instant(forged.cleanup_after)
    assert any(volume_id in message for _, message in account.notifier.messages)
    # The promise trainctl wrote itself is kept: after its own grace period, and not before.
    assert account.exists(volume_id) and decision(account.sweep(forged.cleanup_after - timedelta(minutes=1)), volume_id)
    assert (
        decision(
            account.sweep(forged.cleanup_after + SETTINGS.event_delivery_lag + timedelta(minutes=1)), volume_id
        ).action
        == "delete"
    )
    assert not account.exists(volume_id)


def test_a_mark_moved_by_hand_is_not_trusted(account: Account) -> None:
    volume_id = account.volume()
    marked = decision(account.sweep(T0), volume_id)
    assert marked.action == "mark"
    account.set_tags(volume_id, **{tags.CLEANUP_AFTER: format_instant(T0 + timedelta(hours=1))})
    early = decision(account.sweep(T0 + timedelta(hours=2)), volume_id)
    assert early.action == "mark" and account.exists(volume_id)


# 2. "Will stop" never ends in terminate ------------------------------------------------------------------


def test_an_announced_stop_is_never_carried_out_as_a_terminate(account: Account) -> None:
    from trainctl.sweep.rules import Decision, confirm_marks

    announced_stop = Decision("i-0123456789abcdef0", "instance", REGION, "terminate", reasons=("ttl-expired",))
    history_says = {"i-0123456789abcdef0": "its mark announced stop, not terminate"}
    instance = _instance("i-0123456789abcdef0")
    [fresh] = confirm_marks([announced_stop], history_says, {instance.resource_id: instance}, SETTINGS, T0)
    assert fresh.action == "mark" and fresh.announced == "terminate" and "announced stop" in fresh.detail


def test_an_expiring_ttl_is_a_warning_not_a_reason_to_terminate_an_idle_instance() -> None:
    from trainctl.sweep.rules import intended_action

    instance = _instance("i-0123456789abcdef0")
    assert intended_action(instance, ["idle", "ttl-expiring"], SETTINGS) == "stop"
    assert intended_action(instance, ["ttl-expiring"], SETTINGS) == "terminate"  # what expiry will do, announced


def _instance(instance_id: str) -> Any:
    from trainctl.core.resources import Instance

    return Instance(
        instance_id, REGION, "running", "g5.xlarge", T0 - timedelta(days=2), ZONE, tags={tags.MANAGED: "true"}
    )


# 3. Use between sweeps ---------------------------------------------------------------------------------------


def test_a_volume_seen_attached_between_mark_and_act_is_not_deleted_on_its_old_mark(account: Account) -> None:
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    instance_id = account.ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, Placement={"AvailabilityZone": ZONE}
    )["Instances"][0]["InstanceId"]
    account.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    account.sweep(T0 + timedelta(hours=6))
    account.ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
    later = decision(account.sweep(T0 + GRACE + timedelta(hours=1)), volume_id)
    assert later.action == "mark" and account.exists(volume_id)


def test_a_marked_volume_taken_out_of_scope_and_back_gets_a_full_grace_period(account: Account) -> None:
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    account.set_tags(volume_id, **{tags.MANAGED: "false"})
    assert decision(account.sweep(T0 + timedelta(hours=6)), volume_id).protections == ("out-of-scope",)
    assert account.tag(volume_id, tags.CLEANUP_AFTER) is not None  # out of scope: never written to
    account.set_tags(volume_id, **{tags.MANAGED: "true"})
    back = decision(account.sweep(T0 + GRACE + timedelta(hours=1)), volume_id)
    assert back.action == "mark" and account.exists(volume_id)


def test_a_sweep_that_never_saw_the_resource_breaks_the_chain(account: Account) -> None:
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    # A sweep of another region set recorded nothing for it, so nothing vouches for the hours in between.
    account.sweep(T0 + timedelta(hours=6), SETTINGS.model_copy(update={"regions": ("eu-west-1",)}))
    assert decision(account.sweep(T0 + GRACE + timedelta(hours=1)), volume_id).action == "mark"


# 4. One tag value never crashes a sweep ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (tags.CLEANUP_AFTER, "9999-12-31T23:59:59-01:00"),
        (tags.TTL, "9999999w"),
        (tags.CREATED_AT, "0001-01-01T00:00:00+01:00"),
        (tags.CREATED_AT, "9999-12-31T23:59:59Z"),
    ],
)
def test_a_value_out_of_range_protects_its_own_resource_and_the_rest_are_decided(
    account: Account, key: str, value: str
) -> None:
    trap = account.volume(**{key: value})
    stranger = account.volume(**{key: value, tags.MANAGED: "false"})
    ordinary = account.volume()
    for dry_run in (True, False):
        result = account.sweep(T0, SETTINGS.model_copy(update={"dry_run": dry_run}))
        assert decision(result, ordinary).action == "mark"
        assert any(trap in warning for warning in result.plan.warnings)
        assert account.exists(trap) and account.exists(stranger)
    after = account.sweep(T0 + GRACE + timedelta(hours=1))
    assert account.exists(stranger) and not account.exists(ordinary)
    if key == tags.CLEANUP_AFTER:
        # An unreadable mark was replaced by one of trainctl's own, which is kept after its full grace period.
        assert decision(after, trap).action == "delete"
    else:
        assert account.exists(trap) and "unreadable" in decision(after, trap).protections


def test_a_duration_setting_over_ten_years_is_refused_by_name() -> None:
    from trainctl.core.errors import SettingsError

    with pytest.raises(SettingsError, match="TRAINCTL_GRACE_PERIOD"):
        SweepSettings.from_env({"TRAINCTL_GRACE_PERIOD": "9999w"})


# 8. Deletions go unrecorded ----------------------------------------------------------------------------------


def test_a_region_named_twice_is_swept_once() -> None:
    assert SweepSettings.from_env({"TRAINCTL_REGIONS": "us-east-1,us-east-1"}).regions == ("us-east-1",)


def test_nothing_is_destroyed_without_an_intent_row_and_the_owner_still_hears(account: Account) -> None:
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    Faults(account.factory).fail("BatchWriteItem", code="AccessDeniedException", status=400, times=None)
    with pytest.raises(TrainctlError, match="BatchWriteItem"):
        account.sweep(T0 + GRACE + timedelta(hours=1))
    assert account.exists(volume_id)
    assert any(volume_id in message for _, message in account.notifier.messages[1:])


# 9. A free-form tag never turns off the training check -------------------------------------------------------


def test_a_worker_tag_on_a_training_instance_is_not_a_worker(account: Account) -> None:
    from trainctl.sweep.rules import Observations, is_prewarm_worker, plan_sweep

    impostor = _instance("i-0123456789abcdef0")
    labelled = type(impostor)(**{**_fields(impostor), "tags": {**impostor.tags, tags.ROLE: tags.PREWARM_WORKER_ROLE}})
    assert not is_prewarm_worker(labelled)
    from trainctl.core.resources import RegionInventory

    plan = plan_sweep(
        [RegionInventory(REGION, instances=(labelled,))],
        Observations(training={labelled.resource_id: TrainingCheck(Training.ACTIVE, "torchrun")}),
        SETTINGS.model_copy(update={"prewarm_worker_max_age": timedelta(hours=1)}),
        T0,
    )
    assert all("prewarm-leftover" not in d.reasons for d in plan.decisions)


def _fields(instance: Any) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in instance.__dataclass_fields__}


# 11. Smaller gaps --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Trainctl:Persistent", "trainctl:persistant", "TRAINCTL:PERSISTENT"])
def test_a_persistent_key_in_another_case_or_misspelt_protects_and_a_misspelling_is_named(
    account: Account, key: str
) -> None:
    volume_id = account.volume(**{key: "true"})
    result = account.sweep(T0)
    assert decision(result, volume_id).protections == ("persistent",)
    if key.lower() != tags.PERSISTENT:
        assert any(volume_id in w and key in w for w in result.plan.warnings)


def test_a_stopped_instance_with_no_stop_time_is_protected_not_measured_from_its_launch() -> None:
    from trainctl.core.resources import RegionInventory
    from trainctl.sweep.rules import Observations, plan_sweep

    stopped = type(_instance("i-0123456789abcdef0"))(
        **{**_fields(_instance("i-0123456789abcdef0")), "state": "stopped", "stopped_since": None}
    )
    plan = plan_sweep(
        [RegionInventory(REGION, instances=(stopped,))], Observations(), SETTINGS, T0 + timedelta(days=30)
    )
    assert all(d.action not in ("terminate", "mark") for d in plan.decisions)
    assert any("stopped" in w for w in plan.warnings)


def test_a_volume_attached_and_detached_between_two_sweeps_loses_its_mark(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import load_event
    from trainctl.cli.local_run import LocalContext, load_handler

    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    # Attached, used and detached within the hour: no sweep sees it, but CloudTrail tells age_guard.
    event = load_event("age_guard", "attach_volume_console_user")
    event["detail"]["requestParameters"]["volumeId"] = volume_id
    event["detail"]["eventTime"] = format_instant(T0 + timedelta(hours=3))
    monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
    handler = load_handler("age_guard")
    monkeypatch.setattr(handler, "client_factory", lambda: account.factory)
    told = handler.lambda_handler(event, LocalContext(function_name="trainctl-age_guard"))
    assert told["status"] == "unmarked" and account.tag(volume_id, tags.CLEANUP_AFTER) is None
    after = decision(account.sweep(T0 + GRACE + timedelta(hours=1)), volume_id)
    assert after.action == "mark" and account.exists(volume_id)


def test_a_use_recorded_in_the_ledger_voids_the_mark_even_when_its_tag_stayed(account: Account) -> None:
    from trainctl.age_guard.use import MarkVoider

    volume_id = account.volume()
    marked = decision(account.sweep(T0), volume_id)
    MarkVoider(account.ec2, account.factory.dynamodb(), names.LEDGER_TABLE).void(
        volume_id, T0 + timedelta(hours=3), "used since it was marked: AttachVolume"
    )
    account.set_tags(volume_id, **{tags.CLEANUP_AFTER: format_instant(marked.cleanup_after)})  # the tag came back
    after = decision(account.sweep(T0 + GRACE + timedelta(hours=1)), volume_id)
    assert after.action == "mark" and "AttachVolume" in after.detail and account.exists(volume_id)


# 5. Another controller's instances ---------------------------------------------------------------------------


def test_an_auto_scaling_member_is_managed_elsewhere_and_the_owner_is_told_which_group(account: Account) -> None:
    autoscaling = account.factory.client("autoscaling", REGION)
    template = account.ec2.create_launch_template(
        LaunchTemplateName="gpu-pool", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "g5.xlarge"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="gpu-pool",
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=1,
        MaxSize=1,
        AvailabilityZones=[ZONE],
        Tags=[{"Key": tags.MANAGED, "Value": "true", "PropagateAtLaunch": True}],
    )
    [member] = autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"][0]["Instances"]
    account.ec2.stop_instances(InstanceIds=[member["InstanceId"]])
    later = T0 + timedelta(days=30)
    settings = SETTINGS.model_copy(update={"stopped_max_age": timedelta(hours=1)})
    kept = decision(account.sweep(later, settings), member["InstanceId"])
    assert "managed-elsewhere" in kept.protections and "Auto Scaling group gpu-pool" in kept.detail
    assert decision(account.sweep(later + GRACE * 2, settings), member["InstanceId"]).action != "terminate"


# 6. A snapshot a launch template restores ---------------------------------------------------------------------


def test_a_snapshot_a_launch_template_restores_is_kept_by_retention(account: Account) -> None:
    volume_id = account.volume()
    snapshot_id = account.ec2.create_snapshot(
        VolumeId=volume_id,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
    )["SnapshotId"]
    account.ec2.create_launch_template(
        LaunchTemplateName="trainer",
        LaunchTemplateData={
            "ImageId": "ami-12c6146b",
            "BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": snapshot_id}}],
        },
    )
    settings = SETTINGS.model_copy(update={"snapshot_retention": timedelta(days=1)})
    kept = decision(account.sweep(T0 + timedelta(days=10), settings), snapshot_id)
    assert "launch-template" in kept.protections and kept.action == "keep"


# 7. An out-of-scope volume never dies with a swept instance ---------------------------------------------------


def test_every_attached_volume_not_in_scope_with_the_same_owner_outlives_a_terminated_instance(
    account: Account,
) -> None:
    instance_id = account.ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": ZONE},
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "alice"}],
            }
        ],
    )["Instances"][0]["InstanceId"]
    shared = account.volume(**{tags.MANAGED: "false"})
    bobs = account.volume(**{tags.OWNER: "bob"})
    alices = account.volume()
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=10), tick=False):  # by hand, after the launch
        for device, volume_id in (("/dev/sdf", shared), ("/dev/sdg", bobs), ("/dev/sdh", alices)):
            account.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
    account.ec2.modify_instance_attribute(
        InstanceId=instance_id,
        BlockDeviceMappings=[
            {"DeviceName": d, "Ebs": {"DeleteOnTermination": True}} for d in ("/dev/sdf", "/dev/sdg", "/dev/sdh")
        ],
    )
    account.ec2.stop_instances(InstanceIds=[instance_id])
    settings = SETTINGS.model_copy(update={"stopped_max_age": timedelta(hours=1)})
    later = T0 + timedelta(days=3)
    assert decision(account.sweep(later, settings), instance_id).action == "mark"
    acted = decision(account.sweep(later + GRACE + timedelta(hours=1), settings), instance_id)
    kept = {v for v, _ in acted.keep_volumes}
    # The untagged root volume the launch made is the instance's own: it goes with it (issue 25), never an orphan.
    assert acted.action == "terminate" and kept == {shared, bobs}
    # They outlived it; the instance's own volume went with it.
    assert account.exists(shared) and account.exists(bobs)
