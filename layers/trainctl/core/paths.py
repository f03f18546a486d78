"""What a path may be: on an instance, in S3, or under a local folder trainctl writes into.

Every path a setting or a request names runs as root on an instance through an SSM document, whose
allowedPattern repeats these rules: letters, digits and `_ . - /` (and `=` in S3 keys), and never a `.` or `..`
segment. The patterns are full-match patterns: in Python `$` would let a trailing newline through, and pydantic's
Rust engine reads them the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# One segment: up to two dots, then a character that is not a dot; so `.` and `..` alone are never a segment.
_SEGMENT = r"\.{0,2}[A-Za-z0-9_-][A-Za-z0-9_.-]*"
_KEY_SEGMENT = r"\.{0,2}[A-Za-z0-9_=-][A-Za-z0-9_.=-]*"
BUCKET = r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]"

ABSOLUTE_PATH = rf"^(/{_SEGMENT})+/?$"
S3_URI = rf"^s3://{BUCKET}(/|(/{_KEY_SEGMENT})+/?)?$"
MOUNT_POINT = r"^/mnt/\.{0,2}[A-Za-z0-9_-][A-Za-z0-9_.-]{0,61}$"
MAX_PATH = 1024

_ABSOLUTE_PATH = re.compile(ABSOLUTE_PATH.removeprefix("^").removesuffix("$"))
_S3_URI = re.compile(rf"s3://(?P<bucket>{BUCKET})(?P<key>/|(/{_KEY_SEGMENT})+/?)?")


def is_absolute_path(value: str) -> bool:
    """An absolute path on an instance, without `.` or `..` segments."""
    return len(value) <= MAX_PATH and _ABSOLUTE_PATH.fullmatch(value) is not None


def split_s3_uri(value: str) -> tuple[str, str] | None:
    """(bucket, key) of an s3://bucket/key URI without `.` or `..` segments, or None when it is not one."""
    match = _S3_URI.fullmatch(value) if len(value) <= MAX_PATH + 70 else None
    if match is None:
        return None
    return match["bucket"], (match["key"] or "").removeprefix("/")


def stays_under(relative: str) -> bool:
    """Does a relative path from outside (an S3 key below a prefix) stay below the folder it is written into?"""
    return bool(relative) and not relative.startswith("/") and all(p not in (".", "..") for p in relative.split("/"))


def below(key: str, prefix: str) -> str:
    """An S3 key as a path below the prefix it was listed under (what a sync writes it as)."""
    return key[len(prefix) :].lstrip("/")


def escaping_keys(keys: Iterable[str], prefix: str) -> list[str]:
    """Keys under `prefix` that a copy into a folder would write outside it (`a/../../x`): a key is anyone's text.

    Folder markers (a key ending in `/`) hold nothing and the object named by the prefix itself is its own file."""
    escaping = []
    for key in keys:
        relative = below(key, prefix)
        if key.endswith("/") or not relative:
            continue
        if not stays_under(relative):
            escaping.append(key)
    return escaping
