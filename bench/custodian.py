"""Cloud Custodian policies equivalent to trainctl's sweep over the bench fleet, and running them.

Cloud Custodian (c7n) is a bench-only tool in its own virtual environment: c7n 0.9.53 pins boto3 1.43.103
exactly, trainctl pins 1.43.11, and each tool runs in its own process anyway.

The policies mirror the rules the fleet exercises, with trainctl's settings for the benchmark:
- scope: `trainctl:managed=true`; protection: `trainctl:persistent` absent;
- instances stopped at least 7 days: terminate; running instances older than the 2-hour idle window whose
  peak CPU stayed under 5 %: stop (c7n's metrics filter; no datapoints is not idle, as in trainctl);
- unattached volumes: delete; snapshots older than 30 days, except those behind an AMI: delete;
- the grace period: a "mark" run tags with mark-for-op (1 day), an "act" run acts on what is marked and due
  (`marked-for-op` with a skew of that day, as trainctl's act run is clocked one grace period later).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-custodian"
CUSTODIAN = VENV / "bin" / "custodian"
VERSION = "0.9.53"
REQUIREMENT = f"c7n=={VERSION}"

_SCOPE: list[Any] = [{"tag:trainctl:managed": "true"}, {"tag:trainctl:persistent": "absent"}]
_RULES: list[tuple[str, str, list[Any], str]] = [
    (
        "stopped-too-long",
        "ec2",
        [{"State.Name": "stopped"}, {"type": "state-age", "days": 7, "op": "ge"}],
        "terminate",
    ),
    (
        "idle",
        "ec2",
        [
            {"State.Name": "running"},
            {"type": "instance-age", "hours": 2, "op": "ge"},
            {
                "type": "metrics",
                "name": "CPUUtilization",
                "statistics": "Maximum",
                "days": 2 / 24,
                "period": 300,
                "value": 5,
                "op": "less-than",
            },
        ],
        "stop",
    ),
    ("unattached", "ebs", [{"State": "available"}], "delete"),
    (
        "snapshot-retention",
        "ebs-snapshot",
        [{"type": "age", "days": 30, "op": "ge"}, {"type": "skip-ami-snapshots", "value": True}],
        "delete",
    ),
]


def policies(phase: str) -> dict[str, Any]:
    """phase: "mark" tags candidates for their action a day later; "act" carries out what is marked and due."""
    out = []
    for name, resource, filters, action in _RULES:
        if phase == "mark":
            out.append(
                {
                    "name": f"trainctl-{name}",
                    "resource": resource,
                    "filters": _SCOPE + filters,
                    "actions": [{"type": "mark-for-op", "op": action, "days": 1}],
                }
            )
        else:
            out.append(
                {
                    "name": f"trainctl-{name}-act",
                    "resource": resource,
                    "filters": [*_SCOPE, *filters, {"type": "marked-for-op", "op": action, "skew": 1}],
                    "actions": [action],
                }
            )
    return {"policies": out}


def write_policies(directory: Path, phase: str) -> Path:
    path = directory / f"custodian-{phase}.json"
    path.write_text(json.dumps(policies(phase), indent=1))
    return path


def command(
    policy_file: Path, output_dir: Path, cache_file: Path, regions: tuple[str, ...], *, dry_run: bool
) -> list[str]:
    # A cache file of its own per run: within a run, policies on one resource type share one describe,
    # as in a deployed Custodian; across runs nothing is stale.
    argv = [str(CUSTODIAN), "run", "-s", str(output_dir), "--cache", str(cache_file)]
    for region in regions:
        argv += ["-r", region]
    if dry_run:
        argv.append("--dryrun")
    return [*argv, str(policy_file)]


def matched(output_dir: Path) -> dict[str, int]:
    """Resources each policy matched, from Custodian's own output (one resources.json per policy and region)."""
    counts: dict[str, int] = {}
    for path in output_dir.rglob("resources.json"):
        policy = path.parent.name
        counts[policy] = counts.get(policy, 0) + len(json.loads(path.read_text()))
    return counts
