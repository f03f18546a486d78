"""trainctl.core.volume_spec: each documented EBS limit at its edge, each zone form, the initialisation rate."""

from __future__ import annotations

import pytest

from trainctl.core.volume_spec import (
    LIMITS,
    initialization_rate_problem,
    type_problem,
    volume_problem,
    zone_problem,
    zone_region,
)


@pytest.mark.parametrize(
    ("volume_type", "smallest", "largest"),
    [
        ("gp2", 1, 16_384),
        ("gp3", 1, 65_536),
        ("io1", 4, 16_384),
        ("io2", 4, 65_536),
        ("st1", 125, 16_384),
        ("sc1", 125, 16_384),
    ],
)
def test_each_type_takes_its_documented_sizes_and_no_other(volume_type: str, smallest: int, largest: int) -> None:
    iops = 100 if LIMITS[volume_type].iops_required else None
    assert volume_problem(volume_type, smallest, iops, None) is None
    assert volume_problem(volume_type, largest, iops, None) is None
    below = volume_problem(volume_type, smallest - 1, iops, None)
    above = volume_problem(volume_type, largest + 1, iops, None)
    assert below is not None and f"{volume_type} volumes are" in below and f"--size {smallest - 1:,}" in below
    assert above is not None and f"--size {largest + 1:,}" in above


def test_a_size_from_elsewhere_is_named_as_the_caller_says() -> None:
    said = volume_problem("st1", 100, None, None, size_said="snap-0123456789abcdef0 holds 100 GiB")
    assert said == "snap-0123456789abcdef0 holds 100 GiB: st1 volumes are 125 to 16,384 GiB"


@pytest.mark.parametrize(
    ("volume_type", "low", "high", "size"),
    [("gp3", 3_000, 80_000, 160), ("io1", 100, 64_000, 1_280), ("io2", 100, 256_000, 256)],
)
def test_provisioned_iops_have_their_documented_range(volume_type: str, low: int, high: int, size: int) -> None:
    assert volume_problem(volume_type, size, low, None) is None
    assert volume_problem(volume_type, size, high, None) is None
    assert f"{volume_type} takes {low:,}" in str(volume_problem(volume_type, size, low - 1, None))
    assert f"to {high:,} IOPS" in str(volume_problem(volume_type, size, high + 1, None))


@pytest.mark.parametrize(("volume_type", "per_gib"), [("gp3", 500), ("io1", 50), ("io2", 1_000)])
def test_iops_per_gib_is_capped_at_the_documented_ratio(volume_type: str, per_gib: int) -> None:
    size = 20
    most = per_gib * size
    assert volume_problem(volume_type, size, most, None) is None
    said = volume_problem(volume_type, size, most + 1, None)
    assert said == (
        f"--iops {most + 1:,}: {volume_type} allows at most {per_gib:,} IOPS per GiB ({most:,} for {size} GiB)"
    )


def test_gp3_keeps_its_baseline_iops_at_any_size() -> None:
    assert volume_problem("gp3", 1, 3_000, None) is None
    assert "(3,000 for 1 GiB)" in str(volume_problem("gp3", 1, 3_001, None))


def test_gp3_throughput_is_at_most_a_quarter_mib_per_iops() -> None:
    assert volume_problem("gp3", 100, None, 750) is None  # the baseline 3,000 IOPS
    assert volume_problem("gp3", 100, None, 751) == (
        "--throughput 751: gp3 allows at most 0.25 MiB/s per IOPS (750 MiB/s at 3,000 IOPS); pass --iops 3,004 or more"
    )
    assert volume_problem("gp3", 16, 8_000, 2_000) is None
    assert "takes 125 to 2,000 MiB/s" in str(volume_problem("gp3", 1_000, 80_000, 2_001))
    assert "takes 125 to 2,000 MiB/s" in str(volume_problem("gp3", 1_000, None, 124))


def test_which_types_take_iops_and_throughput() -> None:
    assert volume_problem("io2", None, None, None) == "--type io2 needs --iops (provisioned IOPS, e.g. --iops 3000)"
    assert "io1 needs --iops" in str(volume_problem("io1", 100, None, None))
    for volume_type in ("gp2", "st1", "sc1"):
        assert f"{volume_type} volumes take no provisioned IOPS" in str(volume_problem(volume_type, 500, 3_000, None))
    for volume_type in ("gp2", "io1", "io2", "st1", "sc1"):
        iops = 100 if LIMITS[volume_type].iops_required else None
        assert "only gp3 volumes take a provisioned throughput" in str(volume_problem(volume_type, 500, iops, 250))


def test_without_a_size_only_what_does_not_depend_on_it_is_checked() -> None:
    assert volume_problem("st1", None, None, None) is None
    assert volume_problem("io1", None, 64_000, None) is None
    assert volume_problem("gp3", None, None, 751) is not None


def test_an_unknown_type_is_named_with_the_known_ones() -> None:
    assert type_problem("floppy") == "--type floppy: use gp3, gp2, io1, io2, st1 or sc1"
    assert "\\n" in str(type_problem("gp3\nrm"))


@pytest.mark.parametrize(
    ("zone", "region"),
    [
        ("us-east-1a", "us-east-1"),
        ("us-east-1f", "us-east-1"),
        ("us-west-2-lax-1a", "us-west-2"),
        ("us-east-1-wl1-bos-wlz-1", "us-east-1"),
        ("us-gov-west-1a", "us-gov-west-1"),
        ("ap-southeast-2b", "ap-southeast-2"),
    ],
)
def test_documented_zone_names_belong_to_their_region(zone: str, region: str) -> None:
    assert zone_region(zone) == region
    assert zone_problem(zone, region) is None


@pytest.mark.parametrize(
    "zone",
    ["ü", "us-east-1ü", "US-EAST-1A", "us-east-1", "us-east-1ab", "us-east-1a\n", "us-east-1-", "", "us-east-1a b"],
)
def test_what_is_no_zone_name_is_refused_as_such(zone: str) -> None:
    said = zone_problem(zone, "us-east-1")
    assert said is not None and "not a zone name such as us-east-1a" in said
    assert "\n" not in said


def test_another_regions_zone_names_its_region() -> None:
    assert zone_problem("eu-west-1a", "us-east-1") == (
        "--zone eu-west-1a is a zone of eu-west-1, not of us-east-1: pass --region eu-west-1, "
        "or a zone of us-east-1 such as us-east-1a"
    )
    assert "a zone of us-west-2, not of us-west-1" in str(zone_problem("us-west-2-lax-1a", "us-west-1"))


@pytest.mark.parametrize(("rate", "refused"), [(None, False), (100, False), (300, False), (99, True), (301, True)])
def test_the_initialization_rate_is_100_to_300_mib_per_second(rate: int | None, refused: bool) -> None:
    said = initialization_rate_problem(rate)
    assert (said is not None) is refused
    if refused:
        assert said == f"--initialization-rate {rate}: EBS takes 100 to 300 MiB/s"
