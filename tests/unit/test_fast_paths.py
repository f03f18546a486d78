"""What trainctl does to be fast must not change what it reads or what it does."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.awsrequest import AWSResponse
from botocore.utils import parse_timestamp as botocore_parse_timestamp
from hypothesis import given
from hypothesis import strategies as st

from trainctl.aws.clients import ClientFactory, parse_timestamp
from trainctl.sweep.act import interleaved
from trainctl.sweep.rules import Decision

instants = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


@given(instants, st.sampled_from(["%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%f+00:00"]))
def test_iso_timestamps_read_as_botocore_reads_them(at: datetime, layout: str) -> None:
    text = at.strftime(layout)
    ours, theirs = parse_timestamp(text), botocore_parse_timestamp(text)
    assert ours == theirs and ours.utcoffset() == timedelta(0)


def test_other_forms_fall_back_to_botocore() -> None:
    for value in (1_700_000_000, "1700000000.5", "Wed, 18 Nov 2026 17:06:30 GMT", "2026-11-18T19:06:30+02:00"):
        assert parse_timestamp(value) == botocore_parse_timestamp(value)
    # No zone means UTC, as botocore reads it.
    assert parse_timestamp("2026-11-18T17:06:30") == datetime(2026, 11, 18, 17, 6, 30, tzinfo=UTC)
    assert parse_timestamp("2026-11-18T19:06:30+02:00").tzinfo == timezone(timedelta(hours=2))


def test_clients_of_a_factory_read_timestamps_with_it() -> None:
    factory = ClientFactory()
    # Responses are parsed by the endpoint, with a parser from the session's factory.
    endpoint = factory.client("ec2", "us-east-1")._endpoint
    assert endpoint._response_parser_factory.create_parser("ec2")._timestamp_parser is parse_timestamp


def test_a_lane_is_a_client_of_its_own_that_every_hook_still_reaches() -> None:
    """Adaptive retries slow a whole client once one of its calls is throttled: a lane keeps the deletes' slowdown
    off the reads. Tests and the call ledger hook the factory, so a lane's client must hear its hooks too."""
    factory = ClientFactory("us-east-1")
    heard: list[str] = []
    factory.register("before-parameter-build.ec2.DescribeVolumes", lambda **_: heard.append("early"))
    plain, deletes = factory.ec2("us-east-1"), factory.ec2("us-east-1", lane="delete-volume")
    assert deletes is not plain and deletes is factory.ec2("us-east-1", lane="delete-volume")
    assert deletes.meta.config.retries == plain.meta.config.retries  # the same retry mode, its own rate limiter
    factory.register("before-parameter-build.ec2.DescribeVolumes", lambda **_: heard.append("late"))
    # Answered before anything is sent: no endpoint is needed.
    answer = AWSResponse("https://ec2", 200, {}, None), {"Volumes": [], "ResponseMetadata": {"HTTPStatusCode": 200}}
    factory.register("before-call.ec2.DescribeVolumes", lambda **_: answer)
    for client in (plain, deletes, factory.ec2("us-east-1", lane="guard-instances")):
        heard.clear()
        assert client.describe_volumes(VolumeIds=["vol-1"])["Volumes"] == []
        assert heard == ["early", "late"]


def _decision(resource_id: str, region: str, resource_type: str) -> Decision:
    return Decision(
        resource_id=resource_id,
        resource_type=resource_type,  # type: ignore[arg-type]
        region=region,
        action="delete",
        reasons=("unattached",),
        protections=(),
        detail="",
    )


def test_deletes_take_turns_across_apis_and_regions_and_none_is_lost() -> None:
    decisions = [
        *(_decision(f"vol-{n}", "us-east-1", "volume") for n in range(4)),
        *(_decision(f"snap-{n}", "us-east-1", "snapshot") for n in range(2)),
        _decision("vol-w", "us-west-2", "volume"),
    ]
    order = [d.resource_id for d in interleaved(decisions)]
    assert order == ["vol-0", "snap-0", "vol-w", "vol-1", "snap-1", "vol-2", "vol-3"]


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("function", ["age_guard", "cleanup_sweep", "cost_alerts", "prewarm_plan", "prewarm_report"])
def test_handlers_start_without_boto3(function: str) -> None:
    """boto3 (its resources and s3transfer) adds about 80 ms to a cold start, for nothing a client needs."""
    probe = "import sys, handler; print(sorted({'boto3', 's3transfer'} & set(sys.modules)))"
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers")]),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
