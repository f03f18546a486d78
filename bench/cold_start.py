"""Cold import time of each Lambda handler, and the size of what ships: python -m bench.cold_start

Each import runs in a fresh interpreter (as a cold Lambda would) with the environment the stack gives every
function. The handlers and the floors under them are measured in rounds, each probe once per round, so that a
load from elsewhere on this shared machine falls on all of them alike; the best of the rounds is the figure
(the median is shown too), since this machine's timings wander by 100 ms or more between runs of the same thing.
Imports read bytecode from a cache written by one discarded run; a second measure compiles everything from
source, which is what a package shipped without bytecode costs.
"""

from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.report import Table
from trainctl.core import names

ROOT = Path(__file__).resolve().parents[1]
RUNS = 15
SOURCE_RUNS = 5
IMPORT_TARGET_MS = 300
# Issue 26: every handler's cold import within this multiple of the floor its own libraries set (best of RUNS).
FLOOR_RATIO_TARGET = 1.2
PROBE = (
    "import time; started = time.perf_counter(); import handler; "
    "print(json.dumps(round((time.perf_counter() - started) * 1000, 1)))"
)


def handlers() -> list[Path]:
    return sorted(p for p in (ROOT / "functions").iterdir() if (p / "handler.py").is_file())


LIBRARIES = (
    "import botocore.session, pydantic; from aws_lambda_powertools import Logger, Metrics; "
    "import aws_lambda_powertools.utilities.parser"
)
COMMON_FLOOR = "floor: botocore, pydantic, Powertools Logger, Metrics and parser"
SPOT_FLOOR = "floor: the same and Powertools idempotency (boto3 with it)"
# What handlers import before any trainctl code: the floor under each handler on this machine.
FLOORS = {
    "floor: botocore alone": "import botocore.session",
    COMMON_FLOOR: LIBRARIES,
    SPOT_FLOOR: LIBRARIES + "; import aws_lambda_powertools.utilities.idempotency",
}
# The floor a handler's own libraries set: the spot handler's Powertools idempotency store imports boto3.
OWN_FLOOR = {"spot_interruption": SPOT_FLOOR}
# A path whose first call builds what the handler's import leaves out: cost_alerts' schedule (the stack's) sends
# its request alone, a state change brings an envelope, built (with Powertools' EventBridgeModel) on the first one.
STATE_CHANGE_PATH = "cost_alerts, then a state change's envelope"
LATER_PATHS = {STATE_CHANGE_PATH: ("cost_alerts", "import handler; import trainctl.core.envelopes")}


def _probe(function: Path, statement: str, cache: str, *, bytecode: bool) -> Callable[[], float]:
    """One cold import of `statement` in a fresh interpreter, in ms; the bytecode cache is written first."""
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

    def once() -> float:
        out = subprocess.run(probe, env=env, cwd=function, capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    return once


def cold_imports_ms(
    statements: dict[str, tuple[Path, str]], runs: int = RUNS, *, bytecode: bool = True
) -> dict[str, list[float]]:
    """Samples per name of `statements` (function folder, statement), measured in `runs` rounds."""
    with ExitStack() as stack:
        probes = {
            name: _probe(folder, statement, stack.enter_context(tempfile.TemporaryDirectory()), bytecode=bytecode)
            for name, (folder, statement) in statements.items()
        }
        samples: dict[str, list[float]] = {name: [] for name in probes}
        for _ in range(runs):
            for name, once in probes.items():
                samples[name].append(once())
    return samples


def import_table() -> Table:
    table = Table(
        "Cold import of each handler module (fresh interpreter, the functions' environment, tracing off as deployed "
        "by default)",
        [
            "handler",
            "best ms",
            "median ms",
            "floor",
            "best / floor",
            f"within {FLOOR_RATIO_TARGET}x",
            f"under {IMPORT_TARGET_MS} ms (best)",
            "without bytecode, best ms",
        ],
    )
    anywhere = ROOT / "functions" / "cleanup_sweep"  # the floors import no handler: any folder will do
    statements = {f.name: (f, "import handler") for f in handlers()}
    statements.update({label: (ROOT / "functions" / f, statement) for label, (f, statement) in LATER_PATHS.items()})
    statements.update({label: (anywhere, statement) for label, statement in FLOORS.items()})
    samples = cold_imports_ms(statements)
    source = cold_imports_ms(statements, SOURCE_RUNS, bytecode=False)
    best = {name: min(values) for name, values in samples.items()}
    for function in handlers():
        floor = OWN_FLOOR.get(function.name, COMMON_FLOOR)
        ratio = best[function.name] / best[floor]
        table.rows.append(
            [
                function.name,
                best[function.name],
                statistics.median(samples[function.name]),
                "with idempotency" if floor == SPOT_FLOOR else "common",
                f"{ratio:.2f}",
                "yes" if ratio <= FLOOR_RATIO_TARGET else "no",
                "yes" if best[function.name] < IMPORT_TARGET_MS else "no",
                min(source[function.name]),
            ]
        )
    for label in [*LATER_PATHS, *FLOORS]:
        table.rows.append(
            [label, best[label], statistics.median(samples[label]), "-", "-", "-", "-", min(source[label])]
        )
    spot_on_common = best["spot_interruption"] / best[COMMON_FLOOR]
    state_change = best[STATE_CHANGE_PATH] / best[COMMON_FLOOR]
    table.notes.extend(
        [
            f"- Best of {RUNS} rounds, each probe once per round (without bytecode: {SOURCE_RUNS}). A handler's floor "
            "is what its own libraries cost imported alone, in the same setup: botocore, pydantic and the Powertools "
            "modules every handler uses (Logger, Metrics, parser), the common floor.",
            "- Only the spot handler imports boto3: Powertools' idempotency store imports it, and every spot event "
            "goes through that store, so its floor adds `aws_lambda_powertools.utilities.idempotency` "
            f"({best[SPOT_FLOOR] - best[COMMON_FLOOR]:.0f} ms here). On the common floor it is at "
            f"{spot_on_common:.2f}x. Importing the store later would not make a cold start lighter: every event "
            "the parser accepts is keyed in it before anything is done, so its first call would pay the same. "
            "The others build their clients from botocore alone.",
            "- Each handler loads the settings and event models of its own function only, and builds at import only "
            "the models every call parses. The envelopes wait for the call that brings one: a schedule someone adds "
            "by hand (the stack's schedules send the request alone; cleanup_sweep and cost_alerts), an instance "
            "state change for cost_alerts, whose first one builds the envelope and Powertools' EventBridgeModel "
            f"under it (the row '{STATE_CHANGE_PATH}': {state_change:.2f}x the common floor, the whole of that "
            "path's cold import). The sweep loads the price file's model only for a termination that leaves "
            "volumes behind. Nothing every invocation needs is imported later than the handler module (the models "
            "it parses are built on their first use, as they were before).",
            "- What remains above the floor is mostly trainctl's own classes being made: on this Python (3.11) each "
            "dataclass compiles its generated methods one `exec` at a time, about 0.3 to 1 ms a class (CPython "
            "gh-109870 made it one `exec` a class; the Lambda runtime's Python 3.14 has that). Classes never "
            "compared nor hashed make no `__eq__` or `__hash__` (`eq=False`, about 0.1 ms a class). `slots=True` "
            "costs little here (about 0.03 ms a class: the methods are made once, only the class is remade), so "
            "the resource model keeps its slots: a sweep holds tens of thousands of resources. The small value "
            "classes (a decision's `Seen`, a plan, observations, marks, attachments, block devices, price keys and "
            "tiers, EC2's guards, organization targets...) are NamedTuples, made in about 0.05 ms: cleanup_sweep "
            "makes 10 dataclasses at import, cost_alerts 17 (`tests/unit/test_cold_imports.py` holds both).",
            "- organization_plan loads no sweep (the per-account sweep ledger is in `organization/ledger.py`, which "
            "only organization_sweep imports), and neither organization function builds the other's event models "
            "nor the account functions' schedule requests. An ordinary cost check finds no breach and tells no "
            "one: its notices load with the first notice sent (the sweep, which tells owners on most runs, loads "
            "them at import).",
        ]
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
