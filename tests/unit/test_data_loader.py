"""`trainctl data loader`'s script: it compiles, its choices follow the plan and the instance, and where torch is
installed it reads a tiny dataset end to end (the suite itself does not need torch)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainctl.data.loader import (
    ITERABLE_FROM_OBJECTS,
    MAX_WORKERS_LOCAL,
    MAX_WORKERS_S3,
    LoaderChoice,
    LoaderRefused,
    choose,
    loader_script,
)
from trainctl.data.table import DataTable, load_data_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def table() -> DataTable:
    return load_data_table()


def constants(text: str) -> dict[str, object]:
    """The script's module-level constants, read from its syntax tree."""
    found: dict[str, object] = {}
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return found


def script_for(
    table: DataTable, strategy: str, dataset: str, instance_type: str, **extra: object
) -> tuple[LoaderChoice, str]:
    choice = choose(
        strategy,  # type: ignore[arg-type]
        dataset,
        facts=table.instances[instance_type],
        accelerators={"p5.48xlarge": 8, "g5.xlarge": 1}[instance_type],
        region="us-east-1",
        **extra,  # type: ignore[arg-type]
    )
    return choice, loader_script(choice)


@pytest.mark.parametrize("strategy", ["prewarmed-ebs", "existing-ebs", "local-cache", "direct-s3"])
@pytest.mark.parametrize("instance_type", ["p5.48xlarge", "g5.xlarge"])
def test_every_script_compiles_and_names_its_assumptions(table: DataTable, strategy: str, instance_type: str) -> None:
    dataset = "/mnt/data" if strategy.endswith("ebs") else "s3://training-data/imagenet/"
    choice, text = script_for(table, strategy, dataset, instance_type, objects=50_000)
    compile(text, "dataloader.py", "exec")
    assert "Assumptions, each a choice you may revisit:" in text
    assert f"{choice.vcpus} vCPUs" in text and "prefetch_factor=" in text
    assert constants(text)["WORKERS"] == choice.workers and constants(text)["PREFETCH"] == choice.prefetch


def test_workers_follow_the_vcpus_each_training_process_gets(table: DataTable) -> None:
    # p5.48xlarge: 192 vCPUs over 8 GPU processes = 24 each, one kept for the training loop: 23, capped at 8 for
    # local reads and 16 for S3. g5.xlarge: 4 vCPUs, one process: 3.
    assert script_for(table, "existing-ebs", "/mnt/data", "p5.48xlarge")[0].workers == MAX_WORKERS_LOCAL == 8
    assert script_for(table, "direct-s3", "s3://training-data/x/", "p5.48xlarge")[0].workers == MAX_WORKERS_S3 == 16
    g5 = script_for(table, "direct-s3", "s3://training-data/x/", "g5.xlarge")[0]
    assert (g5.processes, g5.workers) == (1, 3)


def test_s3_style_and_prefetch_follow_the_plans_object_count(table: DataTable) -> None:
    few, few_text = script_for(table, "direct-s3", "s3://training-data/x/", "g5.xlarge", objects=ITERABLE_FROM_OBJECTS)
    many, many_text = script_for(
        table, "direct-s3", "s3://training-data/x/", "g5.xlarge", objects=ITERABLE_FROM_OBJECTS + 1
    )
    assert (few.style, many.style) == ("map", "iterable")
    assert "S3MapDataset.from_prefix(DATASET, region=REGION" in few_text and "shuffle=True" in few_text
    assert "S3IterableDataset.from_prefix(" in many_text and "enable_sharding=True" in many_text
    assert "shuffle=True" not in many_text  # an iterable dataset cannot be shuffled by the sampler
    assert few.prefetch == many.prefetch == 4  # every S3 read is a round trip
    local = script_for(table, "local-cache", "s3://training-data/x/", "g5.xlarge")[0]
    assert (local.style, local.prefetch) == ("map", 2)
    assert constants(few_text)["DATASET"] == "s3://training-data/x/" and constants(few_text)["REGION"] == "us-east-1"


def test_each_file_strategy_checks_its_data_before_training(table: DataTable) -> None:
    assert (
        "prewarmed_ebs('/mnt/data', expected_bytes=EXPECTED_BYTES)"
        in script_for(table, "prewarmed-ebs", "/mnt/data", "g5.xlarge")[1]
    )
    assert "existing_ebs('/mnt/data')" in script_for(table, "existing-ebs", "/mnt/data", "g5.xlarge")[1]
    cache = script_for(table, "local-cache", "s3://training-data/x/", "g5.xlarge", cache_dir="/mnt/nvme/cache")[1]
    assert "local_cache('/mnt/nvme/cache', 's3://training-data/x/')" in cache


@pytest.mark.parametrize(
    ("strategy", "dataset", "extra", "words"),
    [
        ("direct-s3", "/mnt/data", {}, "direct-s3 needs an s3://bucket/prefix/ URI"),
        ("existing-ebs", "s3://training-data/x/", {}, "needs the volume's mount point"),
        ("existing-ebs", "/mnt/data'; import os; '", {}, "needs the volume's mount point"),
        ("local-cache", "s3://training-data/x/", {"cache_dir": "cache"}, "--cache-dir: an absolute path"),
        ("direct-s3", "s3://training-data/x/", {"batch_size": 0}, "--batch-size: at least 1"),
    ],
)
def test_what_cannot_be_written_safely_is_refused(
    table: DataTable, strategy: str, dataset: str, extra: dict[str, object], words: str
) -> None:
    with pytest.raises(LoaderRefused, match=words.replace("(", r"\(").replace(")", r"\)")):
        script_for(table, strategy, dataset, "g5.xlarge", **extra)


def test_the_script_reads_a_tiny_dataset_where_torch_is_installed(table: DataTable, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(10):
        (data / f"{i}.bin").write_bytes(bytes([i]) * (i + 1))
    choice = choose("existing-ebs", str(data), facts=table.instances["g5.xlarge"], accelerators=1, region="us-east-1")
    # The tmp directory is no mount point: the script's own check would refuse it, so the test points the check
    # at a plain directory the way a bind mount would look.
    text = loader_script(choice).replace(
        f"existing_ebs({str(data)!r})", f"existing_ebs({str(data)!r}, is_mount=lambda p: True)"
    )
    script = tmp_path / "dataloader.py"
    script.write_text(text)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "layers"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, str(script)], check=False, capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["samples"] == 10
    assert json.loads(done.stdout.strip().splitlines()[-1])["bytes"] == sum(range(1, 11))
