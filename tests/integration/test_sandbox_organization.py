"""`trainctl sandbox --organization` (issue 29): the organization run's story, told end to end on moto.

The run goes through the synthesised Distributed Map on moto's interpreter; each member's first sweep is a dry-run
report that finds its forgotten instance and writes nothing, and the deny-listed account is never swept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainctl.core import tags

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    completed = subprocess.run(
        [sys.executable, "-m", "trainctl.cli.main", "sandbox", "--organization", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    found: dict[str, Any] = json.loads(completed.stdout)
    assert found["done"]["exit_code"] == 0 and found["done"]["failed"] == []
    return found


def test_two_units_three_members_and_one_deny_listed_account_each_member_with_its_spoke_role(
    report: dict[str, Any],
) -> None:
    accounts = report["organization"]["accounts"]
    assert {name: a["unit"] for name, a in accounts.items()} == {
        "alice": "research",
        "bob": "research",
        "carol": "platform",
        "xavier": "research",
    }
    assert [name for name, a in accounts.items() if a["excluded"]] == ["xavier"]
    for name in ("alice", "bob", "carol"):
        assert report["spokes"][name] == f"arn:aws:iam::{accounts[name]['id']}:role/trainctl-spoke"
    assert report["spokes"]["xavier"].startswith("none")


def test_the_distributed_map_sweeps_each_member_once_as_a_dry_run_that_finds_its_forgotten_instance(
    report: dict[str, Any],
) -> None:
    accounts = report["organization"]["accounts"]
    assert report["run"]["status"] == "SUCCEEDED"
    children = {c["account"]: c for c in report["run"]["children"]}
    assert sorted(children) == sorted(accounts[name]["id"] for name in ("alice", "bob", "carol"))
    for child in children.values():
        assert child["outcome"] == "done" and child["dry_run"] is True and child["error"] is None
        # The deployment enforces; the account is new to the hub, so its first sweep only reports.
        assert child["summary"]["actions"].get("mark") == 1
        assert child["owners"] == {"ana": {"mark": 1}}


def test_nothing_is_written_in_any_account_and_the_deny_listed_one_is_never_swept(report: dict[str, Any]) -> None:
    accounts = report["organization"]["accounts"]
    assert accounts["xavier"]["id"] not in {c["account"] for c in report["run"]["children"]}
    for name, carried in report["afterwards"].items():
        assert tags.CLEANUP_AFTER not in carried, name
        assert carried[tags.MANAGED] == "true", name
    assert all(report["checks"].values()), report["checks"]
