"""`trainctl sandbox --organization` (issue 29): the organization run's story, told end to end on moto.

The run goes through the synthesised Distributed Map on moto's interpreter; each member's first sweep is a dry-run
report that finds its forgotten instance and writes nothing, and the deny-listed account is never swept. The next
run enforces on the platform unit alone. Events forwarded as the organization's bus delivers them, run by the
deployed handlers: the enforced member's spot warning acted on in its account, one claiming the deny-listed account
refused and counted, and a CreateVolume stamped in the member through its spoke role.
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


def test_the_next_run_enforces_on_the_platform_unit_alone(report: dict[str, Any]) -> None:
    accounts = report["organization"]["accounts"]
    assert report["next_run"]["status"] == "SUCCEEDED"
    children = {c["account"]: c for c in report["next_run"]["children"]}
    assert sorted(children) == sorted(accounts[name]["id"] for name in ("alice", "bob", "carol"))
    carol = children[accounts["carol"]["id"]]
    assert carol["outcome"] == "done" and carol["dry_run"] is False and carol["owners"] == {"ana": {"mark": 1}}
    afterwards = report["next_run"]["afterwards"]
    assert tags.CLEANUP_AFTER in afterwards["carol"]
    for name in ("alice", "bob"):
        # The research unit is not enforced: onboarded, its members still only report, and nothing is written.
        assert children[accounts[name]["id"]]["dry_run"] is True
        assert afterwards[name] == report["afterwards"][name]
    assert afterwards["xavier"] == report["afterwards"]["xavier"]


def test_a_spot_warning_forwarded_from_the_enforced_member_is_acted_on_in_it_and_nothing_is_made_in_the_hub(
    report: dict[str, Any],
) -> None:
    carol = report["organization"]["accounts"]["carol"]["id"]
    warning = report["forwarded"]["spot_warning"]
    result = warning["result"]
    assert warning["account"] == carol
    assert result["status"] == "handled" and result["account"] == carol and result["why_dry_run"] is None
    assert result["instance_id"] == warning["instance_id"]
    done = [s["step"] for s in result["steps"] if s["outcome"] == "done"]
    assert done[0] == "checkpoint-command" and {"snapshot", "ledger", "notify"} <= set(done)
    # Read with carol's own credentials: the snapshot is hers; the hub's account holds none.
    made = sorted(s["snapshot_id"] for s in result["snapshots"])
    assert len(made) == 1 and warning["snapshots_in_member"] == made
    assert warning["snapshots_in_hub"] == []
    assert warning["ledger_accounts"] == [carol]
    assert warning["metrics"].get("Spot_handled") == 1 and "ForwardedRefused" not in warning["metrics"]


def test_a_warning_claiming_the_deny_listed_account_is_refused_counted_and_writes_nothing(
    report: dict[str, Any],
) -> None:
    xavier = report["organization"]["accounts"]["xavier"]["id"]
    refused = report["forwarded"]["deny_listed_warning"]
    assert refused["result"] == {
        "status": "refused",
        "reason": f"forwarded event refused: account {xavier} (deny-listed)",
        "account": xavier,
        "refused": "deny-listed",
        "why_dry_run": None,
    }
    assert refused["metrics"] == {"ForwardedRefused": 1}
    assert refused["ledger_unchanged"] is True and refused["snapshots"] == []


def test_age_guard_stamps_the_enforced_members_new_volume_in_it_through_its_spoke_role(report: dict[str, Any]) -> None:
    carol = report["organization"]["accounts"]["carol"]["id"]
    created = report["forwarded"]["create_volume"]
    assert created["result"]["status"] == "stamped" and created["result"]["account"] == carol
    assert created["result"]["refused"] is None and created["result"]["why_dry_run"] is None
    # Read with carol's own credentials: the volume in her account carries who made it, from the forwarded call.
    assert created["tags"][tags.CREATED_BY] == f"arn:aws:iam::{carol}:user/bob"
    assert tags.CREATED_AT in created["tags"]
    assert created["metrics"].get("ForwardedRefused") is None
