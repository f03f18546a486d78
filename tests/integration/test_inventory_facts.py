"""The facts the sweep's protections need, read under moto: who else runs an instance, what its type holds, what
launch templates restore, and EC2's own guards of the few resources about to be acted on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from tests.integration.faults import Faults
from trainctl.aws.clients import ClientFactory
from trainctl.aws.ec2 import GUARD_WORKERS, Ec2Inventory, instance_from_api, read_guards
from trainctl.core.errors import AwsAccessError
from trainctl.core.resources import Instance

REGION = "us-east-1"
AMI = "ami-12345678"
ACCOUNT = "123456789012"  # moto's account


def launch(factory: ClientFactory, instance_type: str = "t3.micro", **options: Any) -> str:
    response = factory.ec2(REGION).run_instances(
        ImageId=AMI, MinCount=1, MaxCount=1, InstanceType=instance_type, **options
    )
    return str(response["Instances"][0]["InstanceId"])


def tagged(factory: ClientFactory, tags: dict[str, str]) -> str:
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    return launch(factory, TagSpecifications=spec)


def instances(factory: ClientFactory) -> dict[str, Instance]:
    return {i.resource_id: i for i in Ec2Inventory(factory.ec2(REGION), REGION).instances()}


def snapshot(factory: ClientFactory) -> str:
    ec2 = factory.ec2(REGION)
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    return str(ec2.create_snapshot(VolumeId=volume)["SnapshotId"])


def answer_ec2_error(factory: ClientFactory, operation: str, code: str, when: Callable[[str], bool]) -> None:
    """EC2 refuses `operation` with `code` whenever the request body makes `when` true."""

    def refuse(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        body = params.get("body", "")
        text = body.decode() if isinstance(body, bytes) else str(body)
        if not when(text):
            return None
        error = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
        return AWSResponse("https://ec2.amazonaws.com/", 400, {}, None), error

    factory.register(f"before-call.ec2.{operation}", refuse)


# --- who else runs an instance ---


def test_an_auto_scaling_group_member_names_its_group(factory: ClientFactory) -> None:
    template = factory.ec2(REGION).create_launch_template(
        LaunchTemplateName="gpu", LaunchTemplateData={"ImageId": AMI, "InstanceType": "g5.xlarge"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    factory.client("autoscaling", REGION).create_auto_scaling_group(
        AutoScalingGroupName="gpu-pool",
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        AvailabilityZones=[f"{REGION}a"],
    )
    alone = launch(factory)
    found = instances(factory)
    members = [i for i in found.values() if i.resource_id != alone]
    assert [m.controller for m in members] == ["Auto Scaling group gpu-pool"]
    assert found[alone].controller is None


@pytest.mark.parametrize(
    ("tags", "controller"),
    [
        ({"eks:nodegroup-name": "ng-a100"}, "EKS node group ng-a100"),
        ({"aws:batch:compute-environment": "ce-train"}, "AWS Batch compute environment ce-train"),
        (
            {"aws:ec2:fleet-id": "fleet-0abc1234-5678-90ab-cdef-1234567890ab"},
            "EC2 fleet fleet-0abc1234-5678-90ab-cdef-1234567890ab",
        ),
        (
            {"aws:ec2spot:fleet-request-id": "sfr-0abc1234-5678-90ab-cdef-1234567890ab"},
            "Spot Fleet sfr-0abc1234-5678-90ab-cdef-1234567890ab",
        ),
        ({"karpenter.sh/nodepool": "p5"}, "Karpenter node pool p5"),
        # An EKS managed node group runs its instances through an Auto Scaling group: the node group is what to scale.
        ({"aws:autoscaling:groupName": "eks-ng-a100-1234", "eks:nodegroup-name": "ng-a100"}, "EKS node group ng-a100"),
        ({"Name": "by-hand", "team": "research"}, None),
    ],
)
def test_the_controller_is_read_from_the_tags_it_writes(
    factory: ClientFactory, tags: dict[str, str], controller: str | None
) -> None:
    instance_id = tagged(factory, tags)
    assert instances(factory)[instance_id].controller == controller


def test_a_persistent_spot_request_runs_its_instance_and_a_one_time_request_does_not(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    ids = {}
    for kind in ("persistent", "one-time"):
        request = ec2.request_spot_instances(
            SpotPrice="10",
            InstanceCount=1,
            Type=kind,
            LaunchSpecification={"ImageId": AMI, "InstanceType": "g5.xlarge"},
        )["SpotInstanceRequests"][0]
        ids[kind] = (request["SpotInstanceRequestId"], request["InstanceId"])
    on_demand = launch(factory)
    before = factory.calls.by_operation["ec2:DescribeSpotInstanceRequests"]
    found = instances(factory)
    assert factory.calls.by_operation["ec2:DescribeSpotInstanceRequests"] - before == 1  # one read for all
    request_id, instance_id = ids["persistent"]
    persistent = found[instance_id]
    assert persistent.lifecycle == "spot" and persistent.spot_request_type == "persistent"
    assert persistent.controller == f"persistent spot request {request_id}"
    assert persistent.spot_request_id == request_id
    one_time = found[ids["one-time"][1]]
    assert one_time.spot_request_type == "one-time" and one_time.controller is None
    assert found[on_demand].spot_request_type is None and found[on_demand].controller is None


def test_a_cancelled_persistent_request_no_longer_runs_its_instance(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    request = ec2.request_spot_instances(
        SpotPrice="10", InstanceCount=1, Type="persistent", LaunchSpecification={"ImageId": AMI}
    )["SpotInstanceRequests"][0]
    raw = {
        "InstanceId": request["InstanceId"],
        "State": {"Name": "running"},
        "LaunchTime": datetime(2026, 1, 1, tzinfo=UTC),
        "InstanceLifecycle": "spot",
        "SpotInstanceRequestId": request["SpotInstanceRequestId"],
    }
    reader = Ec2Inventory(ec2, REGION)
    live = instance_from_api(REGION, raw, spot_requests=reader.spot_requests())
    assert live.controller == f"persistent spot request {request['SpotInstanceRequestId']}"
    ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[request["SpotInstanceRequestId"]])
    # moto forgets a cancelled request; EC2 lists it as cancelled for a while: neither relaunches anything.
    gone = instance_from_api(REGION, raw, spot_requests=reader.spot_requests())
    assert gone.controller is None


def test_spot_requests_that_cannot_be_read_leave_spot_instances_run_by_an_unknown_controller(
    factory: ClientFactory,
) -> None:
    spot = launch(factory, "g5.xlarge", InstanceMarketOptions={"MarketType": "spot"})
    on_demand = launch(factory)
    Faults(factory).fail("DescribeSpotInstanceRequests", code="UnauthorizedOperation", status=403, times=None)
    found = instances(factory)
    assert found[spot].spot_request_type is None
    assert found[spot].controller is not None and "could not be read: UnauthorizedOperation" in found[spot].controller
    assert found[on_demand].controller is None  # only spot instances depend on their request


def test_no_spot_instance_no_spot_request_read(factory: ClientFactory) -> None:
    launch(factory)
    before = factory.calls.by_operation["ec2:DescribeSpotInstanceRequests"]
    instances(factory)
    assert factory.calls.by_operation["ec2:DescribeSpotInstanceRequests"] == before


# --- what the instance is ---


def test_account_profile_and_hibernation_are_read(factory: ClientFactory) -> None:
    iam = factory.client("iam")
    profile = iam.create_instance_profile(InstanceProfileName="trainctl-prewarm-worker")["InstanceProfile"]["Arn"]
    worker = launch(factory, IamInstanceProfile={"Arn": profile}, HibernationOptions={"Configured": True})
    plain = launch(factory)
    found = instances(factory)
    assert found[worker].instance_profile_arn == profile and found[worker].hibernation_configured is True
    assert found[plain].instance_profile_arn == "" and found[plain].hibernation_configured is False
    assert found[worker].account == ACCOUNT and found[worker].provider == "aws"
    snap = snapshot(factory)
    inventory = Ec2Inventory(factory.ec2(REGION), REGION).read()
    assert {s.resource_id: s.account for s in inventory.snapshots}[snap] == ACCOUNT
    assert {v.account for v in inventory.volumes} == {""}  # EC2 does not say who owns a volume


def test_instance_store_is_read_once_per_type_and_kept(factory: ClientFactory) -> None:
    g5 = [launch(factory, "g5.xlarge") for _ in range(3)]
    micro = launch(factory, "t3.micro")
    reader = Ec2Inventory(factory.ec2(REGION), REGION)
    before = factory.calls.by_operation["ec2:DescribeInstanceTypes"]
    found = {i.resource_id: i for i in reader.instances()}
    assert factory.calls.by_operation["ec2:DescribeInstanceTypes"] - before == 1  # two types, one call
    assert all(found[i].instance_store is True for i in g5)
    assert found[micro].instance_store is False
    list(reader.instances())
    assert factory.calls.by_operation["ec2:DescribeInstanceTypes"] - before == 1  # kept on the inventory


def test_a_type_ec2_does_not_describe_is_unknown_and_the_others_are_still_known(factory: ClientFactory) -> None:
    old = launch(factory, "p3.2xlarge")  # moto does not describe this type
    new = launch(factory, "p5.48xlarge")
    found = instances(factory)
    assert found[old].instance_store is None
    assert found[new].instance_store is True


def test_instance_types_that_cannot_be_read_are_unknown(factory: ClientFactory) -> None:
    instance_id = launch(factory, "g5.xlarge")
    Faults(factory).fail("DescribeInstanceTypes", code="UnauthorizedOperation", status=403, times=None)
    assert instances(factory)[instance_id].instance_store is None


def test_a_stop_time_missing_from_the_state_reason_stays_unknown() -> None:
    raw = {
        "InstanceId": "i-0123456789abcdef0",
        "State": {"Name": "stopped"},
        "StateTransitionReason": "User initiated",
        "LaunchTime": datetime(2026, 1, 1, tzinfo=UTC),
    }
    assert instance_from_api(REGION, raw).stopped_since is None


# --- what launch templates restore ---


def test_every_version_of_every_launch_template_counts(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    first, second, elsewhere, unused = (snapshot(factory) for _ in range(4))

    def data(snapshot_id: str) -> dict[str, Any]:
        return {"ImageId": AMI, "BlockDeviceMappings": [{"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": snapshot_id}}]}

    template = ec2.create_launch_template(LaunchTemplateName="train", LaunchTemplateData=data(first))
    template_id = template["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=template_id, LaunchTemplateData=data(second))
    ec2.create_launch_template(LaunchTemplateName="recover", LaunchTemplateData=data(elsewhere))
    ec2.create_launch_template(LaunchTemplateName="plain", LaunchTemplateData={"ImageId": AMI})
    before = factory.calls.by_operation.copy()
    inventory = Ec2Inventory(ec2, REGION).read()
    # The first version is neither the default's replacement nor forgotten: a template can be launched at any version.
    assert inventory.launch_template_snapshots == {first, second, elsewhere}
    assert unused not in inventory.launch_template_snapshots
    calls = factory.calls.by_operation - before
    assert calls["ec2:DescribeLaunchTemplates"] == 1 and calls["ec2:DescribeLaunchTemplateVersions"] == 3


@pytest.mark.parametrize("operation", ["DescribeLaunchTemplates", "DescribeLaunchTemplateVersions"])
def test_launch_templates_that_cannot_be_read_stop_the_read_instead_of_reading_as_none(
    factory: ClientFactory, operation: str
) -> None:
    factory.ec2(REGION).create_launch_template(LaunchTemplateName="train", LaunchTemplateData={"ImageId": AMI})
    Faults(factory).fail(operation, code="UnauthorizedOperation", status=403, times=None)
    with pytest.raises(AwsAccessError) as refused:
        Ec2Inventory(factory.ec2(REGION), REGION).read()
    assert refused.value.operation == operation and refused.value.code == "UnauthorizedOperation"


# --- EC2's own guards of what is about to be acted on ---


def test_termination_and_stop_protection_are_read_per_instance(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    no_terminate, no_stop = launch(factory), launch(factory)
    ec2.modify_instance_attribute(InstanceId=no_terminate, DisableApiTermination={"Value": True})
    ec2.modify_instance_attribute(InstanceId=no_stop, DisableApiStop={"Value": True})
    free = launch(factory)
    guards = read_guards(ec2, [no_terminate, no_stop, free], [])
    assert guards.termination_protected == {no_terminate}
    assert guards.stop_protected == {no_stop}
    assert guards.unreadable == {}


def test_a_shared_snapshot_is_known_as_shared(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    shared, public, private = snapshot(factory), snapshot(factory), snapshot(factory)
    ec2.modify_snapshot_attribute(
        SnapshotId=shared, Attribute="createVolumePermission", OperationType="add", UserIds=["111122223333"]
    )
    ec2.modify_snapshot_attribute(
        SnapshotId=public, Attribute="createVolumePermission", OperationType="add", GroupNames=["all"]
    )
    guards = read_guards(ec2, [], [shared, public, private])
    assert guards.shared_snapshots == {shared, public}
    assert guards.unreadable == {}


def test_stop_protection_ec2_will_not_answer_is_unknown_and_protects(factory: ClientFactory) -> None:
    instance_id = launch(factory)
    answer_ec2_error(factory, "DescribeInstanceAttribute", "InvalidParameterValue", lambda b: "disableApiStop" in b)
    guards = read_guards(factory.ec2(REGION), [instance_id], [])
    assert guards.stop_protected == {instance_id}
    assert guards.termination_protected == frozenset() and guards.unreadable == {}


def test_a_guard_that_cannot_be_read_is_reported_by_resource(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    instance_id = launch(factory)
    snap = snapshot(factory)
    gone = "i-0123456789abcdef0"
    answer_ec2_error(factory, "DescribeSnapshotAttribute", "UnauthorizedOperation", lambda _: True)
    guards = read_guards(ec2, [instance_id, gone], [snap])
    assert set(guards.unreadable) == {gone, snap}
    assert "InvalidInstanceID.NotFound" in guards.unreadable[gone]
    assert "UnauthorizedOperation" in guards.unreadable[snap]
    # What failed is reported as unreadable, not as a protection EC2 did not state.
    assert guards.termination_protected == frozenset() and guards.shared_snapshots == frozenset()


def test_guards_are_read_one_call_per_resource_and_attribute_a_few_at_once(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    ids = [launch(factory) for _ in range(4)]
    snaps = [snapshot(factory) for _ in range(2)]
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most

    def slow(**_: Any) -> None:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1

    factory.register("before-call.ec2.DescribeInstanceAttribute", slow)
    factory.register("before-call.ec2.DescribeSnapshotAttribute", slow)
    before = factory.calls.by_operation.copy()
    guards = read_guards(ec2, [*ids, ids[0]], snaps)
    calls = factory.calls.by_operation - before
    assert dict(calls) == {"ec2:DescribeInstanceAttribute": 8, "ec2:DescribeSnapshotAttribute": 2}
    assert 1 < in_flight[1] <= GUARD_WORKERS
    assert guards.unreadable == {}


def test_nothing_to_guard_reads_nothing(factory: ClientFactory) -> None:
    before = factory.calls.total
    assert read_guards(factory.ec2(REGION), [], []) == read_guards(factory.ec2(REGION), (), ())
    assert factory.calls.total == before
