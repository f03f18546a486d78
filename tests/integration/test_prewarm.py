"""The pre-warm workflow, as the stack synthesises it (tests/infra holds the shipped copy equal), on moto's
Step Functions interpreter with its two Lambda tasks dispatched to the handlers in-process."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from tests.integration.conftest import run_cli
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.local_lambda import InProcessLambda, forget_finished_workers, lambda_tasks_in_process
from trainctl.core import names, tags

REGION = "us-east-1"
runner = CliRunner()


@dataclass
class Account:
    factory: ClientFactory
    state_machine: str
    volume_id: str
    lambdas: InProcessLambda
    commands: list[dict[str, Any]]
    launches: list[dict[str, Any]]


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        factory = ClientFactory(REGION)
        resources = stack_resources.ensure_on_emulator(factory, (REGION,))
        s3 = factory.client("s3", REGION)
        s3.create_bucket(Bucket="datasets")
        for shard in range(3):
            s3.put_object(Bucket="datasets", Key=f"imagenet/shard-{shard}.tar", Body=b"x" * 4096)
        # In scope, and not claimed by anyone yet: a volume pre-warm may fill (issue 17 item 7).
        volume_id = factory.ec2(REGION).create_volume(
            Size=100,
            AvailabilityZone=f"{REGION}a",
            VolumeType="gp3",
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
        )["VolumeId"]
        commands: list[dict[str, Any]] = []
        launches: list[dict[str, Any]] = []

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            (commands if model.name == "SendCommand" else launches).append(dict(params))

        events = boto3._get_default_session().events
        for event in ("provide-client-params.ssm.SendCommand", "provide-client-params.ec2.RunInstances"):
            events.register(event, record)
        assert resources.prewarm_state_machine and resources.prewarm_instance_profile
        environment = {"TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN": resources.prewarm_instance_profile}
        with lambda_tasks_in_process(environment) as lambdas:
            yield Account(factory, resources.prewarm_state_machine, volume_id, lambdas, commands, launches)
        for event in ("provide-client-params.ssm.SendCommand", "provide-client-params.ec2.RunInstances"):
            events.unregister(event, record)


@pytest.fixture
def on_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    """As against an emulator: the stack's resources are there, made by ensure_on_emulator."""
    monkeypatch.setattr(
        stack_resources,
        "resolve",
        lambda factory, _env, regions: stack_resources.ensure_on_emulator(factory, regions),
    )


def execute(account: Account, **request: Any) -> dict[str, Any]:
    payload = {
        "volume_id": account.volume_id,
        "volume": None,
        "s3_uri": "s3://datasets/imagenet/",
        "mount_point": "/mnt/prewarm",
        "instance_id": None,
        "snapshot": False,
        **request,
    }
    forget_finished_workers()
    sfn = account.factory.client("stepfunctions", REGION)
    arn = sfn.start_execution(
        stateMachineArn=account.state_machine, name=f"test-{uuid.uuid4().hex}", input=json.dumps(payload)
    )["executionArn"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            described["entered"] = [
                e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")
            ]
            return described
        time.sleep(0.1)
    raise AssertionError("the pre-warm workflow did not finish")


def instances(account: Account) -> list[dict[str, Any]]:
    reservations = account.factory.ec2(REGION).describe_instances()["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def workers(account: Account) -> list[dict[str, Any]]:
    return [i for i in instances(account) if {"Key": tags.ROLE, "Value": tags.PREWARM_WORKER_ROLE} in i.get("Tags", [])]


def volume(account: Account, volume_id: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = account.factory.ec2(REGION).describe_volumes(VolumeIds=[volume_id or account.volume_id])[
        "Volumes"
    ][0]
    return found


def labels(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def assert_clean(account: Account, volume_id: str | None = None) -> None:
    """What every run leaves: no worker running, the volume there, whole and detached."""
    assert {w["State"]["Name"] for w in workers(account)} <= {"terminated"}
    left = volume(account, volume_id)
    assert left["State"] == "available" and not left.get("Attachments")


def test_a_new_worker_fills_the_volume_and_leaves_nothing_behind(account: Account) -> None:
    result = execute(account, snapshot=True)
    assert result["status"] == "SUCCEEDED", result
    assert_clean(account)
    [worker] = workers(account)
    assert worker["Placement"]["AvailabilityZone"] == f"{REGION}a"  # the volume's zone
    assert labels(worker)[tags.MANAGED] == "true"
    assert worker["InstanceType"] == "m6i.large"  # sized: a gp3 at 125 MiB/s and 12 KiB of data
    [launch] = account.launches
    assert launch["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2
    assert launch["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{names.PREWARM_PROFILE}")
    assert launch["ImageId"].startswith("ami-")  # from the public Amazon Linux parameter
    tagged = labels(volume(account))
    assert tagged[tags.PREWARMED_FROM] == "s3://datasets/imagenet/"
    assert tagged[tags.PREWARMED_AT]
    [command] = account.commands
    assert command["DocumentName"] == names.PREWARM_DOCUMENT
    assert command["Parameters"] == {
        "VolumeId": [account.volume_id],
        "MountPoint": ["/mnt/prewarm"],
        "S3Uri": ["s3://datasets/imagenet/"],
        "ReadAllBlocks": ["false"],  # an empty new volume needs no initialisation
    }
    snapshots = account.factory.ec2(REGION).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [account.volume_id]}]
    )["Snapshots"]
    assert len(snapshots) == 1
    assert account.lambdas.invocations == ["prewarm_plan", "prewarm_report"]


def test_an_existing_instance_is_used_and_kept(account: Account) -> None:
    ec2 = account.factory.ec2(REGION)
    mine = ec2.run_instances(
        ImageId="ami-0abcdef1234567890",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": f"{REGION}a"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
    )["Instances"][0]["InstanceId"]
    result = execute(account, instance_id=mine)
    assert result["status"] == "SUCCEEDED", result
    assert "LaunchWorker" not in result["entered"] and "TerminateWorker" not in result["entered"]
    assert [i["State"]["Name"] for i in instances(account)] == ["running"]  # the caller's, untouched
    assert workers(account) == []
    assert_clean(account)
    assert account.commands[0]["InstanceIds"] == [mine]


def test_a_volume_restored_from_a_snapshot_is_read_in_full_unless_initialised_at_a_rate(account: Account) -> None:
    ec2 = account.factory.ec2(REGION)
    # In scope, as `trainctl ebs snapshot` copies the volume's scope tag: an out-of-scope one is not restored.
    in_scope = [{"ResourceType": "snapshot", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}]
    snapshot = ec2.create_snapshot(VolumeId=account.volume_id, TagSpecifications=in_scope)["SnapshotId"]
    spec = {"size_gib": 100, "volume_type": "gp3", "zone": f"{REGION}b", "snapshot_id": snapshot}
    restored = execute(account, volume_id=None, volume=spec)
    assert restored["status"] == "SUCCEEDED", restored
    assert "RestoreVolume" in restored["entered"]
    assert account.commands[-1]["Parameters"]["ReadAllBlocks"] == ["true"]
    at_rate = execute(account, volume_id=None, volume={**spec, "initialization_rate": 200})
    assert at_rate["status"] == "SUCCEEDED", at_rate
    assert "RestoreVolumeAtRate" in at_rate["entered"]
    assert account.commands[-1]["Parameters"]["ReadAllBlocks"] == ["false"]
    created = account.commands[-1]["Parameters"]["VolumeId"][0]
    assert_clean(account, created)
    assert labels(volume(account, created))[tags.PREWARMED_FROM] == "s3://datasets/imagenet/"


@pytest.mark.parametrize(
    ("operation", "times"),
    [
        ("DescribeInstances", None),  # waiting for the worker
        ("AttachVolume", None),
        ("SendCommand", None),
        ("GetCommandInvocation", None),
        ("DetachVolume", 1),  # compensation's own detach then succeeds
        ("TerminateInstances", 1),  # retried: the worker still goes
    ],
)
def test_a_failure_at_any_step_leaves_no_worker_and_the_volume_detached(
    account: Account, workflow_fault: Any, operation: str, times: int | None
) -> None:
    fault = workflow_fault(operation, times=times)
    result = execute(account)
    assert fault.hits >= 1
    if operation == "TerminateInstances":
        assert result["status"] == "SUCCEEDED", result  # the retry did it
    else:
        assert result["status"] == "FAILED" and result["error"] == "PrewarmFailed", result
        assert "injected" in result["cause"] or "InjectedFailure" in result["cause"]
    assert_clean(account)


def test_a_failed_command_is_compensated_with_its_status_as_the_cause(account: Account, workflow_fault: Any) -> None:
    workflow_fault("GetCommandInvocation", response={"Status": "Failed", "StandardOutputContent": "sync failed"})
    result = execute(account)
    assert result["status"] == "FAILED" and "ended Failed" in result["cause"]
    assert "CompensateDetach" in result["entered"]
    assert_clean(account)


@pytest.mark.parametrize(
    ("request_change", "reason"),
    [
        ({"s3_uri": "s3://datasets/x; rm -rf /"}, "s3_uri"),
        ({"mount_point": "/etc"}, "mount_point"),
        ({"volume_id": "vol-0123456789abcdef0"}, "does not exist"),
        ({"volume_id": None}, "either volume_id or a volume spec"),
        ({"volume": {"size_gib": 10, "zone": "us-east-1a"}}, "not both"),
        ({"instance_id": "other-zone"}, "the volume in us-east-1a"),
        ({"instance_id": "out-of-scope"}, "out of scope"),
        ({"volume_id": "in-use"}, "not available"),
        ({"volume": {"size_gib": 10, "zone": "us-east-1a", "initialization_rate": 200}, "volume_id": None}, "snapshot"),
        # Issue 17 item 7: another person's persistent, out-of-scope volume was attached to a root worker and filled.
        ({"volume_id": "someone-elses-dataset"}, "out of scope"),
        ({"volume_id": "owned-by-bob"}, "owned by bob, not by a request that names none"),
        ({"volume_id": "persistent"}, "tagged trainctl:persistent"),
        ({"mount_point": "/mnt/.."}, "mount_point"),
        ({"mount_point": "/mnt/."}, "mount_point"),
        ({"s3_uri": "s3://datasets/imagenet/../private/"}, "s3_uri"),
    ],
)
def test_invalid_requests_are_refused_before_any_launch(
    account: Account, request_change: dict[str, Any], reason: str
) -> None:
    ec2 = account.factory.ec2(REGION)
    change = dict(request_change)
    if change.get("instance_id") == "other-zone":
        change["instance_id"] = ec2.run_instances(
            ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1, Placement={"AvailabilityZone": f"{REGION}b"}
        )["Instances"][0]["InstanceId"]
    if change.get("instance_id") == "out-of-scope":
        change["instance_id"] = ec2.run_instances(
            ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1, Placement={"AvailabilityZone": f"{REGION}a"}
        )["Instances"][0]["InstanceId"]
    labelled = {
        "someone-elses-dataset": {tags.OWNER: "bob", tags.PERSISTENT: "true"},
        "owned-by-bob": {tags.MANAGED: "true", tags.OWNER: "bob"},
        "persistent": {tags.MANAGED: "true", tags.PERSISTENT: "true"},
    }.get(str(change.get("volume_id")))
    if labelled is not None:
        change["volume_id"] = ec2.create_volume(
            Size=100,
            AvailabilityZone=f"{REGION}a",
            TagSpecifications=[
                {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in labelled.items()]}
            ],
        )["VolumeId"]
    if change.get("volume_id") == "in-use":
        busy = ec2.create_volume(
            Size=10,
            AvailabilityZone=f"{REGION}a",
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
        )["VolumeId"]
        holder = ec2.run_instances(ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1)["Instances"][0]
        ec2.attach_volume(VolumeId=busy, InstanceId=holder["InstanceId"], Device="/dev/sdh")
        change["volume_id"] = busy
    before = {i["InstanceId"] for i in instances(account)}
    result = execute(account, **change)
    assert result["status"] == "FAILED" and result["error"] == "InvalidRequest", result
    assert reason in result["cause"]
    assert result["entered"] == ["Plan", "Refused"]
    assert {i["InstanceId"] for i in instances(account)} == before  # nothing launched
    assert account.commands == []


def test_the_command_line_follows_the_workflow(account: Account, on_emulator: None) -> None:
    shown = run_cli(account.factory, ["prewarm", account.volume_id, "s3://datasets/imagenet/"])
    assert shown.exit_code == 0, shown.output
    assert "attaching the volume" in shown.stdout and "SUCCEEDED" in shown.stdout
    forget_finished_workers()
    as_json = run_cli(account.factory, ["prewarm", account.volume_id, "s3://datasets/imagenet/", "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert report["status"] == "SUCCEEDED" and report["state_transitions"] > 10
    refused = run_cli(account.factory, ["prewarm", account.volume_id, "s3://BAD"])
    assert refused.exit_code == 2 and "s3_uri" in refused.stderr
    forget_finished_workers()
    failed = run_cli(account.factory, ["prewarm", "vol-0123456789abcdef0", "s3://datasets/imagenet/", "--json"])
    assert failed.exit_code == 1 and json.loads(failed.stdout)["error"] == "InvalidRequest"


@pytest.mark.parametrize(
    ("labelled", "request_change"),
    [
        ({tags.MANAGED: "true", tags.OWNER: "bob"}, {"owner": "bob"}),
        ({tags.MANAGED: "true", tags.PERSISTENT: "true"}, {"force": True}),
    ],
    ids=["the-owner-fills-their-own-volume", "a-persistent-volume-with-force"],
)
def test_the_request_owner_and_force_reach_the_plan(
    account: Account, labelled: dict[str, str], request_change: dict[str, Any]
) -> None:
    """The Plan state forwards the whole request: an owner's own volume and a forced persistent one are filled."""
    volume_id = account.factory.ec2(REGION).create_volume(
        Size=100,
        AvailabilityZone=f"{REGION}a",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in labelled.items()]}],
    )["VolumeId"]
    result = execute(account, volume_id=volume_id, **request_change)
    assert result["status"] == "SUCCEEDED", result
    assert len(account.commands) == 1
    assert_clean(account, volume_id)


def test_a_request_with_a_field_the_plan_does_not_know_is_refused(account: Account) -> None:
    result = execute(account, instance_profile="arn:aws:iam::123456789012:instance-profile/admin")
    assert result["status"] == "FAILED" and result["error"] == "InvalidRequest", result
    assert result["entered"] == ["Plan", "Refused"]
    assert account.launches == []


def test_the_command_line_names_its_owner_to_the_workflow(
    account: Account, on_emulator: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_OWNER", "carol")
    owned = account.factory.ec2(REGION).create_volume(
        Size=100,
        AvailabilityZone=f"{REGION}a",
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "carol"}],
            }
        ],
    )["VolumeId"]
    shown = run_cli(account.factory, ["prewarm", owned, "s3://datasets/imagenet/"])
    assert shown.exit_code == 0, shown.output
    assert "SUCCEEDED" in shown.stdout


def test_a_snapshot_of_this_account_restores_only_for_its_owner(account: Account) -> None:
    """Restoring bob's snapshot into a volume mallory asked for would copy bob's data to her: refused."""
    ec2 = account.factory.ec2(REGION)
    bobs = ec2.create_snapshot(
        VolumeId=account.volume_id,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": [{"Key": tags.OWNER, "Value": "bob"}, {"Key": tags.MANAGED, "Value": "true"}],
            }
        ],
    )["SnapshotId"]
    spec = {"size_gib": 100, "volume_type": "gp3", "zone": f"{REGION}a", "snapshot_id": bobs}
    refused = execute(account, volume_id=None, volume=spec, owner="mallory")
    assert refused["status"] == "FAILED" and refused["error"] == "InvalidRequest", refused
    assert "owned by bob" in refused["cause"] and refused["entered"] == ["Plan", "Refused"]
    assert execute(account, volume_id=None, volume=spec, owner="bob")["status"] == "SUCCEEDED"
