"""`trainctl data plan` and `data loader` from the command line, on moto: a measured bucket, refusals that make
no AWS call, a listing that pages and can be interrupted, tables that fit 80 columns."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.integration.conftest import run_cli
from trainctl.aws.clients import ClientFactory
from trainctl.core import tags
from trainctl.data.run import measure_dataset

TRAINCTL = str(Path(sys.executable).with_name("trainctl"))


def seed(keys: dict[str, int], bucket: str = "training-data") -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    for key, size in keys.items():
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * size)


def test_plan_measures_the_bucket_and_recommends(factory: ClientFactory) -> None:
    # Three class folders of 4 images, 1,000 bytes each, and one file beside them: 13 objects, 13,000 bytes.
    seed({f"imagenet/class{c}/{i}.jpg": 1000 for c in range(3) for i in range(4)} | {"imagenet/labels.txt": 1000})
    seed({"elsewhere/x.bin": 5}, bucket="other-data")
    done = run_cli(
        factory,
        ["data", "plan", "s3://training-data/imagenet", "--instance-type", "g5.xlarge", "--epochs", "3", "--json"],
    )
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["dataset"] == {
        "uri": "s3://training-data/imagenet",
        "size_bytes": 13_000,
        "objects": 13,
        "prefixes": 3,
    }
    assert result["fleet"]["zone"] == "us-east-1a" and result["fleet"]["vcpus"] == 4
    assert [s["strategy"] for s in result["strategies"]] == [
        "streaming",
        "local-cache",
        "prewarmed-ebs",
        "snapshot-rate",
        "fast-restore",
        "fsx-lustre",
        "s3-express",
    ]
    chosen = next(s for s in result["strategies"] if s["strategy"] == result["recommended"])
    priced = [s["total_usd"] for s in result["strategies"] if s["total_usd"] is not None]
    assert chosen["total_usd"] == min(priced)
    assert all(s["assumptions"] for s in result["strategies"] if s["available"])


def test_the_table_fits_80_columns_and_names_the_recommendation(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    done = run_cli(
        factory,
        [
            "data",
            "plan",
            "--size",
            "2TB",
            "--objects",
            "2000000",
            "--instance-type",
            "p5.48xlarge",
            "--count",
            "8",
            "--epochs",
            "20",
            "--zone",
            "us-east-1a",
        ],
    )
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    assert any(line.startswith("* S3 Express One Zone") for line in lines)
    assert any(line.startswith("recommended: S3 Express One Zone") for line in lines)
    assert factory.calls.total == 2  # no listing for a given size: one read of past pre-warms, one of cache fills


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--size", "0GB", "--objects", "1"], "the dataset's size must be more than zero bytes"),
        (["--size", "ten", "--objects", "1"], "--size ten: a size such as 50GB"),
        (["--size", "1GB", "--objects", "1", "--epochs", "0"], "--epochs 0: a plan needs at least one epoch"),
        (
            ["--size", "1GB", "--objects", "1", "--zone", "eu-west-1a"],
            "--zone eu-west-1a is in eu-west-1, not in us-east-1",
        ),
        (["--size", "1GB", "--objects", "1", "--instance-type", "x9.mega"], "no on-demand price for it in us-east-1"),
        (["s3://Bad_Bucket/"], "is not an s3://bucket/prefix/ URI"),
        (["s3://training-data/", "--size", "1GB"], "not both"),
        (["--size", "1GB"], "--size needs --objects"),
    ],
)
def test_bad_input_is_one_line_and_makes_no_aws_call(factory: ClientFactory, args: list[str], words: str) -> None:
    if "--instance-type" not in args:
        args = [*args, "--instance-type", "g5.xlarge"]
    refused = run_cli(factory, ["data", "plan", *args])
    assert refused.exit_code == 2, refused.output
    assert words in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert refused.stdout == ""
    assert factory.calls.total == 0


def test_a_bucket_that_does_not_exist_is_one_line_and_creates_nothing(factory: ClientFactory) -> None:
    refused = run_cli(factory, ["data", "plan", "s3://no-such-data/", "--instance-type", "g5.xlarge"])
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: s3://no-such-data/: there is no bucket named no-such-data"
    )
    assert boto3.client("s3", region_name="us-east-1").list_buckets()["Buckets"] == []


def test_an_empty_prefix_is_a_size_of_zero(factory: ClientFactory) -> None:
    seed({"other/x.bin": 10})
    refused = run_cli(factory, ["data", "plan", "s3://training-data/train/", "--instance-type", "g5.xlarge"])
    assert refused.exit_code == 1
    assert "no objects under s3://training-data/train/" in refused.stderr


def test_the_listing_pages_over_folders_and_reports_progress(factory: ClientFactory) -> None:
    # 2 folders of 1,100 objects (two pages each) and 3 objects beside them: 2,203 objects.
    keys = {f"set/{folder}/{i:05}.bin": 2 for folder in ("a", "b") for i in range(1100)}
    keys |= {f"set/top{i}.bin": 3 for i in range(3)}
    seed(keys)
    seen: list[tuple[int, int]] = []
    dataset = measure_dataset(
        factory.client("s3", "us-east-1"), "s3://training-data/set/", progress=lambda o, b: seen.append((o, b))
    )
    assert (dataset.objects, dataset.size_bytes, dataset.prefixes) == (2203, 2 * 2200 + 9, 2)
    assert len(seen) == 5  # the top page, then two pages a folder
    assert seen[-1] == (2203, 4409)
    assert sorted(o for o, _ in seen) == [o for o, _ in seen]


def test_ctrl_c_in_a_listing_stops_every_thread(factory: ClientFactory) -> None:
    seed({f"set/{folder}/{i}.bin": 1 for folder in "abcdefgh" for i in range(3)})
    stop_at = threading.Event()

    def progress(objects: int, size: int) -> None:
        if objects > 6:
            stop_at.set()
            raise KeyboardInterrupt

    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        measure_dataset(factory.client("s3", "us-east-1"), "s3://training-data/set/", progress=progress, threads=2)
    assert stop_at.is_set()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint that takes the connection and never answers: the listing waits there until interrupted."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_ctrl_c_while_listing_is_one_line_and_exit_130(silent_endpoint: str) -> None:
    environ = dict(
        os.environ,
        AWS_ENDPOINT_URL=silent_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
    )
    command = subprocess.Popen(
        [TRAINCTL, "--quiet", "data", "plan", "s3://training-data/", "--instance-type", "g5.xlarge"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    command.send_signal(signal.SIGINT)
    out, err = command.communicate(timeout=60)
    assert (command.returncode, err, out) == (130, "error: interrupted\n", "")


def _rate_tags(key: str, rate: str, scope: str | None = tags.MANAGED) -> list[dict[str, Any]]:
    marks = [{"Key": key, "Value": rate}] + ([{"Key": scope, "Value": "true"}] if scope else [])
    return [{"ResourceType": "volume" if key == tags.PREWARMED_RATE else "instance", "Tags": marks}]


def _strategy_of(factory: ClientFactory, name: str) -> dict[str, Any]:
    done = run_cli(
        factory,
        ["data", "plan", "--size", "50GB", "--objects", "100", "--instance-type", "g5.xlarge", "--json"],
    )
    assert done.exit_code == 0, done.output
    found: dict[str, Any] = next(s for s in json.loads(done.stdout)["strategies"] if s["strategy"] == name)
    return found


def test_plan_learns_the_copy_rate_from_past_prewarms(factory: ClientFactory) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    for rate in ("200", "300", "not a number", "0.05", "2500", "inf"):
        ec2.create_volume(
            AvailabilityZone="us-east-1a", Size=10, TagSpecifications=_rate_tags(tags.PREWARMED_RATE, rate)
        )
    # Outside the scope a rate tag is anyone's to write: these teach nothing.
    for rate in ("1", "1", "1"):
        ec2.create_volume(
            AvailabilityZone="us-east-1a", Size=10, TagSpecifications=_rate_tags(tags.PREWARMED_RATE, rate, None)
        )
    prewarm = _strategy_of(factory, "prewarmed-ebs")
    # The two plausible rates in scope, 200 and 300 MiB/s (0.05 is finer than trainctl writes, 2,500 more than a
    # gp3 volume takes): their median 250; 5e10 bytes / (250 x 2^20) = 190.73 s.
    assert "250 MiB/s, the median of 2 pre-warm(s)" in prewarm["assumptions"][0]
    assert prewarm["first_epoch_seconds"] == round(5e10 / (250 * 2**20), 1)


def test_plan_learns_the_cache_fill_rate_from_past_fills(factory: ClientFactory) -> None:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    # A g5.xlarge carries up to 10 Gbps = 1,192 MiB/s: 5,000 MiB/s was not measured on one.
    for rate in ("500", "700", "-1", "5000", "nan"):
        ec2.run_instances(
            ImageId="ami-12345678",
            InstanceType="g5.xlarge",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=_rate_tags(tags.CACHE_RATE, rate),
        )
    ec2.run_instances(
        ImageId="ami-12345678",
        InstanceType="g5.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=_rate_tags(tags.CACHE_RATE, "1", None),
    )
    cache = _strategy_of(factory, "local-cache")
    # The two readable rates, 500 and 700 MiB/s (a negative one teaches nothing): median 600; 5e10 / (600 x 2^20).
    assert "600 MiB/s, the median of 2 cache fill(s)" in cache["assumptions"][0]
    assert cache["first_epoch_seconds"] == round(5e10 / (600 * 2**20), 1)


def test_the_plan_learns_only_from_the_scope_the_sweep_reads(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRAINCTL_SCOPE_TAG names the scope: a rate under trainctl:managed alone is then outside it."""
    monkeypatch.setenv("TRAINCTL_SCOPE_TAG", "team:ml")
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ec2.create_volume(AvailabilityZone="us-east-1a", Size=10, TagSpecifications=_rate_tags(tags.PREWARMED_RATE, "5"))
    assert "no past pre-warm measured" in _strategy_of(factory, "prewarmed-ebs")["assumptions"][0]
    ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=10, TagSpecifications=_rate_tags(tags.PREWARMED_RATE, "400", "team:ml")
    )
    assert "400 MiB/s, the median of 1 pre-warm(s)" in _strategy_of(factory, "prewarmed-ebs")["assumptions"][0]


def test_loader_writes_its_script_once(factory: ClientFactory, tmp_path: Path) -> None:
    target = tmp_path / "dataloader.py"
    args = [
        "data",
        "loader",
        "--strategy",
        "direct-s3",
        "--dataset",
        "s3://training-data/imagenet/",
        "--instance-type",
        "p5.48xlarge",
        "--objects",
        "1281167",
        "--script",
        str(target),
        "--json",
    ]
    done = run_cli(factory, args)
    assert done.exit_code == 0, done.output
    choice = json.loads(done.stdout)
    assert (choice["style"], choice["workers"], choice["prefetch"], choice["processes"]) == ("iterable", 16, 4, 8)
    compile(target.read_text(), str(target), "exec")
    again = run_cli(factory, args)
    assert again.exit_code == 2 and "exists already: nothing was written" in again.stderr
    refused = run_cli(
        factory, ["data", "loader", "--strategy", "nfs", "--dataset", "/mnt/data", "--instance-type", "g5.xlarge"]
    )
    assert (
        refused.exit_code == 2
        and "--strategy nfs: use prewarmed-ebs, existing-ebs, direct-s3, local-cache" in refused.stderr
    )
    assert factory.calls.total == 0
