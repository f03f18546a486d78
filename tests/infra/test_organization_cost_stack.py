"""The organization's cost run in the stack (issue 29, item 4): a state machine of its own at the cost check's
cadence, one child per account, the total after the Map (even when it fails), and the grants that pricing through
a spoke needs: list prices on the hub's side, spot prices and the inventory in the spoke."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import load_config
from infra.organization import COST_MAP_LABEL, COST_RESULTS_PREFIX, COST_STATE_MACHINE_NAME
from infra.organization_spoke import spoke_actions
from tests.infra.conftest import REGION, synth
from tests.infra.test_organization_stack import ORGANIZATION, SINGLE, of_type, role_of_function, spoke
from trainctl.core.errors import SettingsError

pytestmark = pytest.mark.infra

THRESHOLDS = {"org_account_hourly_usd": 40, "org_hourly_usd": 900}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    context = {**SINGLE, **ORGANIZATION, **THRESHOLDS, "pricing_region": "us-east-1"}
    return synth(tmp_path_factory.mktemp("organization-cost"), {"trainctl": context})


def cost_machine(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical_id, machine)] = [
        (k, r)
        for k, r in of_type(template, "AWS::StepFunctions::StateMachine").items()
        if r["Properties"]["StateMachineName"] == COST_STATE_MACHINE_NAME
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else json.dumps(p).replace('"', "'") for p in parts)
    return logical_id, json.loads(text)


def allowed(statements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        a: s
        for s in statements
        if s["Effect"] == "Allow"
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }


def test_the_cost_run_plans_prices_each_account_in_a_child_then_sums_even_when_the_map_fails(
    hub: dict[str, Any],
) -> None:
    _, definition = cost_machine(hub)
    states = definition["States"]
    assert definition["StartAt"] == "PlanCostAccounts"
    fan_out = states[states["PlanCostAccounts"]["Next"]]
    assert fan_out["Type"] == "Map" and fan_out["Label"] == COST_MAP_LABEL
    assert fan_out["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert fan_out["ItemsPath"] == "$.items"
    assert fan_out["MaxConcurrency"] == ORGANIZATION["org_max_concurrency"]
    assert fan_out["ToleratedFailurePercentage"] == ORGANIZATION["org_tolerated_failure_percentage"]
    assert fan_out["ResultWriter"]["Parameters"]["Prefix"] == COST_RESULTS_PREFIX
    # The plan's run, accounts and exclusions reach the total: the Map's own output goes beside them.
    assert fan_out["ResultPath"] == "$.map_run"
    total_name = fan_out["Next"]
    assert [c["Next"] for c in fan_out["Catch"]] == [total_name]
    total = states[total_name]
    assert total["End"] is True
    assert total["Parameters"] == {
        "task": "organization_cost_total",
        "run.$": "$.run",
        "covered.$": "$.covered",
        "excluded.$": "$.excluded",
    }
    # Plan and total are the plan function; the child is the organization's child function.
    [child] = fan_out["ItemProcessor"]["States"].values()
    assert "OrganizationSweepFunction" in child["Resource"] and "OrganizationPlanFunction" in total["Resource"]
    assert states["PlanCostAccounts"]["Resource"] == total["Resource"]


def test_the_cost_run_starts_at_the_cost_checks_cadence_asking_for_cost(hub: dict[str, Any]) -> None:
    machine_id, _ = cost_machine(hub)
    [schedule] = [
        r
        for r in of_type(hub, "AWS::Scheduler::Schedule").values()
        if r["Properties"]["Target"]["Arn"] == {"Ref": machine_id}
    ]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    assert json.loads(schedule["Properties"]["Target"]["Input"]) == {
        "task": "organization_plan",
        "capability": "cost",
    }
    assert "DeadLetterConfig" in schedule["Properties"]["Target"]


def test_the_child_prices_through_the_hub_and_reads_the_account_only_through_the_spoke(hub: dict[str, Any]) -> None:
    child = allowed(role_of_function(hub, "trainctl organization run: sweep"))
    pricing = child["pricing:GetProducts"]
    assert pricing["Condition"] == {"StringEquals": {"aws:RequestedRegion": ["us-east-1"]}}
    price_table = [
        r for k, r in of_type(hub, "AWS::DynamoDB::Table").items() if r["Properties"]["TableName"] == "trainctl-prices"
    ]
    assert price_table
    assert "dynamodb:BatchGetItem" in child and "dynamodb:PutItem" in child
    # Spot prices are read in the spoke (zone names are each account's own), never with the hub's role.
    assert not [a for a in child if a.startswith("ec2:")]
    [policy] = spoke(hub)["Resources"]["SpokeRole"]["Properties"]["Policies"]
    in_spoke = set(allowed(policy["PolicyDocument"]["Statement"]))
    assert "ec2:DescribeSpotPriceHistory" in in_spoke and in_spoke == spoke_actions()
    assert not [a for a in in_spoke if a.startswith("pricing:")]


def test_the_organizations_functions_get_the_cost_checks_settings_and_the_thresholds(hub: dict[str, Any]) -> None:
    for function in of_type(hub, "AWS::Lambda::Function").values():
        if function["Properties"]["Description"].startswith("trainctl organization run"):
            variables = function["Properties"]["Environment"]["Variables"]
            assert variables["TRAINCTL_ORG_ACCOUNT_HOURLY_USD"] == "40.0"
            assert variables["TRAINCTL_ORG_HOURLY_USD"] == "900.0"
            assert variables["TRAINCTL_HOURLY_THRESHOLD_USD"] == "50.0"
            assert "Ref" in variables["TRAINCTL_PRICE_TABLE"]
            # Lambda's limit on a function's environment is 4 KB in all.
            assert len(json.dumps(variables)) < 4096


@pytest.mark.parametrize(
    "settings",
    [{"org_account_hourly_usd": -1}, {"org_daily_usd": 0}, {"org_hourly_usd": "lots"}],
)
def test_bad_organization_thresholds_are_refused_at_synth_in_one_line(settings: dict[str, Any]) -> None:
    with pytest.raises(SettingsError) as refused:
        load_config({**ORGANIZATION, **settings}, default_region=REGION)
    message = str(refused.value)
    assert f"trainctl.{next(iter(settings))}" in message and "\n" not in message
