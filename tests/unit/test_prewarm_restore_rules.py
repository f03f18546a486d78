"""Pre-warm from a snapshot, pure: the request's shape, the plan without a worker, the measured time and rate
(hand-computed), the bookkeeping tags; and the command line's words for a refusal and for Ctrl-C."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trainctl.cli.prewarm_run import interrupted, refusal
from trainctl.core import tags
from trainctl.prewarm.rules import (
    InvalidRequest,
    check_snapshot_claim,
    creation_tags,
    figure_tags,
    initialised_report,
    make_plan,
    new_volume,
    parse_request,
    report,
)

SNAP = "snap-0123456789abcdef0"


def restore(**spec: object) -> dict[str, object]:
    return {"volume": {"snapshot_id": SNAP, "zone": "us-east-1a", "initialization_rate": 300, **spec}, "owner": "ann"}


def test_a_restore_plans_no_worker_and_the_time_at_its_rate() -> None:
    request = parse_request(restore())
    assert request.volume is not None
    # 100 GiB of snapshot at 300 MiB/s: 102,400 / 300 = 341.3 s, rounded up.
    target = new_volume(request, request.volume, 100 * 2**30, snapshot_gib=100)
    plan = make_plan(request, target, data_bytes=100 * 2**30, objects=0, region="us-east-1", instance_profile_arn="")
    assert plan.copies_from_s3 is False and plan.launch_worker is False and plan.instance_type is None
    assert plan.source == SNAP and plan.s3_uri is None and plan.estimated_seconds == 342
    assert plan.create_volume is not None
    assert plan.create_volume.size == 100 and plan.create_volume.volume_initialization_rate == 300
    [spec] = plan.create_volume.tag_specifications
    assert spec["Tags"] == [
        {"Key": tags.PREWARMED_FROM, "Value": SNAP},
        {"Key": tags.MANAGED, "Value": "true"},
        {"Key": tags.ROLE, "Value": tags.PREWARMED_VOLUME_ROLE},
    ]


def test_a_restore_longer_than_the_workflow_waits_is_refused() -> None:
    request = parse_request(restore(initialization_rate=100))
    assert request.volume is not None
    # 5,000 GiB at 100 MiB/s: 51,200 s, 14.2 h, past the 12 h the workflow waits.
    target = new_volume(request, request.volume, 5000 * 2**30, snapshot_gib=5000)
    with pytest.raises(InvalidRequest, match=r"take 14\.2 h, longer than the workflow waits \(12 h\)"):
        make_plan(request, target, data_bytes=5000 * 2**30, objects=0, region="us-east-1", instance_profile_arn="")


@pytest.mark.parametrize(
    ("request_body", "named"),
    [
        ({"volume": {"snapshot_id": SNAP, "zone": "us-east-1a"}}, "needs an initialization_rate"),
        ({"volume": {"size_gib": 10, "zone": "us-east-1a"}}, "give s3_uri to copy from S3"),
        ({**restore(), "instance_id": "i-0123456789abcdef0"}, "instance_id is for copying from S3"),
        ({**restore(), "snapshot": True}, "snapshot \\(after\\) is for copying from S3"),
        ({"volume": {"zone": "us-east-1a"}, "s3_uri": "s3://d/x/"}, "size_gib is needed"),
        (restore(initialization_rate=301), "initialization_rate"),
    ],
)
def test_a_restore_request_says_what_it_lacks(request_body: dict[str, object], named: str) -> None:
    with pytest.raises(InvalidRequest, match=named):
        parse_request(request_body)


def test_a_volume_smaller_than_its_snapshot_is_refused() -> None:
    request = parse_request(restore(size_gib=50))
    assert request.volume is not None
    with pytest.raises(InvalidRequest, match="holds 100 GiB: a 50 GiB volume is too small"):
        new_volume(request, request.volume, 100 * 2**30, snapshot_gib=100)


def test_the_initialisation_is_measured_from_the_volumes_creation() -> None:
    volume = {
        "CreateTime": datetime(2026, 12, 1, 10, 0, 0, tzinfo=UTC),
        "Size": 100,
        "SnapshotId": SNAP,
        "VolumeInitializationRate": 300,
    }
    status = {"InitializationType": "provisioned-rate", "Progress": 100, "EstimatedTimeToCompleteInSeconds": 0}
    # 50 GiB of snapshot blocks (FullSnapshotSizeInBytes) in 200 s: 51,200 MiB / 200 s = 256.0 MiB/s.
    done = initialised_report(
        volume, 50 * 2**30, status, finished_at=datetime(2026, 12, 1, 10, 3, 20, tzinfo=UTC), estimated_seconds=171
    )
    values = {t["Key"]: t["Value"] for t in done["tags"]}
    assert values == {
        tags.PREWARMED_FROM: SNAP,
        tags.PREWARMED_AT: "2026-12-01T10:03:20Z; 53687091200 bytes in 200 s at 256.0 MiB/s (provisioned 300 MiB/s)",
        tags.PREWARMED_BYTES: "53687091200",
        tags.PREWARMED_SECONDS: "200",
        tags.PREWARMED_RATE: "256.0",
    }
    assert done["summary"]["initialization_type"] == "provisioned-rate" and done["summary"]["rate_mibps"] == 256.0
    # Without the snapshot's full size, the volume's: 100 GiB in 400 s is 256.0 MiB/s again.
    whole = initialised_report(
        volume, None, status, finished_at=datetime(2026, 12, 1, 10, 6, 40, tzinfo=UTC), estimated_seconds=342
    )
    assert {t["Key"]: t["Value"] for t in whole["tags"]}[tags.PREWARMED_BYTES] == str(100 * 2**30)
    assert whole["summary"]["rate_mibps"] == 256.0


def test_figures_are_plain_numbers_and_no_rate_is_guessed_from_no_time() -> None:
    assert figure_tags(3 * 2**30, 12.0) == [
        {"Key": tags.PREWARMED_BYTES, "Value": str(3 * 2**30)},
        {"Key": tags.PREWARMED_SECONDS, "Value": "12"},
        {"Key": tags.PREWARMED_RATE, "Value": "256.0"},  # 3,072 MiB / 12 s
    ]
    assert [t["Key"] for t in figure_tags(4096, 0.2)] == [tags.PREWARMED_BYTES, tags.PREWARMED_SECONDS]


def test_the_copy_report_tags_its_figures_beside_the_instant() -> None:
    output = '{"bytes": 1073741824, "seconds": 8, "tool": "s5cmd"}\n'
    done = report(output, source="s3://d/x/", started_at="a", finished_at="2026-12-01T10:00:00Z", estimated_seconds=8)
    values = {t["Key"]: t["Value"] for t in done["tags"]}
    assert values[tags.PREWARMED_AT] == "2026-12-01T10:00:00Z; 1073741824 bytes in 8 s"
    assert values[tags.PREWARMED_RATE] == "128.0" and values[tags.PREWARMED_SECONDS] == "8"
    silent = report("", source="s3://d/x/", started_at="a", finished_at="2026-12-01T10:00:00Z", estimated_seconds=0)
    assert tags.PREWARMED_BYTES not in {t["Key"] for t in silent["tags"]}


@pytest.mark.parametrize(
    ("volume", "named"),
    [
        ({"volume_type": "gp2", "iops": 5000}, "gp2 volumes take no provisioned IOPS"),
        ({"volume_type": "gp3", "throughput_mibps": 1000}, r"750 MiB/s at 3,000 IOPS"),
        ({"volume_type": "io2", "iops": None}, "io2 needs --iops"),
        ({"volume_type": "io1", "iops": 1000, "size_gib": 2}, "io1 volumes are 4 to 16,384 GiB"),
        ({"volume_type": "st1", "size_gib": 10}, "st1 volumes are 125 to 16,384 GiB"),
        ({"volume_type": "gp3", "iops": 80000, "size_gib": 10}, r"at most 500 IOPS per GiB \(5,000 for 10 GiB\)"),
        ({"volume_type": "sc1", "throughput_mibps": 250}, "only gp3 volumes take a provisioned throughput"),
    ],
)
def test_a_volume_spec_ebs_would_refuse_is_refused_by_the_command_lines_rules(
    volume: dict[str, object], named: str
) -> None:
    body = {"volume": {"size_gib": 100, "zone": "us-east-1a", **volume}, "s3_uri": "s3://datasets/x/"}
    with pytest.raises(InvalidRequest, match=named):
        parse_request(body)


def test_a_restore_whose_snapshot_makes_the_volume_too_small_for_its_type_is_refused() -> None:
    # No size given: the volume takes the snapshot's 10 GiB, and st1 starts at 125.
    request = parse_request(restore(volume_type="st1"))
    assert request.volume is not None
    with pytest.raises(InvalidRequest, match="the snapshot's 10 GiB: st1 volumes are 125 to 16,384 GiB"):
        new_volume(request, request.volume, 10 * 2**30, snapshot_gib=10)
    # gp3 at 3,000 IOPS on a 4 GiB snapshot: 500 per GiB allows 2,000 above the baseline, but 3,000 is the floor.
    fits = parse_request(restore(iops=3000))
    assert fits.volume is not None
    assert new_volume(fits, fits.volume, 4 * 2**30, snapshot_gib=4).create_volume is not None


def test_a_volume_the_s3_path_creates_is_in_scope_from_its_creation() -> None:
    request = parse_request({"volume": {"size_gib": 10, "zone": "us-east-1a"}, "s3_uri": "s3://datasets/x/"})
    assert creation_tags(request, "team:scope") == [
        {"Key": tags.PREWARMED_FROM, "Value": "s3://datasets/x/"},
        {"Key": "team:scope", "Value": "true"},
    ]


@pytest.mark.parametrize(
    ("labels", "own", "refused"),
    [
        ({tags.MANAGED: "true"}, True, None),
        ({tags.MANAGED: "true", tags.OWNER: "ann"}, True, None),
        ({tags.MANAGED: "false"}, True, "out of scope: no trainctl:managed=true"),
        ({}, True, "out of scope"),
        # The caller's by its tag, but outside the scope: a person would need --allow-out-of-scope.
        ({tags.OWNER: "ann"}, True, "out of scope"),
        ({tags.MANAGED: "true", tags.OWNER: "bob"}, True, "owned by bob"),
        # Shared with the account or public: given to read, whatever its tags.
        ({}, False, None),
    ],
)
def test_a_snapshot_of_this_account_restores_only_in_scope_and_for_its_owner_or_nobodys(
    labels: dict[str, str], own: bool, refused: str | None
) -> None:
    if refused is None:
        check_snapshot_claim(SNAP, labels, "ann", own=own, scope_tag=tags.MANAGED)
    else:
        with pytest.raises(InvalidRequest, match=refused):
            check_snapshot_claim(SNAP, labels, "ann", own=own, scope_tag=tags.MANAGED)


def test_the_snapshot_after_a_copy_is_in_scope_so_that_a_later_pre_warm_may_restore_it() -> None:
    output = '{"bytes": 1073741824, "seconds": 8, "tool": "s5cmd"}\n'
    done = report(
        output,
        source="s3://d/x/",
        started_at="a",
        finished_at="2026-12-01T10:00:00Z",
        estimated_seconds=8,
        scope_tag="team:scope",
    )
    assert done["snapshot_tags"] == [*done["tags"], {"Key": "team:scope", "Value": "true"}]
    # The volume's own tags stay the record only: its scope is the request's check, or its creation's.
    assert "team:scope" not in {t["Key"] for t in done["tags"]}
    labels = {t["Key"]: t["Value"] for t in done["snapshot_tags"]}
    check_snapshot_claim(SNAP, labels, "ann", own=True, scope_tag="team:scope")


def test_a_workflow_refusal_is_one_line_in_the_flags_words() -> None:
    cause = (
        '{"errorType": "InvalidRequest", "errorMessage": "volume vol-0123456789abcdef0 is tagged '
        'trainctl:persistent: pre-warm it only with force", "stackTrace": ["  File x\\n"]}'
    )
    assert refusal(cause) == (
        "volume vol-0123456789abcdef0 is tagged trainctl:persistent: pre-warm it only with --allow-persistent"
    )
    assert refusal("instance_id is for copying from S3") == "--instance-id is for copying from S3"
    assert refusal(None) == "the workflow gave no reason"
    # A word that only contains a field's name is left alone.
    assert refusal("enforced by trainctl:force-x") == "enforced by trainctl:force-x"


def test_ctrl_c_names_the_execution_and_how_to_follow_or_stop_it() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:trainctl-prewarm:prewarm-vol-1"
    said = interrupted(arn)
    assert "\n" not in said and "as execution prewarm-vol-1" in said
    assert f"aws stepfunctions describe-execution --execution-arn {arn}" in said
    assert f"aws stepfunctions stop-execution --execution-arn {arn}" in said
