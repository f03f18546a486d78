"""Issue 25: what IAM holds of spot recovery's trust, beside the plan's code: which snapshots it may restore."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.declarations import declared_for
from tests.infra.test_stack import as_list, statements
from trainctl.aws.clients import is_read
from trainctl.core import tags

pytestmark = pytest.mark.infra


def recovery_role(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in statements(template, "SpotRecoveryStateMachineRole") if s["Effect"] == "Allow"]


def test_the_recovery_role_restores_only_the_spot_handlers_checkpoints_or_unclaimed_image_snapshots(
    synthesized,
) -> None:
    """Before: RunInstances on every snapshot of the account, so a forged input restored Carol's data."""
    on_snapshots = [
        s
        for s in recovery_role(synthesized[0])
        if "ec2:RunInstances" in as_list(s["Action"]) and any(":snapshot/" in r for r in as_list(s["Resource"]))
    ]
    assert on_snapshots and all(":snapshot/" in r for s in on_snapshots for r in as_list(s["Resource"]))
    conditions = sorted(json.dumps(s["Condition"], sort_keys=True) for s in on_snapshots)
    checkpoints = {"Null": {f"aws:ResourceTag/{tags.SPOT_INSTANCE}": "false"}}
    unclaimed = {
        "Null": {
            f"aws:ResourceTag/{key}": "true" for key in (tags.SPOT_INSTANCE, tags.MANAGED, tags.OWNER, tags.CREATED_BY)
        }
    }
    assert conditions == sorted(json.dumps(c, sort_keys=True) for c in (checkpoints, unclaimed))


def test_the_recovery_plan_only_reads() -> None:
    declared = declared_for("spot_recovery_plan").actions
    assert {"dynamodb:Query", "ec2:DescribeInstances", "ec2:DescribeSnapshots"} <= declared
    # Reading the ledger decrypts it; everything else is a read.
    assert {a for a in declared if not is_read(a.split(":", 1)[1])} == {"kms:Decrypt"}


def test_the_recovery_workflow_invokes_its_own_plan_function_and_no_other(synthesized) -> None:
    invoking = [s for s in recovery_role(synthesized[0]) if "lambda:InvokeFunction" in as_list(s["Action"])]
    assert invoking and all("SpotRecoveryPlanFunction" in json.dumps(s["Resource"]) for s in invoking)
