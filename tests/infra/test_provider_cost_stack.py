"""The providers' burn in the stack (issue 28, Cost): each deployed provider's function gets a second schedule, on
the cost check's cadence, that has it price and record its provider; cost_alerts is told which providers record
(and nothing of their settings or keys), may read and write only the ledger it already uses, and an AWS-only
stack has neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import synth
from tests.infra.test_iam_gates import role_statements
from tests.infra.test_providers_stack import LYCEUM, RUNPOD, of_type, provider_functions, schedule_inputs

pytestmark = pytest.mark.infra

COST_TASK = "provider_cost"


@pytest.fixture(scope="module")
def with_both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    context = {"dry_run": True, "cost_schedule": "rate(10 minutes)", "provider_burn_max_age": "40m", **RUNPOD}
    return synth(tmp_path_factory.mktemp("both"), {"trainctl": {**context, **LYCEUM}})


def cost_function(template: dict[str, Any]) -> dict[str, Any]:
    [function] = [
        r
        for r in of_type(template, "AWS::Lambda::Function").values()
        if r["Properties"].get("Description", "").startswith("trainctl cost alerts")
    ]
    return function


def variables(function: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return found


def test_each_provider_records_its_burn_on_the_cost_schedule_and_cost_alerts_knows_whose(
    with_both: dict[str, Any],
) -> None:
    costs = sorted((s["provider"], s["expression"]) for s in schedule_inputs(with_both) if s["task"] == COST_TASK)
    assert costs == [("lyceum", "rate(10 minutes)"), ("runpod", "rate(10 minutes)")]
    environment = variables(cost_function(with_both))
    assert environment["TRAINCTL_RECORDED_PROVIDERS"] == "runpod,lyceum"
    assert environment["TRAINCTL_PROVIDER_BURN_MAX_AGE"] == "40m"
    # Neither a provider's settings nor its secret's name: cost_alerts never calls a provider.
    assert not [name for name in environment if "RUNPOD" in name or "LYCEUM" in name]
    # Each cost schedule invokes that provider's own function.
    targets = {
        s["Properties"]["Target"]["Arn"]["Fn::GetAtt"][0]
        for s in of_type(with_both, "AWS::Scheduler::Schedule").values()
        if '"provider_cost"' in s["Properties"]["Target"]["Input"]
    }
    assert targets == set(provider_functions(with_both))


def test_cost_alerts_reads_no_secret_and_calls_no_provider(with_both: dict[str, Any]) -> None:
    role = cost_function(with_both)["Properties"]["Role"]["Fn::GetAtt"][0]
    actions = {
        action
        for statement in role_statements(with_both)[role]
        if statement["Effect"] == "Allow"
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }
    assert "dynamodb:Query" in actions and not [a for a in actions if a.startswith("secretsmanager:")]


def test_an_aws_only_stack_has_no_provider_cost_schedule_nor_recorded_providers(
    synthesized: tuple[dict[str, Any], Path],
) -> None:
    template = synthesized[0]
    assert [s for s in schedule_inputs(template) if s["task"] == COST_TASK] == []
    assert "TRAINCTL_RECORDED_PROVIDERS" not in variables(cost_function(template))
