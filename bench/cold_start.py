"""Cold import time of each Lambda handler, and the size of what ships: python -m bench.cold_start

Each import runs in a fresh interpreter (as a cold Lambda would), best of several runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
PROBE = (
    "import time; started = time.perf_counter(); import handler; "
    "print(json.dumps(round((time.perf_counter() - started) * 1000, 1)))"
)


def cold_import_ms(function: Path) -> float:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(function), str(ROOT / "layers")]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    samples = []
    for _ in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-c", "import json; " + PROBE],
            env=env,
            cwd=function,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return min(samples)


def size_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) / 2**20


def main() -> None:
    print(f"{'function':<16} {'cold import ms':>15} {'package KiB':>12}")
    for function in sorted((ROOT / "functions").iterdir()):
        if (function / "handler.py").is_file():
            print(f"{function.name:<16} {cold_import_ms(function):>15.1f} {size_mib(function) * 1024:>12.1f}")
    layer_deps = sorted((ROOT / ".cache" / "layer-deps").glob("*"), key=lambda p: p.stat().st_mtime)
    source = size_mib(ROOT / "layers" / "trainctl")
    if layer_deps:
        print(
            f"layer: {size_mib(layer_deps[-1]) + source:.1f} MiB unpacked "
            f"(trainctl {source:.2f} MiB, dependencies {size_mib(layer_deps[-1]):.1f} MiB)"
        )
    else:
        print(f"layer: trainctl {source:.2f} MiB; run `make synth` to bundle the dependencies")


if __name__ == "__main__":
    main()
