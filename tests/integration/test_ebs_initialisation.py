"""The emulated EBS initialisation (trainctl.cli.ebs_initialisation): DescribeVolumeStatus answered from moto's own
volumes in the shape the EC2 API reference documents, progress on the system clock (travelled with time-machine),
in the request's account and region, in-process and on the moto server the sandbox and the emulator start."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import time_machine
from botocore.exceptions import ClientError
from moto import mock_aws

from trainctl.cli.ebs_initialisation import EMULATED_DEFAULT_MIBPS, emulated_initialisation
from trainctl.cli.sandbox_fleet import moto_server

REGION = "us-east-1"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def ec2(ebs_initialisation: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def snapshot_of(ec2: Any, size_gib: int) -> str:
    source = ec2.create_volume(Size=size_gib, AvailabilityZone=f"{REGION}a")["VolumeId"]
    return str(ec2.create_snapshot(VolumeId=source)["SnapshotId"])


def status_of(ec2: Any, volume_id: str) -> dict[str, Any]:
    [item] = ec2.describe_volume_status(VolumeIds=[volume_id])["VolumeStatuses"]
    return dict(item)


def test_a_restore_at_a_rate_is_described_in_the_documented_shape_and_remembers_its_rate(ec2: Any) -> None:
    snapshot_id = snapshot_of(ec2, 10)
    made = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=f"{REGION}b", VolumeInitializationRate=250)
    assert made["VolumeInitializationRate"] == 250  # CreateVolume answers with the Volume, rate included
    [described] = ec2.describe_volumes(VolumeIds=[made["VolumeId"]])["Volumes"]
    assert described["VolumeInitializationRate"] == 250
    item = status_of(ec2, made["VolumeId"])
    assert item["VolumeId"] == made["VolumeId"] and item["AvailabilityZone"] == f"{REGION}b"
    assert item["VolumeStatus"] == {"Status": "ok", "Details": [{"Name": "io-enabled", "Status": "passed"}]}
    details = item["InitializationStatusDetails"]
    assert set(details) == {"InitializationType", "Progress", "EstimatedTimeToCompleteInSeconds"}
    assert details["InitializationType"] == "provisioned-rate"
    assert isinstance(details["Progress"], int) and 0 <= details["Progress"] < 100
    # 10,240 MiB at 250 MiB/s is 41 s at most, less what the test's own calls took.
    assert 30 <= details["EstimatedTimeToCompleteInSeconds"] <= 41
    # Without a rate, DescribeVolumes shows none (EBS: null).
    plain = ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=f"{REGION}b")["VolumeId"]
    assert "VolumeInitializationRate" not in ec2.describe_volumes(VolumeIds=[plain])["Volumes"][0]


def test_progress_rises_with_the_clock_from_0_to_100_at_the_provisioned_rate(ec2: Any) -> None:
    with time_machine.travel(START, tick=False) as traveller:
        snapshot_id = snapshot_of(ec2, 10)  # 10,240 MiB: 102.4 s at 100 MiB/s
        volume_id = ec2.create_volume(
            SnapshotId=snapshot_id, AvailabilityZone=f"{REGION}a", VolumeInitializationRate=100
        )["VolumeId"]
        seen = []
        for seconds in (0, 51.2, 102.3, 102.4, 86_400):
            traveller.move_to(START + timedelta(seconds=seconds))
            details = status_of(ec2, volume_id)["InitializationStatusDetails"]
            seen.append((details["Progress"], details["EstimatedTimeToCompleteInSeconds"]))
    # 100 only once every block is read; the estimate is what is left at the rate, whole seconds up.
    assert seen == [(0, 103), (50, 52), (99, 1), (100, 0), (100, 0)]


def test_a_restore_without_a_rate_is_default_initialisation_at_the_emulated_pace_without_an_estimate(
    ec2: Any,
) -> None:
    with time_machine.travel(START, tick=False) as traveller:
        volume_id = ec2.create_volume(SnapshotId=snapshot_of(ec2, 10), AvailabilityZone=f"{REGION}a")["VolumeId"]
        half = 10 * 1024 / EMULATED_DEFAULT_MIBPS / 2
        traveller.move_to(START + timedelta(seconds=half))
        midway = status_of(ec2, volume_id)["InitializationStatusDetails"]
        traveller.move_to(START + timedelta(seconds=2 * half))
        done = status_of(ec2, volume_id)["InitializationStatusDetails"]
    assert midway == {"InitializationType": "default", "Progress": 50}
    assert done == {"InitializationType": "default", "Progress": 100}


def test_an_empty_volume_reports_no_initialisation(ec2: Any) -> None:
    volume_id = ec2.create_volume(Size=50, AvailabilityZone=f"{REGION}a")["VolumeId"]
    item = status_of(ec2, volume_id)
    assert "InitializationStatusDetails" not in item and item["VolumeStatus"]["Status"] == "ok"


def test_pages_filters_and_unknown_volumes(ec2: Any) -> None:
    snapshot_id = snapshot_of(ec2, 1)
    restored = {
        ec2.create_volume(SnapshotId=snapshot_id, AvailabilityZone=f"{REGION}b", VolumeInitializationRate=300)[
            "VolumeId"
        ]
        for _ in range(4)
    }
    every = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    assert len(every) == 5
    pages = list(ec2.get_paginator("describe_volume_status").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["VolumeStatuses"]) for p in pages] == [2, 2, 1]
    listed = [item["VolumeId"] for p in pages for item in p["VolumeStatuses"]]
    assert sorted(listed) == sorted(every)  # each once
    in_b = ec2.describe_volume_status(Filters=[{"Name": "availability-zone", "Values": [f"{REGION}b"]}])
    assert {item["VolumeId"] for item in in_b["VolumeStatuses"]} == restored
    healthy = ec2.describe_volume_status(
        Filters=[
            {"Name": "volume-status.status", "Values": ["impaired", "ok"]},
            {"Name": "volume-status.details-status", "Values": ["passed"]},
        ]
    )
    assert len(healthy["VolumeStatuses"]) == 5
    impaired = ec2.describe_volume_status(Filters=[{"Name": "volume-status.status", "Values": ["impaired"]}])
    assert impaired["VolumeStatuses"] == []
    no_events = ec2.describe_volume_status(Filters=[{"Name": "event.event-type", "Values": ["io-enabled"]}])
    assert no_events["VolumeStatuses"] == []  # the emulation has no events
    with pytest.raises(ClientError) as unknown_filter:
        ec2.describe_volume_status(Filters=[{"Name": "volume-type", "Values": ["gp3"]}])
    assert unknown_filter.value.response["Error"]["Code"] == "InvalidFilter"
    with pytest.raises(ClientError) as missing:
        ec2.describe_volume_status(VolumeIds=["vol-0123456789abcdef0"])
    assert missing.value.response["Error"]["Code"] == "InvalidVolume.NotFound"


def test_each_account_sees_its_own_volumes(ec2: Any) -> None:
    mine = ec2.create_volume(
        SnapshotId=snapshot_of(ec2, 1), AvailabilityZone=f"{REGION}a", VolumeInitializationRate=100
    )["VolumeId"]
    # moto serves the account whose role the credentials came from.
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn="arn:aws:iam::210987654321:role/training", RoleSessionName="other-team"
    )["Credentials"]
    theirs_ec2 = boto3.client(
        "ec2",
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    theirs = theirs_ec2.create_volume(
        SnapshotId=snapshot_of(theirs_ec2, 2), AvailabilityZone=f"{REGION}a", VolumeInitializationRate=300
    )["VolumeId"]
    listed_mine = {i["VolumeId"] for i in ec2.describe_volume_status()["VolumeStatuses"]}
    listed_theirs = {i["VolumeId"] for i in theirs_ec2.describe_volume_status()["VolumeStatuses"]}
    assert mine in listed_mine and theirs not in listed_mine
    assert theirs in listed_theirs and mine not in listed_theirs
    assert status_of(theirs_ec2, theirs)["InitializationStatusDetails"]["EstimatedTimeToCompleteInSeconds"] <= 7
    # In another region the same account has none of them.
    away = boto3.client("ec2", region_name="eu-west-1").describe_volume_status()["VolumeStatuses"]
    assert away == []


def test_moto_is_itself_again_outside_the_emulation() -> None:
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    before = (ElasticBlockStore.create_volume, ElasticBlockStore.describe_volume_status)
    with emulated_initialisation():
        assert ElasticBlockStore.describe_volume_status is not before[1]
    assert (ElasticBlockStore.create_volume, ElasticBlockStore.describe_volume_status) == before


def test_the_sandboxs_moto_server_answers_it() -> None:
    """The server the sandbox and `trainctl emulator` start: the workflow's polls reach it over HTTP."""
    with moto_server() as endpoint:
        ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=endpoint)
        volume_id = ec2.create_volume(
            SnapshotId=snapshot_of(ec2, 1), AvailabilityZone=f"{REGION}a", VolumeInitializationRate=200
        )["VolumeId"]
        details = status_of(ec2, volume_id)["InitializationStatusDetails"]
    assert details["InitializationType"] == "provisioned-rate" and details["EstimatedTimeToCompleteInSeconds"] <= 6
