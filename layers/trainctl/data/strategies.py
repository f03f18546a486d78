"""What a training job asks for its data, one call per strategy; each answers a path to read or refuses in words.

Plain Python the job imports on the instance (the standard library, and boto3 only to fill a local cache):

    from trainctl.data.strategies import prewarmed_ebs
    root = prewarmed_ebs("/mnt/data", expected_bytes=...)  # a Path, or DataNotReady saying why

- pre-warmed EBS: the mount point is a mounted file system and holds at least what the pre-warm wrote (its
  trainctl:prewarmed-bytes tag);
- existing EBS: the mount point is a mounted file system;
- direct S3: the s3:// URI to read on demand (through the S3 Connector for PyTorch or Mountpoint);
- local cache: the cache directory is created, and filled from S3 on first use (a marker says it is complete).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainctl.core.paths import below, split_s3_uri, stays_under
from trainctl.core.permissions import needs

PERMISSIONS = needs("s3:ListBucket", "s3:GetObject")
# Written last by a fill: its presence says the cache is complete, and what it holds.
FILLED_MARKER = ".trainctl-filled.json"
COPY_CHUNK = 8 * 2**20  # bytes read from S3 at a time: a large object never sits whole in memory


class DataNotReady(RuntimeError):
    """The data is not where the strategy says, or not all of it: the job should not start training."""


def _folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != FILLED_MARKER)


def existing_ebs(mount_point: str | Path, *, is_mount: Callable[[str], bool] = os.path.ismount) -> Path:
    """An EBS volume the job's instance already has: the mount point must be a mounted file system."""
    root = Path(mount_point)
    if not root.is_absolute():
        raise DataNotReady(f"{root} is not an absolute path")
    if not root.is_dir():
        raise DataNotReady(f"{root} does not exist or is not a directory")
    if not is_mount(str(root)):
        raise DataNotReady(f"{root} is a plain directory, not a mounted volume: is the volume attached and mounted?")
    return root


def prewarmed_ebs(
    mount_point: str | Path,
    *,
    expected_bytes: int | None = None,
    is_mount: Callable[[str], bool] = os.path.ismount,
) -> Path:
    """A volume trainctl pre-warmed: mounted, not empty, and holding at least `expected_bytes`."""
    root = existing_ebs(mount_point, is_mount=is_mount)
    held = _folder_bytes(root)
    if held == 0:
        raise DataNotReady(f"{root} is mounted but empty: the pre-warm has not filled it")
    if expected_bytes is not None and held < expected_bytes:
        raise DataNotReady(
            f"{root} holds {held:,} bytes of the {expected_bytes:,} the pre-warm copied: it is not filled yet"
        )
    return root


def direct_s3(uri: str) -> str:
    """The S3 prefix to read on demand; only its form is checked here (the reader lists it)."""
    split = split_s3_uri(uri)
    if split is None:
        raise DataNotReady(f"{uri!r} is not an s3://bucket/prefix/ URI")
    bucket, key = split
    return f"s3://{bucket}/{key}"


def local_cache(
    cache_dir: str | Path,
    uri: str,
    *,
    s3: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """The cache directory, created if missing and filled from `uri` on first use; filled once, then reused."""
    root = Path(cache_dir)
    if not root.is_absolute():
        raise DataNotReady(f"{root} is not an absolute path")
    marker = root / FILLED_MARKER
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("source") != direct_s3(uri):
            raise DataNotReady(f"{root} holds a cache of {recorded.get('source')}, not of {uri}")
        if _folder_bytes(root) < int(recorded.get("bytes", 0)):
            raise DataNotReady(f"{root} holds less than its fill recorded: remove {marker.name} to fill it again")
        return root
    root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK):
        raise DataNotReady(f"{root} cannot be written to")
    _fill(root, direct_s3(uri), s3, clock)
    return root


def _fill(root: Path, uri: str, s3: Any, clock: Callable[[], float]) -> None:
    """Copy every object under `uri` below `root`; a key that would land outside it stops the fill."""
    if s3 is None:
        # Cold start: boto3 costs a training job's start-up time, and only a fill needs it.
        import boto3

        s3 = boto3.client("s3")
    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    started = clock()
    copied = 0
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            if key.endswith("/"):
                continue  # a folder marker holds nothing
            relative = below(key, prefix)
            if not stays_under(relative):
                raise DataNotReady(f"the key {key!r} would be written outside {root}: nothing more is copied")
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            with target.open("wb") as out:
                shutil.copyfileobj(body, out, COPY_CHUNK)
            copied += int(item.get("Size", 0))
            count += 1
    if count == 0:
        raise DataNotReady(f"there are no objects under {uri} to cache")
    record = {"source": uri, "bytes": copied, "objects": count, "seconds": round(clock() - started, 3)}
    (root / FILLED_MARKER).write_text(json.dumps(record), encoding="utf-8")
