"""`trainctl data plan` on a listing of 1,000,000 objects, paginated, through the AWS-like endpoint.

    python -m bench.data_plan [--classes 1000] [--per-class 1000] [--latency 0.05]

The dataset is laid out as ImageNet's training set is (1,000 class folders of about 1,000 images each). Seeding a
million objects into moto takes longer than the benchmark and moto sorts every key of the bucket for every page,
a cost S3 does not have; so the listing is served by this file, from memory, inside the AWS-like endpoint
(bench/aws_like.py), with its per-call latency: ListObjectsV2 as the S3 API Reference documents it (list-type=2,
prefix, delimiter, continuation-token, at most 1,000 keys a page, CommonPrefixes, NextContinuationToken,
KeyCount, IsTruncated). Every other call goes on to moto as before. The command runs as a person runs it, as its
own process, and its wall time is the figure.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

from bench.aws_like import AwsLike
from bench.report import Table

TARGET_SECONDS = 60
S3_NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
PAGE = 1000  # ListObjectsV2 returns at most 1,000 keys a page, whatever max-keys asks
BUCKET = "bench-data"
PREFIX = "imagenet/train/"
TRAINCTL = str(Path(sys.executable).with_name("trainctl"))


class Bucket:
    """One bucket's keys, sorted, with sizes; answers ListObjectsV2 pages."""

    def __init__(self, keys: list[str], sizes: list[int]) -> None:
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self.keys = [keys[i] for i in order]
        self.sizes = [sizes[i] for i in order]

    def page(self, prefix: str, delimiter: str, after: str, max_keys: int) -> tuple[list[int], list[str], str]:
        """(indexes of keys, common prefixes, the next token or "") for one page. The token is the last key or
        folder returned: opaque to the client, as S3's is."""
        if not after:
            start = bisect.bisect_left(self.keys, prefix)
        elif delimiter and after.endswith(delimiter):
            start = bisect.bisect_left(self.keys, _past(after))  # a folder: skip every key in it
        else:
            start = bisect.bisect_right(self.keys, after)
        found: list[int] = []
        folders: list[str] = []
        last = ""
        index = start
        while index < len(self.keys) and len(found) + len(folders) < max_keys:
            key = self.keys[index]
            if not key.startswith(prefix):
                break
            rest = key[len(prefix) :]
            cut = rest.find(delimiter) if delimiter else -1
            if cut >= 0:
                last = prefix + rest[: cut + len(delimiter)]
                folders.append(last)
                index = bisect.bisect_left(self.keys, _past(last))
                continue
            found.append(index)
            last = key
            index += 1
        more = index < len(self.keys) and self.keys[index].startswith(prefix)
        return found, folders, last if more else ""

    def xml(self, prefix: str, delimiter: str, token: str, max_keys: int) -> bytes:
        found, folders, following = self.page(prefix, delimiter, token, min(max_keys, PAGE))
        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{S3_NAMESPACE}">',
            f"<Name>{BUCKET}</Name><Prefix>{escape(prefix)}</Prefix><MaxKeys>{PAGE}</MaxKeys>",
            f"<KeyCount>{len(found) + len(folders)}</KeyCount>",
            f"<IsTruncated>{'true' if following else 'false'}</IsTruncated>",
        ]
        if delimiter:
            parts.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if token:
            parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if following:
            parts.append(f"<NextContinuationToken>{escape(following)}</NextContinuationToken>")
        for i in found:
            parts.append(
                f"<Contents><Key>{escape(self.keys[i])}</Key><LastModified>2026-12-01T00:00:00.000Z</LastModified>"
                f'<ETag>"{i:032x}"</ETag><Size>{self.sizes[i]}</Size><StorageClass>STANDARD</StorageClass></Contents>'
            )
        parts += [f"<CommonPrefixes><Prefix>{escape(f)}</Prefix></CommonPrefixes>" for f in folders]
        parts.append("</ListBucketResult>")
        return "".join(parts).encode()


class ListingEndpoint(AwsLike):
    """The AWS-like endpoint, with one bucket's ListObjectsV2 answered from memory."""

    def __init__(self, moto_endpoint: str, bucket: Bucket, *, latency: float) -> None:
        super().__init__(moto_endpoint, latency=latency)
        self.bucket = bucket
        self.pages = 0

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if method == "GET" and unquote(parts.path).strip("/") == BUCKET and query.get("list-type") == "2":
            started = time.perf_counter()
            payload = self.bucket.xml(
                query.get("prefix", ""),
                query.get("delimiter", ""),
                query.get("continuation-token", ""),
                int(query.get("max-keys", PAGE)),
            )
            self.pages += 1
            self._count("s3:ListObjectsV2", spent=time.perf_counter() - started)
            time.sleep(self.latency)
            return 200, {"Content-Type": "application/xml"}, payload
        return super().handle(method, path, headers, body)


def _past(folder: str) -> str:
    """The smallest string after every key that starts with `folder`."""
    return folder[:-1] + chr(ord(folder[-1]) + 1)


def imagenet(classes: int, per_class: int) -> Bucket:
    keys = [f"{PREFIX}n{c:08d}/n{c:08d}_{i:05d}.JPEG" for c in range(classes) for i in range(per_class)]
    # ImageNet's JPEGs average about 110 KB: sizes spread around it, the same every run.
    sizes = [80_000 + (n * 7919) % 60_000 for n in range(len(keys))]
    return Bucket(keys, sizes)


@dataclass
class Run:
    objects: int
    classes: int
    pages: int
    seconds: float
    exit_code: int
    measured_objects: int
    measured_bytes: int
    recommended: str


def measure(classes: int = 1000, per_class: int = 1000, latency: float = 0.05) -> Run:
    from trainctl.cli.sandbox_fleet import moto_server

    bucket = imagenet(classes, per_class)
    with moto_server() as moto, ListingEndpoint(moto, bucket, latency=latency) as env:
        environ = dict(
            os.environ,
            AWS_ENDPOINT_URL=env.endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - the emulator takes any key
            AWS_REGION="us-east-1",
        )
        command = [
            TRAINCTL, "--quiet", "data", "plan", f"s3://{BUCKET}/{PREFIX}", "--instance-type", "p5.48xlarge",
            "--count", "8", "--epochs", "20", "--zone", "us-east-1a", "--json",
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, check=False, env=environ, capture_output=True, text=True, timeout=600)
        seconds = time.perf_counter() - started
    result: dict[str, Any] = json.loads(done.stdout) if done.returncode == 0 else {}
    dataset = result.get("dataset", {})
    return Run(
        len(bucket.keys),
        classes,
        env.pages,
        seconds,
        done.returncode,
        int(dataset.get("objects", 0)),
        int(dataset.get("size_bytes", 0)),
        str(result.get("recommended", done.stderr.strip()[-200:])),
    )


def table(run: Run, latency: float) -> Table:
    result = Table(
        f"`data plan` on a listing of {run.objects:,} objects ({run.classes:,} folders), "
        f"{latency * 1000:.0f} ms a call",
        ["objects listed", "list pages", "wall s", f"under {TARGET_SECONDS} s", "recommended"],
    )
    met = run.exit_code == 0 and run.measured_objects == run.objects and run.seconds < TARGET_SECONDS
    result.rows.append(
        [f"{run.measured_objects:,}", f"{run.pages:,}", f"{run.seconds:.1f}", "yes" if met else "no", run.recommended]
    )
    result.notes.append(
        "- `trainctl data plan s3://bench-data/imagenet/train/ --instance-type p5.48xlarge --count 8 --epochs 20` as "
        "its own process. The listing splits over the dataset's top-level folders, 16 at once; each page is one "
        "ListObjectsV2 call of at most 1,000 keys. The pages are served from memory by bench/data_plan.py inside the "
        "AWS-like endpoint (moto would sort the whole bucket for every page); every other call goes to moto."
    )
    result.notes.append(
        "- A flat prefix of a million objects has no folders to split over: it lists one page after another, "
        f"1,000 pages x the call's latency ({PAGE:,} keys a page) at least."
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    run = measure(args.classes, args.per_class, args.latency)
    print(table(run, args.latency).markdown())


if __name__ == "__main__":
    main()
