"""A seeded training fleet under moto, shared by the integration tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.sandbox_fleet import SANDBOX_CLOCK_OFFSET, SeededFleet, seed_training_fleet
from trainctl.core import names
from trainctl.core.clock import system_clock
from trainctl.core.settings import SweepSettings

REGIONS = ("us-east-1", "eu-west-1")
# An enforcing sweep of the home region that may act on the whole seeded fleet in one go.
ENFORCING = SweepSettings(
    regions=("us-east-1",),
    dry_run=False,
    snapshot_retention=timedelta(days=7),
    max_action_share=1.0,
    training_check_timeout=timedelta(seconds=1),
    training_document=names.TRAINING_DOCUMENT,
)


@dataclass
class SeededAccount:
    fleet: SeededFleet
    t0: datetime
    topic_arn: str
    queue_url: str

    def after_grace(self, grace: timedelta = timedelta(hours=24)) -> datetime:
        # Due: past the grace and the delivery lag after it, by a minute.
        return self.t0 + grace + SweepSettings().event_delivery_lag + timedelta(minutes=1)


def seed_account(factory: ClientFactory) -> SeededAccount:
    resources = stack_resources.ensure_on_emulator(factory, REGIONS)
    sqs = factory.client("sqs", "us-east-1")
    queue_url = sqs.create_queue(QueueName="sweep-messages")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    factory.sns().subscribe(TopicArn=resources.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    t0 = system_clock() + SANDBOX_CLOCK_OFFSET
    fleet = seed_training_fleet(factory, REGIONS, t0)
    return SeededAccount(fleet=fleet, t0=t0, topic_arn=resources.topic_arn, queue_url=queue_url)


def messages(factory: ClientFactory, queue_url: str) -> list[dict[str, str]]:
    sqs = factory.client("sqs", "us-east-1")
    found = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def volume_exists(factory: ClientFactory, volume_id: str, region: str = "us-east-1") -> bool:
    found = factory.ec2(region).describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"]
    return bool(found)


def instance_state(factory: ClientFactory, instance_id: str, region: str = "us-east-1") -> str:
    reservations = factory.ec2(region).describe_instances(InstanceIds=[instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def tags_of(factory: ClientFactory, resource_id: str, region: str = "us-east-1") -> dict[str, str]:
    found = factory.ec2(region).describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
    return {t["Key"]: t["Value"] for t in found}
