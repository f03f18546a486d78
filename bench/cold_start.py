"""Cold import time of each Lambda handler, and the size of what ships: python -m bench.cold_start

Each import runs in a fresh interpreter (as a cold Lambda would) with the environment the stack gives every
function: the best and the median of several runs, since this machine's timings wander by 100 ms or more
between runs of the same thing. Imports read bytecode from a cache written by one discarded run; a second
measure compiles everything from source, which is what a package shipped without bytecode costs.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench.report import Table
from trainctl.core import names

ROOT = Path(__file__).resolve().parents[1]
RUNS = 15
SOURCE_RUNS = 5
IMPORT_TARGET_MS = 300
PROBE = (
    "import time; started = time.perf_counter(); import handler; "
    "print(json.dumps(round((time.perf_counter() - started) * 1000, 1)))"
)


def handlers() -> list[Path]:
    return sorted(p for p in (ROOT / "functions").iterdir() if (p / "handler.py").is_file())


# What every handler imports before any trainctl code: the floor under the target on this machine.
FLOORS = {
    "floor: botocore alone": "import botocore.session",
    "floor: botocore, pydantic, Powertools Logger, Metrics and parser": (
        "import botocore.session, pydantic; from aws_lambda_powertools import Logger, Metrics; "
        "import aws_lambda_powertools.utilities.parser"
    ),
}


def cold_import_ms(
    function: Path, runs: int = RUNS, statement: str = "import handler", *, bytecode: bool = True
) -> list[float]:
    with tempfile.TemporaryDirectory() as cache:
        env = {
            **os.environ,
            **names.FUNCTION_ENVIRONMENT,
            "PYTHONPATH": os.pathsep.join([str(function), str(ROOT / "layers")]),
            "AWS_DEFAULT_REGION": "us-east-1",
            # Bytecode goes to (and comes from) an empty cache of this measurement's own.
            "PYTHONPYCACHEPREFIX": cache,
        }
        env.pop("TRAINCTL_TRACE_AWS_CALLS", None)
        probe = [sys.executable, "-c", "import json; " + PROBE.replace("import handler", statement)]
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            subprocess.run(probe, env=env, cwd=function, capture_output=True, check=True)  # writes the cache
        else:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        samples = []
        for _ in range(runs):
            out = subprocess.run(probe, env=env, cwd=function, capture_output=True, text=True, check=True)
            samples.append(float(out.stdout.strip().splitlines()[-1]))
    return samples


def import_table() -> Table:
    table = Table(
        "Cold import of each handler module (fresh interpreter, the functions' environment, tracing off as deployed "
        "by default)",
        ["handler", "best ms", "median ms", f"under {IMPORT_TARGET_MS} ms (best)", "without bytecode, best ms"],
    )
    for function in handlers():
        samples = cold_import_ms(function)
        source = cold_import_ms(function, SOURCE_RUNS, bytecode=False)
        best = min(samples)
        table.rows.append(
            [
                function.name,
                best,
                statistics.median(samples),
                "yes" if best < IMPORT_TARGET_MS else "no",
                min(source),
            ]
        )
    for label, statement in FLOORS.items():
        samples = cold_import_ms(ROOT / "functions" / "cleanup_sweep", statement=statement)
        source = cold_import_ms(ROOT / "functions" / "cleanup_sweep", SOURCE_RUNS, statement, bytecode=False)
        table.rows.append([label, min(samples), statistics.median(samples), "-", min(source)])
    table.notes.append(
        "- Only the spot handler imports boto3 (Powertools' idempotency store needs it); the others build their "
        "clients from botocore alone."
    )
    from infra.layer import PYTHON_VERSION, bytecode_interpreter

    shipped = (
        f"this machine has Python {PYTHON_VERSION}, so the layer ships bytecode compiled by it"
        if bytecode_interpreter()
        else f"the layer ships none, as this machine lacks the runtime's Python ({PYTHON_VERSION}) to compile it with"
    )
    table.notes.append(
        "- Without bytecode every module is compiled as it is imported. On Lambda the runtime's own boto3 and "
        f"botocore come compiled; {shipped} (`infra/layer.py`)."
    )
    return table


def _files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.name != ".complete"]


def size_kib(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 1024


def zipped_kib(root: Path, paths: list[Path]) -> float:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            archive.write(path, path.relative_to(root))
    return len(buffer.getvalue()) / 1024


def size_table() -> Table:
    from infra.layer import _dependencies

    table = Table("Lambda packages", ["package", "unpacked KiB", "zipped KiB"])
    for function in handlers():
        files = _files(function)
        table.rows.append([f"function {function.name}", size_kib(files), zipped_kib(function, files)])
    source = _files(ROOT / "layers" / "trainctl")
    table.rows.append(["layer: trainctl", size_kib(source), zipped_kib(ROOT / "layers", source)])
    deps_root = _dependencies()
    deps = _files(deps_root)
    table.rows.append(["layer: pydantic, Powertools, X-Ray SDK", size_kib(deps), zipped_kib(deps_root, deps)])
    total = size_kib(source) + size_kib(deps)
    table.notes.append(
        f"- The layer unpacks to {total / 1024:.1f} MiB of Lambda's 250 MiB (function and layers together); "
        "boto3 comes with the runtime."
    )
    return table


def main() -> None:
    print(import_table().markdown())
    print(size_table().markdown())


if __name__ == "__main__":
    main()
