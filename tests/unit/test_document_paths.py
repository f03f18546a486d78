"""Issue 17 item 7: no path parameter of any SSM document trainctl ships accepts a `.` or `..` segment.

The transfer document took any absolute path, `..` included; `/mnt/..` and `/mnt/.` passed the pre-warm
document's pattern. Each document runs as root on an instance: its allowedPattern is the last check.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

from trainctl.aws import ssm_documents

DOCUMENTS = sorted(
    path.name.removesuffix(".json")
    for path in resources.files("trainctl.aws").joinpath("documents").iterdir()
    if path.name.endswith(".json")
)
# Every parameter that names a place on the instance or in S3, with a value each document must accept.
PATHS = {
    "MountPoint": "/mnt/prewarm",
    "Path": "/home/ec2-user/data/",
    "PidFile": "/var/run/trainctl/training.pid",
    "CheckpointDir": "/opt/trainctl/checkpoints",
    "S3Uri": "s3://team-checkpoints/runs/",
    "CachePath": "/opt/dlami/nvme/trainctl-cache/",
}
# Parameters whose pattern allows `/` but which are not paths: process name patterns for pgrep.
NOT_PATHS = {"ProcessPatterns"}


def parameters() -> list[tuple[str, str, str]]:
    found = []
    for document in DOCUMENTS:
        for name, parameter in ssm_documents.load(document)["parameters"].items():
            if "allowedPattern" in parameter:
                found.append((document, name, parameter["allowedPattern"]))
    return found


def accepts(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def test_every_parameter_that_takes_a_slash_is_a_known_path() -> None:
    for document, name, pattern in parameters():
        if accepts(pattern, "/a/b") or accepts(pattern, "s3://bucket/a/b") or accepts(pattern, "/mnt/a"):
            assert name in PATHS or name in NOT_PATHS, f"{document}.{name} looks like a path: add it to PATHS"


@pytest.mark.parametrize(("document", "name", "pattern"), [p for p in parameters() if p[1] in PATHS])
def test_no_path_parameter_accepts_a_dot_segment(document: str, name: str, pattern: str) -> None:
    good = PATHS[name]
    assert accepts(pattern, good), (document, name)
    base = good.rstrip("/")
    for bad in (
        f"{base}/..",
        f"{base}/../",
        f"{base}/../etc",
        f"{base}/.",
        f"{base}/./x",
        "/mnt/..",
        "/mnt/.",
        "/..",
        "s3://team-checkpoints/../x/",
        f"{good}\n",
    ):
        assert not accepts(pattern, bad), (document, name, bad)
    for fine in (f"{base}/.hidden", f"{base}/v1.2", f"{base}/a..b"):
        if name != "MountPoint":  # the mount point is one segment under /mnt
            assert accepts(pattern, fine), (document, name, fine)


@pytest.mark.parametrize(("document", "name", "pattern"), [p for p in parameters() if p[1] in PATHS])
def test_core_path_rules_refuse_whatever_a_document_refuses(document: str, name: str, pattern: str) -> None:
    """Settings and the command line check paths with trainctl.core.paths before anything is sent: a value they
    accept must be one the document accepts too, so a bad one is a one-line error at once, not a failed command."""
    from trainctl.core import paths

    good = PATHS[name]
    base = good.rstrip("/")
    for value in (good, f"{base}/..", f"{base}/./x", f"{base}/../etc", f"{base}/a..b", f"{base}\n", f"{base}/ x"):
        if name == "S3Uri":
            ours = paths.split_s3_uri(value) is not None
        elif name == "MountPoint":
            ours = re.fullmatch(paths.MOUNT_POINT, value) is not None
        else:
            ours = paths.is_absolute_path(value)
        if ours:
            assert accepts(pattern, value), (document, name, value)
