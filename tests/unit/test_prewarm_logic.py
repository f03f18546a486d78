"""Pre-warm logic, pure: the request's strict shape, sizing the worker, reading the worker's report."""

from __future__ import annotations

import pytest

from trainctl.core import tags
from trainctl.prewarm.rules import WORKER_TYPES, InvalidRequest, choose_worker, parse_request, report


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"s3_uri": "s3://bucket/$(reboot)"}, "s3_uri"),
        ({"s3_uri": "https://bucket/x"}, "s3_uri"),
        ({"mount_point": "/mnt/../etc"}, "mount_point"),
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
