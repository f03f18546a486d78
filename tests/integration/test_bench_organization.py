"""The organization benchmark (bench/organization.py, issue 29) at smoke size: every figure in its section of
bench/RESULTS.md comes from this code, so it must answer each account from its own fleet and buckets, sweep every
account-region, and schedule the children as the Distributed Map would."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bench import fleet
from bench.aws_like import BucketSpec
from bench.organization import AccountMix, OrganizationEndpoint, map_schedule, measure, table
from trainctl.cli.sandbox_fleet import moto_server

REGION = "us-east-1"
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


def test_the_map_runs_children_in_item_order_at_its_concurrency_each_slot_paying_one_cold_start() -> None:
    durations = [3.0, 1.0, 1.0, 1.0]
    assert map_schedule(durations, 1, 0.0) == 6.0  # one at a time: the serial loop
    # Two slots: the 3 s child holds one while the other runs the three short ones.
    assert map_schedule(durations, 2, 0.0) == 3.0
    assert map_schedule(durations, 2, 0.5) == 3.5
    assert map_schedule(durations, 10, 0.5) == 3.5  # more slots than children: the longest child bounds it
    assert map_schedule([], 10, 0.5) == 0.0
    with pytest.raises(ValueError, match="at least one child"):
        map_schedule(durations, 0, 0.0)


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def ec2_in(endpoint: str, moto: str, account: str) -> object:
    """An EC2 client whose credentials moto's STS issued for a role in `account`."""
    sts = boto3.client("sts", region_name=REGION, endpoint_url=moto)
    keys = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/any", RoleSessionName="bench")["Credentials"]
    return boto3.client(
        "ec2",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"],
        aws_session_token=keys["SessionToken"],
        config=NO_RETRIES,
    )


def test_each_account_is_answered_from_its_own_fleet_and_throttled_by_its_own_buckets(moto: str) -> None:
    with OrganizationEndpoint(moto, latency=0, non_mutating=BucketSpec(2, 0.001)) as env:
        small, _ = fleet.build(10, (REGION,))
        large, _ = fleet.build(100, (REGION,))
        env.load_accounts({"111111111111": small, "222222222222": large})
        first, second = ec2_in(env.endpoint, moto, "111111111111"), ec2_in(env.endpoint, moto, "222222222222")
        assert len(first.describe_volumes()["Volumes"]) == fleet.FleetShape.of(10).volumes  # type: ignore[attr-defined]
        assert len(first.describe_volumes()["Volumes"]) == fleet.FleetShape.of(10).volumes  # type: ignore[attr-defined]
        with pytest.raises(ClientError, match="RequestLimitExceeded"):
            first.describe_volumes()  # type: ignore[attr-defined]
        # The other account's bucket is full: EC2 keeps one per account and region.
        assert len(second.describe_volumes()["Volumes"]) == fleet.FleetShape.of(100).volumes  # type: ignore[attr-defined]
        assert sum(env.stats().throttled.values()) == 1


def test_a_smoke_size_organization_is_swept_account_region_by_account_region_and_reported() -> None:
    mix = AccountMix(large=1, large_resources=300, medium=1, medium_resources=100, small_resources=10)
    run = measure(accounts=3, region_count=2, latency=0.0, mix=mix)
    assert run.exit_code == 0
    assert len(run.children) == 6 and len({(c["account"], c["region"]) for c in run.children}) == 6
    assert all(c["outcome"] == "done" and c["dry_run"] for c in run.children), run.children
    # Each child read its own account's fleet: the large account's home region, and 10 resources elsewhere.
    assert sorted(c["scanned"] for c in run.children) == [10, 10, 10, 10, 100, 300]
    assert run.calls["sts:AssumeRole"] == 6 and run.errors == {}
    assert sum(run.throttled.values()) == 0 and run.surfaced == 0
    serial = run.map_wall(1)
    assert run.map_wall(10) < serial
    markdown = table(run, [1, 10], 0.0).markdown()
    assert "Distributed Map, max_concurrency 10 (the default)" in markdown and "serial loop" in markdown
