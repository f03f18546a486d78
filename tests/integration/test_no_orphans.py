"""Issue 25, no orphans, under moto: a sweep's termination takes the volumes its instance's launch made (the
untagged root and a launch template's scratch disk) and keeps every volume attached since that is not the
instance's own, naming each one kept to the owner with its owner and monthly cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.cli import stack_resources
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock
from trainctl.core.settings import SweepSettings
from trainctl.sweep.record import DynamoDbLedger
from trainctl.sweep.run import run_sweep

REGION = "us-east-1"
ZONE = "us-east-1a"
GRACE = timedelta(hours=24)
SETTINGS = SweepSettings(
    regions=(REGION,),
    dry_run=False,
    grace_period=GRACE,
    max_action_share=1.0,
    stopped_max_age=timedelta(hours=1),
    training_check_timeout=timedelta(seconds=1),
    training_document=names.TRAINING_DOCUMENT,
)


def labels(**values: str) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


def mapped(ec2: Any, instance_id: str) -> dict[str, str]:
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in found["BlockDeviceMappings"]}


def exists(ec2: Any, volume_id: str) -> bool:
    return bool(ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"])


def test_a_swept_instance_takes_its_launchs_own_volumes_and_names_each_one_it_leaves(factory: ClientFactory) -> None:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    people = ClientFactory(REGION).ec2(REGION)  # people act through their own clients, never the sweep's
    people.create_launch_template(
        LaunchTemplateName="alices-training",
        LaunchTemplateData={
            "ImageId": "ami-12c6146b",
            "InstanceType": "t3.micro",
            "BlockDeviceMappings": [{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 50, "DeleteOnTermination": True}}],
        },
    )
    instance_id = people.run_instances(
        LaunchTemplate={"LaunchTemplateName": "alices-training"},
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": ZONE},
        TagSpecifications=[{"ResourceType": "instance", "Tags": labels(**{tags.MANAGED: "true", tags.OWNER: "alice"})}],
    )["Instances"][0]["InstanceId"]
    launched = mapped(people, instance_id)
    root, scratch = launched["/dev/sda1"], launched["/dev/sdb"]
    # Ten minutes on, by hand: Bob's checkpoint volume and an untagged disk of Alice's, both set to go with it.
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=10), tick=False):
        bobs = people.create_volume(
            Size=100,
            VolumeType="gp3",
            AvailabilityZone=ZONE,
            TagSpecifications=[{"ResourceType": "volume", "Tags": labels(**{tags.MANAGED: "true", tags.OWNER: "bob"})}],
        )["VolumeId"]
        loose = people.create_volume(Size=20, VolumeType="gp3", AvailabilityZone=ZONE)["VolumeId"]
        people.attach_volume(VolumeId=bobs, InstanceId=instance_id, Device="/dev/sdf")
        people.attach_volume(VolumeId=loose, InstanceId=instance_id, Device="/dev/sdg")
    people.modify_instance_attribute(
        InstanceId=instance_id,
        BlockDeviceMappings=[{"DeviceName": d, "Ebs": {"DeleteOnTermination": True}} for d in ("/dev/sdf", "/dev/sdg")],
    )
    people.stop_instances(InstanceIds=[instance_id])

    notifier = InMemoryNotifier()
    ledger = DynamoDbLedger(factory.dynamodb(), names.LEDGER_TABLE)
    later = datetime.now(UTC) + timedelta(days=3)
    marked = run_sweep(factory, SETTINGS, fixed_clock(later), ledger=ledger, notifier=notifier)
    assert next(d for d in marked.decisions if d.resource_id == instance_id).action == "mark"
    acted = run_sweep(
        factory, SETTINGS, fixed_clock(later + GRACE + timedelta(hours=1)), ledger=ledger, notifier=notifier
    )
    decision = next(d for d in acted.decisions if d.resource_id == instance_id)
    assert decision.action == "terminate" and decision.outcome == "done", decision
    assert {v for v, _ in decision.keep_volumes} == {bobs, loose}

    # The launch's own volumes went with it: no orphan that no sweep may ever delete.
    assert not exists(people, root) and not exists(people, scratch)
    # What was attached since, and is not the instance's own, stayed; the owner is told each, whose and what it costs.
    assert exists(people, bobs) and exists(people, loose)
    told = "\n".join(message for _, message in notifier.messages)
    assert f"{bobs} (owner bob, 100 GiB gp3, $8.00 a month: owned by someone else)" in told
    assert f"{loose} (no owner tag, 20 GiB gp3, $1.60 a month: out of scope)" in told
