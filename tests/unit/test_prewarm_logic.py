"""Pre-warm logic, pure: the request's strict shape, the volume and worker checks, sizing the worker, the plan's
JSON contract, reading the worker's report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trainctl.core import tags
from trainctl.core.resources import Instance
from trainctl.prewarm.plan import PrewarmPlan
from trainctl.prewarm.rules import (
    WORKER_TYPES,
    InvalidRequest,
    check_given_instance,
    check_volume_claim,
    choose_worker,
    existing_volume,
    make_plan,
    new_volume,
    parse_request,
    report,
)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"s3_uri": "s3://bucket/$(reboot)"}, "s3_uri"),
        ({"s3_uri": "https://bucket/x"}, "s3_uri"),
        ({"mount_point": "/mnt/../etc"}, "mount_point"),
        ({"mount_point": "/mnt/.."}, "mount_point"),  # issue 17 item 7: both passed the check
        ({"mount_point": "/mnt/."}, "mount_point"),
        ({"mount_point": "/mnt/prewarm\n"}, "mount_point"),
        ({"s3_uri": "s3://datasets/../other/"}, "s3_uri"),
        ({"s3_uri": "s3://datasets/a/./b"}, "s3_uri"),
        ({"volume_id": "vol-0123456789abcdef"}, "volume_id"),  # 16: neither 8 nor 17 characters
        ({"owner": ""}, "owner"),
        ({"force": "maybe"}, "force"),
        ({"mount_point": "/home/me"}, "mount_point"),
        ({"volume_id": "vol-XYZ"}, "volume_id"),
        ({"instance_id": "i-123;ls"}, "instance_id"),
        ({"volume": {"size_gib": 10, "zone": "us-east-1a"}}, "not both"),
        ({"extra": "field"}, "extra"),
    ],
)
def test_requests_are_strict(change: dict[str, object], named: str) -> None:
    request = {"volume_id": "vol-0123456789abcdef0", "s3_uri": "s3://datasets/imagenet/", **change}
    with pytest.raises(InvalidRequest, match=named):
        parse_request(request)


def test_a_valid_request_has_safe_defaults() -> None:
    request = parse_request({"volume_id": "vol-0123456789abcdef0", "s3_uri": "s3://datasets/imagenet/"})
    assert request.mount_point == "/mnt/prewarm" and request.snapshot is False and request.instance_id is None


def test_the_worker_keeps_up_with_the_volume_or_the_data() -> None:
    # A gp3 at its baseline 125 MiB/s and a little data: the smallest worker that sustains it.
    small, _ = choose_worker(125, 10 * 2**20)
    assert (small.name == "m6i.large" and small.sustained_mib_per_second < 125) or small.name == "m6i.xlarge"
    # 1 TiB to copy within the hour needs ~291 MiB/s, capped by a 1,000 MiB/s volume.
    big, why = choose_worker(1000, 2**40)
    assert big.sustained_mib_per_second >= 2**40 / 2**20 / 3600 and "needs" in why
    # More than any worker sustains: the largest, and the reason says so.
    largest, why = choose_worker(4000, 20 * 2**40)
    assert largest == WORKER_TYPES[-1] and "largest" in why


def test_a_t3_micro_would_never_do() -> None:
    # 0.064 Gbps sustained is 7.6 MiB/s: every candidate must do far better.
    assert all(w.sustained_mib_per_second > 7.6 * 10 for w in WORKER_TYPES)


def test_the_report_becomes_tags_and_an_empty_report_is_said() -> None:
    output = (
        'copying\n{"bytes": 1048576, "seconds": 42, "tool": "s5cmd", "formatted": true, "read_all_blocks": false}\n'
    )
    done = report(output, source="s3://d/x/", started_at="a", finished_at="2026-11-28T12:00:00Z", estimated_seconds=40)
    values = {t["Key"]: t["Value"] for t in done["tags"]}
    assert values[tags.PREWARMED_FROM] == "s3://d/x/"
    assert values[tags.PREWARMED_AT] == "2026-11-28T12:00:00Z; 1048576 bytes in 42 s"
    silent = report("", source="s3://d/x/", started_at="a", finished_at="2026-11-28T12:00:00Z", estimated_seconds=0)
    assert "no figures" in {t["Key"]: t["Value"] for t in silent["tags"]}[tags.PREWARMED_AT]


def _planned(request: dict[str, object], data_bytes: int = 4096) -> dict[str, object]:
    parsed = parse_request({"s3_uri": "s3://datasets/imagenet/", **request})
    if parsed.volume is not None:
        target = new_volume(parsed, parsed.volume, data_bytes)
    else:
        available = {"State": "available", "Size": 100, "AvailabilityZone": "us-east-1a", "VolumeType": "gp3"}
        target = existing_volume(str(parsed.volume_id), available, s3_uri=parsed.s3_uri, data_bytes=data_bytes)
    plan = make_plan(parsed, target, data_bytes=data_bytes, objects=3, region="us-east-1", instance_profile_arn="p")
    dumped: dict[str, object] = plan.model_dump(mode="json")
    return dumped


def test_the_plan_keeps_its_json_contract() -> None:
    given = _planned({"volume_id": "vol-0123456789abcdef0"})
    assert list(given) == list(PrewarmPlan.model_fields)
    # The workflow tests these with IsNull: present and null, not absent.
    assert given["create_volume"] is None and given["instance_id"] is None
    assert given["volume_id"] == "vol-0123456789abcdef0" and given["launch_worker"] is True
    assert given["read_all_blocks"] == "false" and given["zone"] == "us-east-1a"
    assert PrewarmPlan.model_validate(given).model_dump(mode="json") == given


def test_a_volume_to_create_is_passed_on_under_ec2s_names_without_unset_keys() -> None:
    spec = {"size_gib": 100, "zone": "us-east-1b", "snapshot_id": "snap-0123456789abcdef0"}
    restored = _planned({"volume": spec})
    create = restored["create_volume"]
    assert isinstance(create, dict)
    # The workflow picks its CreateVolume shape by which keys are present.
    assert set(create) == {"AvailabilityZone", "Size", "VolumeType", "SnapshotId", "TagSpecifications"}
    assert restored["volume_id"] is None and restored["read_all_blocks"] == "true"
    at_rate = _planned({"volume": {**spec, "initialization_rate": 200}})
    assert isinstance(at_rate["create_volume"], dict)
    assert at_rate["create_volume"]["VolumeInitializationRate"] == 200 and at_rate["read_all_blocks"] == "false"


def test_a_volume_too_small_or_busy_is_refused() -> None:
    request = parse_request({"volume": {"size_gib": 1, "zone": "us-east-1a"}, "s3_uri": "s3://datasets/imagenet/"})
    assert request.volume is not None
    with pytest.raises(InvalidRequest, match="do not fit 1 GiB"):
        new_volume(request, request.volume, 2 * 2**30)
    busy = {"State": "in-use", "Size": 100, "AvailabilityZone": "us-east-1a"}
    with pytest.raises(InvalidRequest, match="is in-use, not available"):
        existing_volume("vol-0123456789abcdef0", busy, s3_uri="s3://datasets/imagenet/", data_bytes=1)


@pytest.mark.parametrize(
    ("zone", "state", "scope", "refusal"),
    [
        ("us-east-1b", "running", "true", "the volume in us-east-1a"),
        ("us-east-1a", "stopped", "true", "not running"),
        ("us-east-1a", "running", "false", "out of scope"),
    ],
)
def test_the_callers_instance_must_be_beside_the_volume_running_and_in_scope(
    zone: str, state: str, scope: str, refusal: str
) -> None:
    instance = Instance(
        resource_id="i-0123456789abcdef0",
        region="us-east-1",
        state=state,
        instance_type="m6i.large",
        launch_time=datetime(2026, 11, 1, tzinfo=UTC),
        availability_zone=zone,
        tags={tags.MANAGED: scope},
    )
    with pytest.raises(InvalidRequest, match=refusal):
        check_given_instance(instance, "us-east-1a", tags.MANAGED)


@pytest.mark.parametrize(
    "mount_point", ["/mnt/prewarm", "/mnt/data-1", "/mnt/.cache", "/mnt/..data", "/mnt/v1.2", "/mnt/a..b"]
)
def test_mount_points_may_contain_dots_but_not_be_dots(mount_point: str) -> None:
    request = parse_request(
        {"volume_id": "vol-0123456789abcdef0", "s3_uri": "s3://datasets/x/", "mount_point": mount_point}
    )
    assert request.mount_point == mount_point


def claim(labels: dict[str, str], **request: object) -> None:
    parsed = parse_request({"volume_id": "vol-0123456789abcdef0", "s3_uri": "s3://datasets/imagenet/", **request})
    check_volume_claim("vol-0123456789abcdef0", labels, parsed, tags.MANAGED)


def test_only_a_volume_in_scope_and_the_callers_or_unclaimed_is_filled() -> None:
    """Issue 17 item 7: another person's persistent, out-of-scope volume was accepted."""
    scoped = {tags.MANAGED: "true"}
    claim(scoped)  # nobody's yet: new
    claim({**scoped, tags.OWNER: "alice"}, owner="alice")
    with pytest.raises(InvalidRequest, match="out of scope"):
        claim({tags.OWNER: "alice"}, owner="alice")
    with pytest.raises(InvalidRequest, match="out of scope"):
        claim({tags.MANAGED: "maybe"})
    with pytest.raises(InvalidRequest, match="owned by bob, not by the request's owner alice"):
        claim({**scoped, tags.OWNER: "bob"}, owner="alice")
    with pytest.raises(InvalidRequest, match="owned by bob, not by a request that names none"):
        claim({**scoped, tags.OWNER: "bob"})
    with pytest.raises(InvalidRequest, match="owned by bob\\\\n"):
        claim({**scoped, tags.OWNER: "bob\nforged"}, owner="alice")  # the reason stays one line


def test_a_persistent_volume_is_filled_only_when_forced() -> None:
    for key, value in ((tags.PERSISTENT, "true"), (tags.PERSISTENT, "yes"), ("trainctl:persistant", "1")):
        labels = {tags.MANAGED: "true", tags.OWNER: "alice", key: value}
        with pytest.raises(InvalidRequest, match="persistent"):
            claim(labels, owner="alice")
        claim(labels, owner="alice", force=True)
    claim({tags.MANAGED: "true", tags.PERSISTENT: "false"})
    # force is for persistence only: it never fills another's or an out-of-scope volume.
    with pytest.raises(InvalidRequest, match="owned by bob"):
        claim({tags.MANAGED: "true", tags.OWNER: "bob", tags.PERSISTENT: "true"}, owner="alice", force=True)
    with pytest.raises(InvalidRequest, match="out of scope"):
        claim({tags.PERSISTENT: "true"}, force=True)
