# ruff: noqa: F811 - the fixtures are test_spot_interruption's, imported by name
"""Issue 25: spot recovery trusts nothing in its input, and a long-past warning saves and recovers nothing.

Mallory hand-writes an execution input naming Bob's running instance, `owner: mallory` and Carol's snapshot: the
workflow must launch nothing. It starts from an instance id alone, requires that instance reclaimed by EC2 after a
warning the spot handler recorded, and restores only that record's checkpoints of that very instance.
"""

from __future__ import annotations

import json
import types
import uuid
from datetime import timedelta
from typing import Any

import boto3
import pytest

from tests.integration.fleet import messages
from tests.integration.test_spot_interruption import (  # noqa: F401 - fixtures
    REGION,
    WARNED_AT,
    SentCommands,
    SpotFleet,
    delete_on_termination,
    factory,
    fleet,
    handler,
    invoke,
    launch,
    reclaim,
    recovered_instances,
    sent,
    spot_event,
    spot_snapshots,
    terminate,
    wait_for,
)
from trainctl.aws import ledger
from trainctl.aws.clients import ClientFactory
from trainctl.cli.local_lambda import forget_finished_workers
from trainctl.core import clock, tags
from trainctl.core.clock import format_instant


def start_by_hand(fleet: SpotFleet, execution_input: dict[str, Any]) -> dict[str, Any]:
    """What anyone allowed StartExecution can do: any input, any name."""
    forget_finished_workers()
    started = boto3.client("stepfunctions", region_name=REGION).start_execution(
        stateMachineArn=fleet.state_machine, name=f"by-hand-{uuid.uuid4().hex[:8]}", input=json.dumps(execution_input)
    )
    return {"execution_arn": started["executionArn"]}


def template_of(factory: ClientFactory, instance_id: str) -> str:
    described = factory.ec2(REGION).describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return str(next(t["Value"] for t in described["Tags"] if t["Key"] == "aws:ec2launchtemplate:id"))


def bobs_running_instance(factory: ClientFactory, fleet: SpotFleet) -> str:
    labels = {tags.MANAGED: "true", tags.OWNER: "bob", tags.RECOVER: "true"}
    instance = launch(factory.ec2(REGION), spot=True, template=template_of(factory, fleet.trainer), labels=labels)
    return str(instance["InstanceId"])


def carols_snapshot(factory: ClientFactory, fleet: SpotFleet) -> str:
    """Carol's own snapshot of her data: stamped with her name, as age_guard stamps what people create."""
    return str(
        factory.ec2(REGION).create_snapshot(
            VolumeId=fleet.persistent_volume,
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [
                        {"Key": tags.OWNER, "Value": "carol"},
                        {"Key": tags.CREATED_BY, "Value": "arn:aws:iam::123456789012:user/carol"},
                    ],
                }
            ],
        )["SnapshotId"]
    )


def mallorys_input(instance_id: str, snapshot_id: str) -> dict[str, Any]:
    restore = {"DeviceName": "/dev/sdf", "Ebs": {"SnapshotId": snapshot_id, "VolumeType": "gp3"}}
    return {
        "instance_id": instance_id,
        "owner": "mallory",
        "zones": [f"{REGION}b"],
        "attempt": 0,
        "max_attempts": 1,
        "block_devices": [{**restore, "Ebs": {**restore["Ebs"], "DeleteOnTermination": True}}],
        "keep_mappings": [{"DeviceName": "/dev/sdf", "Ebs": {"DeleteOnTermination": False}}],
        "resume": {"document": "trainctl-spot-checkpoint", "parameters": {"Mode": ["resume"]}},
        "topic_arn": "",
    }


def test_a_hand_written_input_naming_bobs_instance_mallory_and_carols_snapshot_launches_nothing(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    bob = bobs_running_instance(factory, fleet)
    forged = mallorys_input(bob, carols_snapshot(factory, fleet))
    finished = wait_for(factory, start_by_hand(fleet, forged)["execution_arn"])
    assert finished["status"] == "FAILED" and finished["error"] == "NotRecoverable", finished
    assert "unexpected field 'owner'" in finished["cause"]
    assert recovered_instances(factory, bob) == []
    owned_by_mallory = factory.ec2(REGION).describe_instances(
        Filters=[{"Name": f"tag:{tags.OWNER}", "Values": ["mallory"]}]
    )["Reservations"]
    assert owned_by_mallory == []


@pytest.mark.parametrize(
    "field", ["owner", "zones", "block_devices", "keep_mappings", "resume", "topic_arn", "launch_template"]
)
def test_every_field_but_the_instance_id_is_refused_by_name(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, field: str
) -> None:
    """Even beside the id of an instance EC2 did reclaim after a recorded warning."""
    recovering = reclaim(handler, factory, fleet.trainer, by_ec2=True)
    assert wait_for(factory, recovering["execution_arn"])["status"] == "SUCCEEDED"
    values = {
        **mallorys_input(fleet.trainer, "snap-0123456789abcdef0"),
        "launch_template": {"LaunchTemplateId": "lt-0123456789abcdef0", "Version": "1"},
    }
    forged = {"instance_id": fleet.trainer, field: values[field]}
    finished = wait_for(factory, start_by_hand(fleet, forged)["execution_arn"])
    assert finished["status"] == "FAILED" and finished["error"] == "NotRecoverable", finished
    assert f"unexpected field '{field}'" in finished["cause"]
    assert "\n" not in json.loads(finished["cause"]).get("errorMessage", "")
    assert len(recovered_instances(factory, fleet.trainer)) == 1  # the handler's own recovery, and no other


def test_a_running_instance_is_not_recovered_even_by_its_id_alone(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    bob = bobs_running_instance(factory, fleet)
    finished = wait_for(factory, start_by_hand(fleet, {"instance_id": bob})["execution_arn"])
    assert finished["status"] == "FAILED" and finished["error"] == "NotRecoverable", finished
    assert "not reclaimed by EC2" in finished["cause"]
    assert recovered_instances(factory, bob) == []


def test_an_instance_a_person_terminated_after_its_warning_is_not_recovered_by_hand(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    """The handler refuses it (Client.UserInitiatedShutdown); a hand start must not get round that."""
    assert reclaim(handler, factory, fleet.trainer, by_ec2=False)["status"] == "ignored"
    finished = wait_for(factory, start_by_hand(fleet, {"instance_id": fleet.trainer})["execution_arn"])
    assert finished["status"] == "FAILED" and "not reclaimed by EC2" in finished["cause"], finished
    assert recovered_instances(factory, fleet.trainer) == []


def test_recovery_restores_the_records_checkpoints_for_the_records_owner(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    """The owner tag changed after the warning: the relaunched instance is the recorded owner's."""
    invoke(handler, spot_event("warning", fleet.trainer))
    factory.ec2(REGION).create_tags(Resources=[fleet.trainer], Tags=[{"Key": tags.OWNER, "Value": "mallory"}])
    terminate(factory, fleet.trainer, by_ec2=True)
    ended = invoke(
        handler, spot_event("terminated", fleet.trainer, time=format_instant(WARNED_AT + timedelta(minutes=2)))
    )
    assert wait_for(factory, ended["execution_arn"])["status"] == "SUCCEEDED"
    [new] = recovered_instances(factory, fleet.trainer)
    assert {t["Key"]: t["Value"] for t in new["Tags"]}[tags.OWNER] == "carol"
    checkpoints = {s["SnapshotId"] for s in spot_snapshots(factory, fleet.trainer)}
    restored = [m["Ebs"]["VolumeId"] for m in new["BlockDeviceMappings"] if m["DeviceName"] in ("/dev/sdf", "/dev/sdg")]
    volumes = factory.ec2(REGION).describe_volumes(VolumeIds=restored)["Volumes"]
    assert {v["SnapshotId"] for v in volumes} == checkpoints


def test_a_record_naming_a_snapshot_that_is_not_this_instances_checkpoint_is_refused(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet
) -> None:
    """Defence in depth: whatever put Carol's snapshot into the record, the plan checks the spot handler's tag."""
    invoke(handler, spot_event("warning", fleet.trainer))
    dynamodb = factory.dynamodb()
    [item] = dynamodb.query(
        TableName="trainctl-ledger",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": ledger.spot_partition(fleet.trainer)}},
    )["Items"]
    outcome = json.loads(item["outcome"]["S"])
    outcome["snapshots"][0]["snapshot_id"] = carols_snapshot(factory, fleet)
    dynamodb.put_item(TableName="trainctl-ledger", Item={**item, "outcome": {"S": json.dumps(outcome)}})
    terminate(factory, fleet.trainer, by_ec2=True)
    started = invoke(
        handler, spot_event("terminated", fleet.trainer, time=format_instant(WARNED_AT + timedelta(minutes=2)))
    )
    finished = wait_for(factory, started["execution_arn"])
    assert finished["status"] == "FAILED" and finished["error"] == "NotRecoverable", finished
    assert f"is not tagged {tags.SPOT_INSTANCE}={fleet.trainer}" in finished["cause"]
    assert recovered_instances(factory, fleet.trainer) == []


def test_a_hand_start_long_after_the_reclaim_or_after_a_recovery_launches_nothing(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = reclaim(handler, factory, fleet.trainer)
    assert wait_for(factory, started["execution_arn"])["status"] == "SUCCEEDED"
    again = wait_for(factory, start_by_hand(fleet, {"instance_id": fleet.trainer})["execution_arn"])
    assert again["status"] == "FAILED" and "already recovered as" in again["cause"], again
    monkeypatch.setattr(clock, "system_clock", lambda: WARNED_AT + timedelta(hours=1))
    factory.ec2(REGION).terminate_instances(
        InstanceIds=[i["InstanceId"] for i in recovered_instances(factory, fleet.trainer)]
    )
    late = wait_for(factory, start_by_hand(fleet, {"instance_id": fleet.trainer})["execution_arn"])
    assert late["status"] == "FAILED" and "too old" in late["cause"], late
    assert [i["State"]["Name"] for i in recovered_instances(factory, fleet.trainer)] == ["terminated"]


def test_a_long_past_warning_is_recorded_and_reported_but_saves_and_recovers_nothing(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands
) -> None:
    handler.clock = lambda: WARNED_AT + timedelta(minutes=30)
    result = invoke(handler, spot_event("warning", fleet.trainer))
    assert result["status"] == "late" and "nothing was saved" in result["reason"], result
    assert sent.sent == [] and spot_snapshots(factory, fleet.trainer) == []
    assert delete_on_termination(factory, fleet.trainer)[fleet.persistent_volume] is True
    recorded = factory.dynamodb().query(
        TableName="trainctl-ledger",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": ledger.spot_partition(fleet.trainer)}},
    )["Items"]
    assert [json.loads(i["outcome"]["S"])["status"] for i in recorded] == ["late"]
    [told] = messages(factory, fleet.queue_url)
    assert "late" in told["Subject"] and told["MessageAttributes"]["owner"]["Value"] == "carol"
    terminate(factory, fleet.trainer, by_ec2=True)
    ended = invoke(
        handler, spot_event("terminated", fleet.trainer, time=format_instant(WARNED_AT + timedelta(minutes=32)))
    )
    assert ended["status"] == "ignored" and ended["execution_arn"] is None, ended
    assert recovered_instances(factory, fleet.trainer) == []
