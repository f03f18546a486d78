"""What a training job asks for its data: each strategy answers a path, or refuses in words (tmp_path, moto S3)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from trainctl.data.strategies import (
    FILLED_MARKER,
    DataNotReady,
    direct_s3,
    existing_ebs,
    local_cache,
    prewarmed_ebs,
)


def mounted(path: str) -> bool:
    return True


def not_mounted(path: str) -> bool:
    return False


def test_existing_ebs_needs_a_mounted_directory(tmp_path: Path) -> None:
    assert existing_ebs(tmp_path, is_mount=mounted) == tmp_path
    with pytest.raises(DataNotReady, match="a plain directory, not a mounted volume"):
        existing_ebs(tmp_path, is_mount=not_mounted)
    with pytest.raises(DataNotReady, match="does not exist"):
        existing_ebs(tmp_path / "missing", is_mount=mounted)
    with pytest.raises(DataNotReady, match="not an absolute path"):
        existing_ebs("relative/data", is_mount=mounted)


def test_prewarmed_ebs_needs_the_bytes_the_prewarm_wrote(tmp_path: Path) -> None:
    with pytest.raises(DataNotReady, match="mounted but empty"):
        prewarmed_ebs(tmp_path, is_mount=mounted)
    (tmp_path / "shard").mkdir()
    (tmp_path / "shard" / "a.bin").write_bytes(b"x" * 600)
    (tmp_path / "b.bin").write_bytes(b"y" * 400)
    # The volume's trainctl:prewarmed-bytes tag said 1,000: a volume holding 1,000 is filled, one holding less is not.
    assert prewarmed_ebs(tmp_path, expected_bytes=1000, is_mount=mounted) == tmp_path
    with pytest.raises(DataNotReady, match="holds 1,000 bytes of the 1,001 the pre-warm copied"):
        prewarmed_ebs(tmp_path, expected_bytes=1001, is_mount=mounted)
    with pytest.raises(DataNotReady, match="not a mounted volume"):
        prewarmed_ebs(tmp_path, is_mount=not_mounted)


def test_direct_s3_returns_the_uri_and_refuses_what_is_not_one() -> None:
    assert direct_s3("s3://training-data/imagenet/") == "s3://training-data/imagenet/"
    for bad in ("training-data/imagenet", "s3://training-data/../etc/", "s3://A/x"):
        with pytest.raises(DataNotReady, match="not an s3://bucket/prefix/ URI"):
            direct_s3(bad)


def seed(keys: dict[str, bytes]) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="training-data")
    for key, body in keys.items():
        s3.put_object(Bucket="training-data", Key=key, Body=body)


def test_local_cache_is_created_filled_on_first_use_and_reused(aws: None, tmp_path: Path) -> None:
    seed({"set/a/1.bin": b"1" * 10, "set/a/2.bin": b"2" * 20, "set/b/3.bin": b"3" * 30, "set/b/": b""})
    cache = tmp_path / "cache"
    ticks = iter([100.0, 102.5])
    s3 = boto3.client("s3", region_name="us-east-1")
    assert local_cache(cache, "s3://training-data/set/", s3=s3, clock=lambda: next(ticks)) == cache
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*.bin")) == ["a/1.bin", "a/2.bin", "b/3.bin"]
    assert (cache / "b" / "3.bin").read_bytes() == b"3" * 30
    record = json.loads((cache / FILLED_MARKER).read_text())
    assert record == {"source": "s3://training-data/set/", "bytes": 60, "objects": 3, "seconds": 2.5}
    # Second use: filled already, no S3 call at all (a client that fails on any call proves it).
    assert local_cache(cache, "s3://training-data/set/", s3=object()) == cache


def test_local_cache_refuses_a_cache_of_another_source_or_a_damaged_one(aws: None, tmp_path: Path) -> None:
    seed({"set/1.bin": b"1" * 10})
    s3 = boto3.client("s3", region_name="us-east-1")
    local_cache(tmp_path, "s3://training-data/set/", s3=s3)
    with pytest.raises(
        DataNotReady, match="holds a cache of s3://training-data/set/, not of s3://training-data/other/"
    ):
        local_cache(tmp_path, "s3://training-data/other/", s3=s3)
    (tmp_path / "1.bin").unlink()
    with pytest.raises(DataNotReady, match="holds less than its fill recorded"):
        local_cache(tmp_path, "s3://training-data/set/", s3=s3)


def test_local_cache_never_writes_outside_its_directory(aws: None, tmp_path: Path) -> None:
    seed({"set/ok.bin": b"1", "set/../escape.bin": b"2"})
    cache = tmp_path / "cache"
    s3 = boto3.client("s3", region_name="us-east-1")
    with pytest.raises(DataNotReady, match="would be written outside"):
        local_cache(cache, "s3://training-data/set/", s3=s3)
    assert not (tmp_path / "escape.bin").exists()
    assert not (cache / FILLED_MARKER).exists()  # an interrupted fill is never taken for a complete one


def test_local_cache_of_an_empty_prefix_is_refused(aws: None, tmp_path: Path) -> None:
    seed({"elsewhere/1.bin": b"1"})
    with pytest.raises(DataNotReady, match="no objects under s3://training-data/set/"):
        local_cache(tmp_path, "s3://training-data/set/", s3=boto3.client("s3", region_name="us-east-1"))
