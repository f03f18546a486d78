"""The benchmarks' AWS-like endpoint behaves as EC2 does where speed is decided, and trainctl copes with it.

If the endpoint paged, throttled or answered wrongly, every figure in bench/RESULTS.md would be wrong; and an
enforced sweep that surfaces throttling on a busy account would fail the users it is meant to protect.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.dynamodb.models.table import Table

from bench import fleet
from bench.aws_like import AwsLike, BucketSpec
from trainctl.aws.clients import ClientFactory
from trainctl.aws.ec2 import Ec2Inventory
from trainctl.cli import stack_resources
from trainctl.cli.sandbox_fleet import moto_server
from trainctl.core.clock import fixed_clock, system_clock
from trainctl.core.settings import SweepSettings
from trainctl.sweep.run import effects_for, run_sweep

REGION = "us-east-1"
# total_max_attempts counts the first attempt; max_attempts would count retries only.
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def ec2_client(endpoint: str, config: Config = NO_RETRIES) -> object:
    return boto3.client("ec2", region_name=REGION, endpoint_url=endpoint, config=config)


def test_pages_are_capped_as_ec2_caps_them_and_the_whole_fleet_reads_back(moto: str) -> None:
    built, expected = fleet.build(2_500, (REGION,))
    with AwsLike(moto, latency=0) as env:
        env.load_fleet(built)
        ec2 = ec2_client(env.endpoint)
        page = ec2.describe_volumes(MaxResults=1000)  # type: ignore[attr-defined]
        assert len(page["Volumes"]) == 500 and page["NextToken"]
        inventory = Ec2Inventory(ec2, REGION).read()  # type: ignore[arg-type]
        calls = env.stats().calls
    shape = fleet.FleetShape.of(2_500)
    assert (len(inventory.instances), len(inventory.volumes), len(inventory.snapshots)) == (
        shape.instances,
        shape.volumes,
        shape.snapshots,
    )
    assert len(inventory.images) == expected.ami_snapshots
    # 1,250 volumes at 500 a page: three pages, whatever page size trainctl asked for.
    assert calls["ec2:DescribeVolumes"] == 1 + 3
    stopped_long = [i for i in inventory.instances if i.stopped_since and i.state == "stopped"]
    assert sum(1 for i in stopped_long if system_clock() - i.stopped_since > timedelta(days=7)) == (
        expected.stopped_long
    )


def test_an_empty_bucket_answers_request_limit_exceeded_and_the_call_takes_the_latency(moto: str) -> None:
    built, _ = fleet.build(200, (REGION,))
    with AwsLike(moto, latency=0.05, non_mutating=BucketSpec(2, 0.001)) as env:
        env.load_fleet(built)
        ec2 = ec2_client(env.endpoint)
        started = time.perf_counter()
        ec2.describe_images(Owners=["self"])  # type: ignore[attr-defined]
        assert time.perf_counter() - started >= 0.05
        ec2.describe_images(Owners=["self"])  # type: ignore[attr-defined]
        with pytest.raises(ClientError) as refused:
            ec2.describe_images(Owners=["self"])  # type: ignore[attr-defined]
        # Buckets are per API: another Describe is not affected.
        ec2.describe_volumes(MaxResults=5)  # type: ignore[attr-defined]
        stats = env.stats()
    assert refused.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert stats.throttled == {"ec2:DescribeImages": 1}


def test_the_fleet_refuses_what_ec2_refuses(moto: str) -> None:
    built, _ = fleet.build(500, (REGION,))
    with AwsLike(moto, latency=0) as env:
        env.load_fleet(built)
        ec2 = ec2_client(env.endpoint)
        attached = next(r for r in built[REGION].volumes.values() if r.data["State"] == "in-use")
        behind_ami = next(iter(built[REGION].images.values())).data["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        codes = []
        for call, kwargs in (
            (ec2.delete_volume, {"VolumeId": attached.data["VolumeId"]}),  # type: ignore[attr-defined]
            (ec2.delete_snapshot, {"SnapshotId": behind_ami}),  # type: ignore[attr-defined]
            (ec2.delete_volume, {"VolumeId": "vol-0000000000000dead"}),  # type: ignore[attr-defined]
            (ec2.modify_instance_attribute, {"InstanceId": "i-0", "Attribute": "kernel"}),  # type: ignore[attr-defined]
        ):
            with pytest.raises(ClientError) as refused:
                call(**kwargs)
            codes.append(refused.value.response["Error"]["Code"])
        assert env.fleet.is_alive(attached.data["VolumeId"]) and env.fleet.is_alive(behind_ami)
    assert codes == ["VolumeInUse", "InvalidSnapshot.InUse", "InvalidVolume.NotFound", "UnsupportedOperation"]


def test_an_enforced_sweep_rides_out_throttling_without_surfacing_it(
    moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small buckets (5 tokens, 10 a second): trainctl's concurrent deletes are throttled, retried, and done."""
    built, expected = fleet.build(3_000, (REGION,))
    tight = BucketSpec(5, 10)
    with AwsLike(moto, latency=0.01, mutating=tight) as env:
        env.load_fleet(built)
        monkeypatch.setenv("AWS_ENDPOINT_URL", env.endpoint)
        factory = ClientFactory(REGION)
        resources = stack_resources.ensure_on_emulator(factory, (REGION,))
        settings = SweepSettings(
            regions=(REGION,),
            dry_run=False,
            max_actions=100_000,
            max_action_share=1.0,
            ledger_table=resources.ledger_table,
            topic_arn=resources.topic_arn,
        )
        now = system_clock()
        for at in (now, now + settings.grace_period + settings.event_delivery_lag + timedelta(minutes=1)):
            effects = effects_for(factory, settings)
            result = run_sweep(factory, settings, fixed_clock(at), ledger=effects.ledger, notifier=effects.notifier)
        stats = env.stats()
        left = [r for r in expected.candidate_ids if env.fleet.is_alive(r)]
    outcomes = {d.outcome for d in result.decisions if d.destructive}
    assert stats.throttled, "the buckets were meant to run dry"
    assert outcomes == {"done"} and not left
    assert len([d for d in result.decisions if d.destructive]) == expected.actions


def test_the_bench_answers_a_ledger_query_from_its_partition_with_the_items_moto_gives(moto: str) -> None:
    """moto sorts the whole table for every Query; the bench reads the partition alone. What comes back (items,
    order, pages) must be what moto gives, or the benchmark's sweeps would decide on a ledger that is not there."""
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto)
    table = "bench-partition-check"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for partition in ("resource#vol-b", "resource#vol-a", "sweep"):
        for sort in ("2026-03-01T00:00:00Z#s2", "2026-01-01T00:00:00Z#s1", "2026-02-01T00:00:00Z#s3"):
            dynamodb.put_item(TableName=table, Item={"pk": {"S": partition}, "sk": {"S": sort}, "v": {"S": partition}})

    def pages(partition: str, forward: bool, limit: int) -> list[list[str]]:
        found, start = [], None
        while True:
            kwargs: dict[str, Any] = {"ExclusiveStartKey": start} if start else {}
            page = dynamodb.query(
                TableName=table,
                KeyConditionExpression="pk = :pk AND sk >= :from",
                ExpressionAttributeValues={":pk": {"S": partition}, ":from": {"S": "2026-01-15"}},
                ScanIndexForward=forward,
                Limit=limit,
                **kwargs,
            )
            found.append([f"{item['pk']['S']} {item['sk']['S']}" for item in page["Items"]])
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    asked = [
        (p, forward, limit)
        for p in ("resource#vol-a", "sweep", "resource#none")
        for forward in (True, False)
        for limit in (1, 5)
    ]
    as_moto_answers = [pages(*question) for question in asked]
    with AwsLike(moto, latency=0):
        assert getattr(Table.query, "by_partition", False)  # moto here is this process's, as in the benchmark
        by_partition = [pages(*question) for question in asked]
    assert not getattr(Table.query, "by_partition", False)
    assert by_partition == as_moto_answers
    assert as_moto_answers[asked.index(("resource#vol-a", False, 5))] == [
        ["resource#vol-a 2026-03-01T00:00:00Z#s2", "resource#vol-a 2026-02-01T00:00:00Z#s3"]
    ]
    dynamodb.delete_table(TableName=table)
