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
    from infra.layer import bundle, bytecode_interpreter
    from infra.lock import LAYER, RUNTIME_PACKAGES, read_lock

    table = Table("Lambda packages", ["package", "unpacked KiB", "zipped KiB"])
    for function in handlers():
        files = _files(function)
        table.rows.append([f"function {function.name}", size_kib(files), zipped_kib(function, files)])
    with tempfile.TemporaryDirectory() as built:
        # The layer as the bundler builds it for synth: what Lambda unpacks into /opt, bytecode included if any.
        python_dir = bundle(Path(built), bytecode_interpreter())
        shipped = [p for p in python_dir.rglob("*") if p.is_file()]
        ours = [p for p in shipped if p.relative_to(python_dir).parts[0] == "trainctl"]
        theirs = [p for p in shipped if p.relative_to(python_dir).parts[0] != "trainctl"]
        root = python_dir.parent
        table.rows.append(["layer: trainctl, without its command line", size_kib(ours), zipped_kib(root, ours)])
        table.rows.append(["layer: requirements/layer.txt", size_kib(theirs), zipped_kib(root, theirs)])
        total, total_zipped = size_kib(shipped), zipped_kib(root, shipped)
        table.rows.append(["layer, whole", total, total_zipped])
    locked = ", ".join(f"{name} {pinned.version}" for name, pinned in read_lock(LAYER.path.read_text()).items())
    table.notes.append(
        f"- The layer unpacks to {total / 1024:.1f} MiB of Lambda's 250 MiB (function and layers together), "
        f"{total_zipped / 1024:.1f} MiB zipped. It holds trainctl without its command line, and "
        f"`requirements/layer.txt` exactly: {locked}, the versions the tests ran with (`requirements/dev.txt`), "
        "installed with their hashes and no resolver."
    )
    table.notes.append(
        f"- Not in it: {', '.join(RUNTIME_PACKAGES)}. The Lambda Python runtime brings them, compiled to bytecode; "
        "a copy in the layer would shadow the runtime's with one this machine cannot compile (it has no Python "
        f"{LAYER.python_version}), and botocore imports several times slower without bytecode ((b), floor: botocore "
        "alone). AWS publishes no fixed version for the runtime's boto3 (it depends on the runtime version and the "
        "Region), so the functions use the runtime's, whatever its version."
    )
    return table


def main() -> None:
    print(import_table().markdown())
    print(size_table().markdown())


if __name__ == "__main__":
    main()
