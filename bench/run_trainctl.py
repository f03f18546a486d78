"""One trainctl sweep in a process of its own: the deployed cleanup_sweep handler, as a cold Lambda runs it.

    python -m bench.run_trainctl --mode dry-run|mark|act --region R [--region R] --output result.json

Settings come from TRAINCTL_* variables, as in the stack; AWS from AWS_ENDPOINT_URL. The act run is clocked
one grace period (plus a minute) after now, so the marks of the mark run are due, as c7n's act run sees them
through its skew. Every candidate may be acted on (no blast-radius cap), as Custodian acts on all it matches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("dry-run", "mark", "act"), required=True)
    parser.add_argument("--region", action="append", required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    sys.path[:0] = [str(ROOT / "layers"), str(ROOT)]
    from trainctl.core import names

    os.environ.update(
        {
            "TRAINCTL_REGIONS": ",".join(args.region),
            "TRAINCTL_DRY_RUN": "true" if args.mode == "dry-run" else "false",
            "TRAINCTL_MAX_ACTIONS": "1000000",
            "TRAINCTL_MAX_ACTION_SHARE": "1",
            # Custodian stops idle instances whatever their instance store holds: the same here, to compare.
            "TRAINCTL_STOP_INSTANCE_STORE": "true",
            **names.FUNCTION_ENVIRONMENT,
            # Outside Lambda there is no X-Ray daemon to send to.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    from trainctl.cli.local_run import LocalContext, load_handler
    from trainctl.core.clock import system_clock

    handler = load_handler("cleanup_sweep")
    imported = time.perf_counter()
    phases = _time_phases()
    if args.mode == "act":
        deployed = handler.deployed_settings()
        # Due: past the grace and the delivery lag after it, by a minute.
        due = deployed.grace_period + deployed.event_delivery_lag + timedelta(minutes=1)
        handler.clock = lambda: system_clock() + due
    result = handler.lambda_handler({"task": "cleanup_sweep"}, LocalContext(function_name="trainctl-cleanup_sweep"))
    finished = time.perf_counter()
    decisions = result["decisions"]
    args.output.write_text(
        json.dumps(
            {
                "import_seconds": imported - started,
                "sweep_seconds": finished - imported,
                "scanned": result["summary"]["scanned"],
                "actions": Counter(d["action"] for d in decisions if d["action"] != "keep"),
                "outcomes": Counter(d["outcome"] for d in decisions if d["action"] != "keep"),
                "failed": [d["resource_id"] + ": " + d["detail"] for d in decisions if d["outcome"] == "failed"][:20],
                "notes": result.get("notes", []),
                "phases": {name: round(seconds, 2) for name, seconds in phases.items()},
            }
        )
    )


def _time_phases() -> dict[str, float]:
    """Seconds spent in each phase of the sweep, summed over calls: where an act run's time goes."""
    import functools

    from trainctl.sweep import act, run

    spent: dict[str, float] = {}

    def timed(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - began

        setattr(owner, name, wrapper)

    for owner, name, label in (
        (run, "read_inventories", "inventory"),
        (run, "observe", "observe"),
        (run, "vouch_for_marks", "ledger histories"),
        (run, "guards_of", "EC2 guards"),
        (run, "_record_intent", "intent rows"),
        (act.SweepExecutor, "execute", "actions"),
        (run, "_tell_owners", "notices"),
    ):
        timed(owner, name, label)
    return spent


if __name__ == "__main__":
    main()
