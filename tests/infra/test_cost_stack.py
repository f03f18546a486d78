"""The cost capability in the synthesized stack: schedule, state-change rule, alarms, price table, read-only IAM."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from tests.infra.test_stack import as_list, statements
from trainctl.core import names

pytestmark = pytest.mark.infra


def cost_function(template: dict[str, Any]) -> dict[str, Any]:
    return next(
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "cost alerts" in r["Properties"].get("Description", "")
    )


def test_cost_check_runs_every_15_minutes_with_its_input(synthesized) -> None:
    Template.from_json(synthesized[0]).has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": "rate(15 minutes)",
            "Target": Match.object_like({"Input": Match.serialized_json({"task": "cost_alerts"})}),
        },
    )


def test_instance_state_changes_feed_the_running_intervals(synthesized) -> None:
    Template.from_json(synthesized[0]).has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.ec2"],
                "detail-type": ["EC2 Instance State-change Notification"],
                "detail": {"state": ["running", "stopping", "stopped", "shutting-down", "terminated"]},
            }
        },
    )


@pytest.mark.parametrize(("metric", "threshold"), [("BurnRateHourlyUSD", 50), ("ProjectedDailyUSD", 100)])
def test_alarms_watch_the_published_estimate_and_notify_the_topic(synthesized, metric: str, threshold: int) -> None:
    template = Template.from_json(synthesized[0])
    topic_ref = {"Ref": Match.string_like_regexp("SweepTopic")}
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "trainctl",
            "MetricName": metric,
            "Dimensions": [{"Name": "service", "Value": "trainctl"}],
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [topic_ref],
            "OKActions": [topic_ref],
        },
    )


def test_function_gets_its_thresholds_and_the_stacks_tables(synthesized) -> None:
    variables = cost_function(synthesized[0])["Properties"]["Environment"]["Variables"]
    assert variables["TRAINCTL_HOURLY_THRESHOLD_USD"] == "50.0"
    assert variables["TRAINCTL_DAILY_THRESHOLD_USD"] == "100.0"
    assert variables["TRAINCTL_RESOURCE_THRESHOLD_USD"] == "500.0"
    assert variables["TRAINCTL_REGIONS"] == "us-east-1,eu-west-1"
    assert {"TRAINCTL_LEDGER_TABLE", "TRAINCTL_TOPIC_ARN", "TRAINCTL_PRICE_TABLE"} <= set(variables)


def test_price_table_is_named_encrypted_and_expires_prices(synthesized) -> None:
    Template.from_json(synthesized[0]).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "TableName": names.PRICE_TABLE,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "SSESpecification": Match.object_like({"SSEEnabled": True}),
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        },
    )
    assert names.OUTPUT_PRICE_TABLE in synthesized[0]["Outputs"]


def test_cost_function_only_reads_ec2_and_prices(synthesized) -> None:
    granted = statements(synthesized[0], "CostAlerts")
    actions = {action for s in granted if s["Effect"] == "Allow" for action in as_list(s["Action"])}
    assert {"ec2:DescribeInstances", "ec2:DescribeSpotPriceHistory", "pricing:GetProducts"} <= actions
    ec2_actions = {a for a in actions if a.startswith("ec2:")}
    assert all(a.startswith("ec2:Describe") for a in ec2_actions), ec2_actions
    assert not {"dynamodb:Scan", "dynamodb:DeleteTable", "dynamodb:BatchWriteItem"} & actions
    pricing = next(s for s in granted if "pricing:GetProducts" in as_list(s["Action"]))
    assert pricing["Condition"] == {"StringEquals": {"aws:RequestedRegion": ["us-east-1"]}}
