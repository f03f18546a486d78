"""Spot interruptions under moto: checkpoint first, snapshots, persistence, once per warning; recovery and refusals.

The recovery workflow is the definition the stack synthesises (tests/infra holds the two equal), run on
moto's Step Functions interpreter; failures are injected into the workflow's own SDK calls.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.conftest import load_event
from tests.integration.fleet import messages
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.local_lambda import lambda_tasks_in_process
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import clock, names, tags
from trainctl.core.clock import format_instant
from trainctl.core.events import InvalidEvent

REGION = "us-east-1"
WARNED_AT = datetime(2026, 11, 28, 8, 22, tzinfo=UTC)
# When the recovery workflow plans: minutes after the warning, as a reclaim's termination event is handled.
PLANNED_AFTER = timedelta(minutes=3)


@dataclass
class SpotFleet:
    trainer: str
    persistent_volume: str
    scratch_volume: str
    on_demand: str
    out_of_scope: str
    no_template: str
    queue_url: str
    topic_arn: str
    state_machine: str


@pytest.fixture
def factory() -> Iterator[ClientFactory]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield ClientFactory(REGION)


def launch(ec2: Any, *, spot: bool, labels: dict[str, str], template: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"InstanceMarketOptions": {"MarketType": "spot"}} if spot else {}
    if template:
        extra["LaunchTemplate"] = {"LaunchTemplateId": template, "Version": "1"}
    else:
        extra.update(ImageId="ami-0abcdef1234567890", InstanceType="g5.xlarge")
    instance: dict[str, Any] = ec2.run_instances(
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": f"{REGION}a"},
        BlockDeviceMappings=[
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100, "DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 50, "DeleteOnTermination": True}},
        ],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in labels.items()]}],
        **extra,
    )["Instances"][0]
    return instance


@pytest.fixture
def fleet(factory: ClientFactory) -> SpotFleet:
    resources = stack_resources.ensure_on_emulator(factory, (REGION,))
    sqs = factory.client("sqs", REGION)
    queue_url = sqs.create_queue(QueueName="owners")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    factory.sns().subscribe(TopicArn=resources.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    ec2 = factory.ec2(REGION)
    template = ec2.create_launch_template(
        LaunchTemplateName="trainer",
        LaunchTemplateData={"ImageId": "ami-0abcdef1234567890", "InstanceType": "g5.xlarge"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    managed = {tags.MANAGED: "true", tags.OWNER: "carol"}
    trainer = launch(
        ec2, spot=True, template=template, labels={**managed, tags.RECOVER: "true", tags.CHECKPOINT_HOOK: "fast"}
    )
    volumes = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in trainer["BlockDeviceMappings"]}
    # As age_guard stamps what a launch creates: in scope, with the launcher as owner.
    ec2.create_tags(Resources=list(volumes.values()), Tags=[{"Key": k, "Value": v} for k, v in managed.items()])
    ec2.create_tags(Resources=[volumes["/dev/sdf"]], Tags=[{"Key": tags.PERSISTENT, "Value": "true"}])
    assert resources.recovery_state_machine is not None
    return SpotFleet(
        trainer=trainer["InstanceId"],
        persistent_volume=volumes["/dev/sdf"],
        scratch_volume=volumes["/dev/sdg"],
        on_demand=launch(ec2, spot=False, labels=managed)["InstanceId"],
        out_of_scope=launch(ec2, spot=True, labels={tags.OWNER: "dave"})["InstanceId"],
        no_template=launch(ec2, spot=True, labels={**managed, tags.RECOVER: "true"})["InstanceId"],
        queue_url=queue_url,
        topic_arn=resources.topic_arn,
        state_machine=resources.recovery_state_machine,
    )


@pytest.fixture
def handler(
    factory: ClientFactory, fleet: SpotFleet, sent: SentCommands, monkeypatch: pytest.MonkeyPatch
) -> Iterator[types.ModuleType]:
    monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
    monkeypatch.setenv("TRAINCTL_TOPIC_ARN", fleet.topic_arn)
    monkeypatch.setenv("TRAINCTL_SPOT_HOOKS", "default,fast,resume")
    monkeypatch.setenv("TRAINCTL_SPOT_RESUME_HOOK", "resume")
    monkeypatch.setenv("TRAINCTL_SPOT_CHECKPOINT_S3_URI", "s3://team-checkpoints/runs")
    monkeypatch.setenv("TRAINCTL_RECOVERY_STATE_MACHINE_ARN", fleet.state_machine)
    module = load_handler("spot_interruption")
    monkeypatch.setattr(module, "client_factory", lambda: factory)
    module.clock = lambda: WARNED_AT + timedelta(seconds=5)
    module.sleep = lambda _: None
    # The workflow's plan task runs in-process, loaded afresh each time: its clock is the library's.
    monkeypatch.setattr(clock, "system_clock", lambda: WARNED_AT + PLANNED_AFTER)
    with lambda_tasks_in_process({}):
        yield module


def invoke(handler: types.ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = handler.lambda_handler(event, LocalContext(function_name="trainctl-spot_interruption"))
    return result


def spot_event(case: str, instance_id: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = load_event("spot_interruption", case)
    text = json.dumps(event).replace("i-0000000000000000a", instance_id)
    event = json.loads(text)
    event.update(changes)
    return event


class SentCommands:
    """Every SendCommand as sent, by trainctl and by the workflow (moto's own record lists every instance)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        self.sent.append(dict(params))


@pytest.fixture
def sent(factory: ClientFactory) -> Iterator[SentCommands]:
    recorder = SentCommands()
    factory.register("provide-client-params.ssm.SendCommand", recorder)
    boto3._get_default_session().events.register("provide-client-params.ssm.SendCommand", recorder)
    yield recorder
    boto3._get_default_session().events.unregister("provide-client-params.ssm.SendCommand", recorder)


def spot_snapshots(factory: ClientFactory, instance_id: str) -> list[dict[str, Any]]:
    found = factory.ec2(REGION).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": f"tag:{tags.SPOT_INSTANCE}", "Values": [instance_id]}]
    )["Snapshots"]
    return list(found)


def delete_on_termination(factory: ClientFactory, instance_id: str) -> dict[str, bool]:
    described = factory.ec2(REGION).describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"] for m in described["BlockDeviceMappings"]}


# ---------------------------------------------------------------------------------------------------- warnings


def test_a_warning_checkpoints_then_snapshots_then_keeps_persistent_data(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands
) -> None:
    event = spot_event("warning", fleet.trainer)
    result = invoke(handler, event)
    assert result["status"] == "handled"
    assert [s["step"] for s in result["steps"]] == [
        "checkpoint-command",
        "checkpoint-wait",
        "snapshot",
        "keep-persistent",
        "ledger",
        "notify",
    ]
    assert all(s["outcome"] == "done" for s in result["steps"]), result["steps"]

    assert len(sent.sent) == 1
    assert sent.sent[0]["DocumentName"] == names.SPOT_DOCUMENT
    assert sent.sent[0]["InstanceIds"] == [fleet.trainer]
    assert sent.sent[0]["Parameters"] == {
        "Mode": ["checkpoint"],
        "Signal": ["SIGUSR1"],
        "PidFile": ["/var/run/trainctl/training.pid"],
        "Hook": ["fast"],  # chosen by the tag, from the configured set
        "CheckpointDir": ["/opt/trainctl/checkpoints"],
        "S3Uri": [f"s3://team-checkpoints/runs/{fleet.trainer}/"],
    }

    snapshots = spot_snapshots(factory, fleet.trainer)
    assert {s["VolumeId"] for s in snapshots} == {fleet.persistent_volume, fleet.scratch_volume}
    for snapshot in snapshots:
        labels = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
        assert labels[tags.INTERRUPTION] == event["id"] and labels[tags.MANAGED] == "true"
        assert labels[tags.OWNER] == "carol"

    kept = delete_on_termination(factory, fleet.trainer)
    assert kept[fleet.persistent_volume] is False  # persistent: now outlives the instance
    assert kept[fleet.scratch_volume] is True  # scratch: its snapshot is enough
    assert result["kept_volumes"] == [fleet.persistent_volume]

    told = messages(factory, fleet.queue_url)
    assert len(told) == 1
    assert told[0]["MessageAttributes"]["owner"]["Value"] == "carol"
    assert "checkpoint-command: done" in told[0]["Message"] and "took" in told[0]["Message"]


def test_a_repeated_warning_leads_to_one_set_of_actions(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands
) -> None:
    event = spot_event("warning", fleet.trainer)
    first = invoke(handler, event)
    again = invoke(handler, event)
    assert again == first
    assert len(sent.sent) == 1
    assert len(spot_snapshots(factory, fleet.trainer)) == 2
    assert len(messages(factory, fleet.queue_url)) == 1


def test_a_rebalance_recommendation_only_checkpoints(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands
) -> None:
    result = invoke(handler, spot_event("rebalance", fleet.trainer))
    assert result["status"] == "handled" and result["kind"] == "rebalance"
    assert len(sent.sent) == 1
    assert spot_snapshots(factory, fleet.trainer) == []
    assert delete_on_termination(factory, fleet.trainer)[fleet.persistent_volume] is True
    # The warning that follows is a different event: it does the rest.
    warned = invoke(handler, spot_event("warning", fleet.trainer))
    assert warned["status"] == "handled" and len(spot_snapshots(factory, fleet.trainer)) == 2


def test_a_hook_a_tag_asks_for_must_be_configured(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands
) -> None:
    factory.ec2(REGION).create_tags(
        Resources=[fleet.trainer], Tags=[{"Key": tags.CHECKPOINT_HOOK, "Value": "rm -rf /; curl evil"}]
    )
    result = invoke(handler, spot_event("warning", fleet.trainer))
    assert sent.sent[0]["Parameters"]["Hook"] == ["default"]
    assert any("is not a configured hook" in note for note in result["notes"])


def test_without_ssm_the_data_is_still_saved(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    from tests.integration.faults import Faults

    faults = Faults(factory)
    faults.fail("SendCommand", code="InvalidInstanceId", status=400, times=None)
    result = invoke(handler, spot_event("warning", fleet.trainer))
    outcomes = {s["step"]: s["outcome"] for s in result["steps"]}
    assert outcomes["checkpoint-command"] == "failed"
    assert outcomes["snapshot"] == "done" and outcomes["keep-persistent"] == "done"
    assert "checkpoint-command failed" in messages(factory, fleet.queue_url)[0]["Subject"]


@pytest.mark.parametrize(
    ("instance", "reason"),
    [
        ("missing", "unknown instance"),
        ("on_demand", "not a spot instance"),
        ("out_of_scope", "out of scope"),
        ("gone", "already gone"),
    ],
)
def test_refusals_are_clear_and_do_nothing(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands, instance: str, reason: str
) -> None:
    if instance == "missing":
        instance_id = "i-0123456789abcdef0"
    elif instance == "gone":
        instance_id = fleet.trainer
        factory.ec2(REGION).terminate_instances(InstanceIds=[instance_id])
    else:
        instance_id = getattr(fleet, instance)
    before = dict(factory.calls.by_operation)
    result = invoke(handler, spot_event("warning", instance_id))
    assert result["status"] == "refused" and reason in result["reason"]
    writes = {op for op, n in factory.calls.by_operation.items() if n != before.get(op, 0)}
    # Only the idempotency record and the read of the instance: no command, snapshot, change or message.
    assert writes <= {"ec2:DescribeInstances", "dynamodb:PutItem", "dynamodb:UpdateItem"}, writes
    assert sent.sent == [] and messages(factory, fleet.queue_url) == []


@pytest.mark.parametrize("case", ["malformed_instance_id", "malformed_action", "malformed_detail_type"])
def test_malformed_events_are_refused_before_anything(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, case: str
) -> None:
    before = factory.calls.total
    with pytest.raises(InvalidEvent):
        invoke(handler, load_event("spot_interruption", case))
    assert factory.calls.total == before


# ---------------------------------------------------------------------------------------------------- recovery


def wait_for(factory: ClientFactory, execution_arn: str) -> dict[str, Any]:
    sfn = factory.client("stepfunctions", REGION)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError("the recovery workflow did not finish")


def recovered_instances(factory: ClientFactory, instance_id: str) -> list[dict[str, Any]]:
    reservations = factory.ec2(REGION).describe_instances(
        Filters=[{"Name": f"tag:{tags.RECOVERED_FROM}", "Values": [instance_id]}]
    )["Reservations"]
    return [i for r in reservations for i in r["Instances"]]


def terminate(factory: ClientFactory, instance_id: str, *, by_ec2: bool) -> None:
    """Terminate the instance: by EC2 taking back its capacity, or (as moto records any termination) by request."""
    factory.ec2(REGION).terminate_instances(InstanceIds=[instance_id])
    if by_ec2:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends
        from moto.ec2.models.instances import StateReason

        instance = ec2_backends[DEFAULT_ACCOUNT_ID][REGION].get_instance(instance_id)
        instance.state_reason = StateReason(
            "Server.SpotInstanceTermination: Spot instance termination", "Server.SpotInstanceTermination"
        )


def reclaim(
    handler: types.ModuleType,
    factory: ClientFactory,
    instance_id: str,
    *,
    after: timedelta = timedelta(minutes=2),
    by_ec2: bool = True,
    warning: str = "warning",
) -> dict[str, Any]:
    """The warning, then EC2 takes the instance (`after` the warning), then its termination event."""
    invoke(handler, spot_event(warning, instance_id))
    terminate(factory, instance_id, by_ec2=by_ec2)
    ended = spot_event("terminated", instance_id, time=format_instant(WARNED_AT + after))
    return invoke(handler, ended)


def test_recovery_relaunches_in_another_zone_restores_the_data_and_resumes(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands
) -> None:
    started = reclaim(handler, factory, fleet.trainer)
    assert started["status"] == "recovery-started", started
    finished = wait_for(factory, started["execution_arn"])
    assert finished["status"] == "SUCCEEDED", finished
    [new] = recovered_instances(factory, fleet.trainer)
    assert new["State"]["Name"] == "running"
    assert new["Placement"]["AvailabilityZone"] != f"{REGION}a"  # the lost zone is skipped
    restored = {m["DeviceName"]: m["Ebs"] for m in new["BlockDeviceMappings"]}
    assert {"/dev/sdf", "/dev/sdg"} <= set(restored)
    assert all(not restored[d]["DeleteOnTermination"] for d in ("/dev/sdf", "/dev/sdg"))
    snapshots = {s["SnapshotId"] for s in spot_snapshots(factory, fleet.trainer)}
    volumes = factory.ec2(REGION).describe_volumes(VolumeIds=[restored["/dev/sdf"]["VolumeId"]])["Volumes"]
    assert volumes[0]["SnapshotId"] in snapshots
    resumed = [c for c in sent.sent if c["Parameters"].get("Mode") == ["resume"]]
    assert (
        resumed and resumed[0]["InstanceIds"] == [new["InstanceId"]] and resumed[0]["Parameters"]["Hook"] == ["resume"]
    )
    subjects = [m["Subject"] for m in messages(factory, fleet.queue_url)]
    assert "trainctl spot: recovered" in subjects
    # The same termination event again starts nothing new.
    again = invoke(
        handler, spot_event("terminated", fleet.trainer, time=format_instant(WARNED_AT + timedelta(minutes=2)))
    )
    assert again == started
    assert len(recovered_instances(factory, fleet.trainer)) == 1


@pytest.mark.parametrize("operation", ["DescribeInstances", "ModifyInstanceAttribute", "SendCommand"])
def test_every_failure_after_the_launch_is_compensated(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, workflow_fault: Any, operation: str
) -> None:
    # The plan's own reads are not the workflow's SDK calls: the fault reaches only what follows the launch.
    fault = workflow_fault(operation)
    started = reclaim(handler, factory, fleet.trainer)
    finished = wait_for(factory, started["execution_arn"])
    assert finished["status"] == "FAILED" and finished["error"] == "RecoveryFailed"
    assert fault.hits >= 1
    launched = recovered_instances(factory, fleet.trainer)
    assert launched, "each zone was tried"
    assert {i["State"]["Name"] for i in launched} == {"terminated"}  # nothing half-built left running
    # The snapshots, the only copy of the data, are untouched.
    assert len(spot_snapshots(factory, fleet.trainer)) == 2


def test_a_message_that_cannot_be_sent_leaves_the_recovered_instance_running(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, workflow_fault: Any
) -> None:
    fault = workflow_fault("Publish")
    started = reclaim(handler, factory, fleet.trainer)
    assert wait_for(factory, started["execution_arn"])["status"] == "SUCCEEDED"
    assert fault.hits == 1
    assert [i["State"]["Name"] for i in recovered_instances(factory, fleet.trainer)] == ["running"]


def test_recovery_gives_up_after_its_attempts_and_tells_the_owner(
    handler: types.ModuleType,
    factory: ClientFactory,
    fleet: SpotFleet,
    workflow_fault: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINCTL_RECOVERY_MAX_ATTEMPTS", "2")
    handler.deployed_settings.cache_clear()
    fault = workflow_fault("RunInstances")
    started = reclaim(handler, factory, fleet.trainer)
    finished = wait_for(factory, started["execution_arn"])
    assert finished["status"] == "FAILED"
    assert fault.hits == 2  # two zones, then it stops
    assert recovered_instances(factory, fleet.trainer) == []
    assert "trainctl spot: recovery gave up" in [m["Subject"] for m in messages(factory, fleet.queue_url)]


@pytest.mark.parametrize(
    ("who", "reason"),
    [("no_template", "without a launch template"), ("on_demand", "not a spot instance")],
)
def test_what_cannot_be_recovered_is_said(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, who: str, reason: str
) -> None:
    instance_id = getattr(fleet, who)
    result = reclaim(handler, factory, instance_id)
    assert reason in result["reason"] and result["execution_arn"] is None
    assert recovered_instances(factory, instance_id) == []


def test_a_termination_nobody_was_warned_of_is_not_recovered(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    factory.ec2(REGION).terminate_instances(InstanceIds=[fleet.trainer])  # a person did it
    result = invoke(handler, spot_event("terminated", fleet.trainer))
    assert result["status"] == "ignored" and "not reclaimed" in result["reason"]
    assert recovered_instances(factory, fleet.trainer) == []


def stop_warning(instance_id: str) -> dict[str, Any]:
    event = spot_event("warning", instance_id, id="7a1c4e2f-3b5d-4f6a-8c9e-stopwarning1")
    event["detail"]["instance-action"] = "stop"
    return event


@pytest.mark.parametrize(
    ("story", "reason"),
    [
        ("stop-warning-then-terminated", "no terminate warning"),
        ("terminated-a-week-after-its-warning", "no terminate warning"),
        ("terminated-by-a-person-after-the-warning", "terminated by request (Client.UserInitiatedShutdown)"),
        ("no-warning-only-ec2s-word", "no terminate warning"),
    ],
)
def test_a_termination_that_did_not_follow_a_terminate_warning_by_minutes_is_not_recovered(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands, story: str, reason: str
) -> None:
    """Issue 17 item 5: any handled warning in 180 days of ledger history counted as "reclaimed"."""
    if story == "stop-warning-then-terminated":
        # A stop warning was handled; whatever ends the instance next, that warning did not announce it.
        assert invoke(handler, stop_warning(fleet.trainer))["status"] == "handled"
        terminate(factory, fleet.trainer, by_ec2=True)
        result = invoke(
            handler, spot_event("terminated", fleet.trainer, time=format_instant(WARNED_AT + timedelta(minutes=4)))
        )
    elif story == "terminated-a-week-after-its-warning":
        result = reclaim(handler, factory, fleet.trainer, after=timedelta(days=7))
    elif story == "terminated-by-a-person-after-the-warning":
        result = reclaim(handler, factory, fleet.trainer, by_ec2=False)
    else:
        terminate(factory, fleet.trainer, by_ec2=True)
        result = invoke(handler, spot_event("terminated", fleet.trainer, time=format_instant(WARNED_AT)))
    assert result["status"] == "ignored" and reason in result["reason"], result
    assert result["execution_arn"] is None and recovered_instances(factory, fleet.trainer) == []


def test_a_warning_whose_arn_names_only_a_zone_is_handled_and_recovered_from(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    """Item 14: spot warnings name the instance by an ARN with the availability zone and no account."""
    event = spot_event("warning_zone_arn", fleet.trainer)
    assert event["resources"] == [f"arn:aws:ec2:{REGION}a:instance/{fleet.trainer}"]
    assert invoke(handler, event)["status"] == "handled"
    terminate(factory, fleet.trainer, by_ec2=True)
    ended = spot_event("terminated", fleet.trainer, time=format_instant(WARNED_AT + timedelta(minutes=3)))
    assert invoke(handler, ended)["status"] == "recovery-started"


def test_an_owner_tag_cannot_forge_lines_or_attributes_in_the_spot_notice(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    """Item 4: a newline in trainctl:owner forged lines in the notice and reached the owner attribute as it was."""
    forged = "carol\nsnapshots: none were taken\u202e"
    factory.ec2(REGION).create_tags(Resources=[fleet.trainer], Tags=[{"Key": tags.OWNER, "Value": forged}])
    factory.ec2(REGION).create_tags(
        Resources=[fleet.trainer], Tags=[{"Key": tags.CHECKPOINT_HOOK, "Value": "x\nkept: everything"}]
    )
    invoke(handler, spot_event("warning", fleet.trainer))
    [told] = messages(factory, fleet.queue_url)
    assert told["MessageAttributes"]["owner"]["Value"] == "carol\\nsnapshots: none were taken\\u202e"
    lines = told["Message"].splitlines()
    assert not any(line.startswith(("snapshots: none", "kept: everything")) for line in lines), lines
    assert all(ch.isprintable() for line in lines for ch in line)


def template_of(instance: dict[str, Any]) -> str | None:
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == "aws:ec2launchtemplate:id"), None)


def handler_input(handler: types.ModuleType, factory: ClientFactory, instance_id: str) -> dict[str, Any]:
    """The input the handler gives the workflow on a reclaim, captured instead of started.

    moto's interpreter cannot start a second execution of a state machine that already ran one.
    """
    captured: dict[str, Any] = {}

    def capture(params: dict[str, Any], **_: Any) -> None:
        captured.update(params)

    def block(**_: Any) -> Any:
        started = {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:x:y", "startDate": WARNED_AT}
        return types.SimpleNamespace(status_code=200, headers={}, raw=None), started

    factory.register("provide-client-params.sfn.StartExecution", capture)
    factory.register("before-call.sfn.StartExecution", block)
    assert reclaim(handler, factory, instance_id)["status"] == "recovery-started"
    found: dict[str, Any] = json.loads(captured["input"])
    return found


def test_the_recovery_input_is_the_instance_id_alone(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    """Issue 25: the workflow reads everything else from EC2 and the spot handler's record."""
    assert handler_input(handler, factory, fleet.trainer) == {"instance_id": fleet.trainer}


def start_by_hand(fleet: SpotFleet, execution_input: dict[str, Any]) -> str:
    # Not through the factory, whose StartExecution handler_input blocked.
    started = boto3.client("stepfunctions", region_name=REGION).start_execution(
        stateMachineArn=fleet.state_machine, name="by-hand", input=json.dumps(execution_input)
    )
    return str(started["executionArn"])


def test_the_workflow_refuses_a_launch_template_or_tags_in_its_input_by_name(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    """Issue 17 item 6: a hand-written input naming another launch template (an admin profile, say) launched it."""
    ec2 = factory.ec2(REGION)
    admin = ec2.create_launch_template(
        LaunchTemplateName="admin",
        LaunchTemplateData={"ImageId": "ami-0abcdef1234567890", "InstanceType": "m5.large"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    forged = {
        **handler_input(handler, factory, fleet.trainer),
        "launch_template": {"LaunchTemplateId": admin, "Version": "1"},
    }
    finished = wait_for(factory, start_by_hand(fleet, forged))
    assert finished["status"] == "FAILED" and finished["error"] == "NotRecoverable"
    assert "unexpected field 'launch_template'" in finished["cause"]
    assert recovered_instances(factory, fleet.trainer) == []


@pytest.mark.parametrize("who", ["out_of_scope", "no_template"])
def test_the_workflow_refuses_an_instance_out_of_scope_or_without_a_template(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, who: str
) -> None:
    instance_id = getattr(fleet, who)
    handler_input(handler, factory, fleet.trainer)
    finished = wait_for(factory, start_by_hand(fleet, {"instance_id": instance_id}))
    assert finished["status"] == "FAILED" and finished["error"] == "NotRecoverable"
    assert recovered_instances(factory, instance_id) == []
    assert recovered_instances(factory, fleet.trainer) == []
