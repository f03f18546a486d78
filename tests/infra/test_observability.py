"""The dashboard and the alarms read metrics the code emits, under its namespace and dimensions; AWS's own
metrics only of resources of this stack. The sweep emits the dollars avoided the dashboard shows."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from infra import metrics as code_metrics
from trainctl.aws.observability import NAMESPACE, SERVICE
from trainctl.aws.observability import metrics as powertools_metrics

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
EMITTING = sorted((ROOT / "functions").glob("*/handler.py")) + sorted(
    p for p in (ROOT / "layers" / "trainctl").rglob("*.py") if "cli" not in p.parts
)
# The values each templated metric name takes: the domain's own types (infra.metrics reads the same ones).
TEMPLATE_VALUES = {
    "Action_": code_metrics.SWEEP_ACTIONS,
    "Protection_": code_metrics.PROTECTIONS,
    "Spot_": code_metrics.SPOT_STATUSES,
}
# The AWS metrics the stack may watch, with the dimension naming the stack's resource and that resource's type.
AWS_METRICS = {
    "AWS/Lambda": ({"Errors", "Throttles"}, "FunctionName", "AWS::Lambda::Function"),
    "AWS/States": (
        {"ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut"},
        "StateMachineArn",
        "AWS::StepFunctions::StateMachine",
    ),
    "AWS/SQS": ({"ApproximateNumberOfMessagesVisible"}, "QueueName", "AWS::SQS::Queue"),
}


# ------------------------------------------------------------------------------------------ what the code emits


def _constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            found.update({t.id: node.value.value for t in node.targets if isinstance(t, ast.Name)})
    return found


def _imported_constant(tree: ast.Module, name: str) -> str | None:
    import importlib

    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(alias.name == name for alias in node.names):
            value = getattr(importlib.import_module(node.module or ""), name)
            return value if isinstance(value, str) else None
    return None


def emitted_names() -> tuple[set[str], set[str]]:
    """(exact names, templated prefixes) of every metrics.add_metric call, read from the code."""
    exact: set[str] = set()
    prefixes: set[str] = set()
    for path in EMITTING:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_metric"):
                continue
            assert isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
            assert node.func.value.id == "metrics", f"{path}: metrics through trainctl.aws.observability only"
            name = next(k.value for k in node.keywords if k.arg == "name")
            if isinstance(name, ast.Constant):
                exact.add(name.value)
            elif isinstance(name, ast.Name):
                value = constants.get(name.id) or _imported_constant(tree, name.id)
                assert value is not None, f"{path}: metric name {name.id} not found"
                exact.add(value)
            else:
                assert isinstance(name, ast.JoinedStr) and isinstance(name.values[0], ast.Constant), path
                assert len(name.values) == 2, f"{path}: a metric name template is a prefix and one value"
                prefixes.add(str(name.values[0].value))
    return exact, prefixes


def emits(name: str) -> bool:
    exact, prefixes = emitted_names()
    if name in exact:
        return True
    for prefix in prefixes:
        if name.startswith(prefix):
            assert prefix in TEMPLATE_VALUES, f"{prefix}: no domain type says which values it takes"
            return name.removeprefix(prefix) in TEMPLATE_VALUES[prefix]
    return False


def test_every_emitting_module_uses_the_one_powertools_metrics_object() -> None:
    for path in EMITTING:
        source = path.read_text(encoding="utf-8")
        if ".add_metric(" in source:
            tree = ast.parse(source)
            imports = [
                n for n in tree.body if isinstance(n, ast.ImportFrom) and any(a.name == "metrics" for a in n.names)
            ]
            defines = path.name == "observability.py"
            assert defines or [n.module for n in imports] == ["trainctl.aws.observability"], path


def test_powertools_emits_under_the_namespace_and_dimension_the_stack_reads() -> None:
    powertools_metrics.add_metric(name="Scanned", unit="Count", value=1)
    try:
        blob = powertools_metrics.serialize_metric_set()
    finally:
        powertools_metrics.clear_metrics()
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE == "trainctl"
    assert directive["Dimensions"] == [list(code_metrics.DIMENSIONS)]
    assert {k: blob[k] for k in code_metrics.DIMENSIONS} == code_metrics.DIMENSIONS == {"service": SERVICE}


# ---------------------------------------------------------------------------------------- what the stack reads


def _flatten(node: Any) -> str:
    """A dashboard body's Fn::Join back to text, each reference as a marker the test can resolve."""
    if isinstance(node, str):
        return node
    if "Fn::Join" in node:
        delimiter, parts = node["Fn::Join"]
        return delimiter.join(_flatten(p) for p in parts)
    if "Ref" in node:
        return f"<Ref:{node['Ref']}>"
    if "Fn::GetAtt" in node:
        return f"<GetAtt:{node['Fn::GetAtt'][0]}.{node['Fn::GetAtt'][1]}>"
    raise AssertionError(node)


def _reference(value: Any) -> str:
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    found = re.fullmatch(r"<(?:Ref|GetAtt):([A-Za-z0-9]+)(?:\.\w+)?>", str(value))
    assert found, f"{value!r} is not a reference to a resource of the stack"
    return found[1]


def dashboard(template: dict[str, Any]) -> dict[str, Any]:
    [body] = [
        r["Properties"]["DashboardBody"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Dashboard"
    ]
    parsed: dict[str, Any] = json.loads(_flatten(body))
    return parsed


def dashboard_metrics(template: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(widget title, namespace, name, dimensions) of every metric a graph or number shows."""
    for widget in dashboard(template)["widgets"]:
        for line in widget["properties"].get("metrics", []):
            values = [v for v in line if not isinstance(v, dict)]
            namespace, name, *pairs = values
            yield widget["properties"]["title"], namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))


def alarm_metrics(template: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        stats = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m] or [props]
        for metric in stats:
            dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            yield logical_id, metric["Namespace"], metric["MetricName"], dimensions


def check(template: dict[str, Any], where: str, namespace: str, name: str, dimensions: dict[str, Any]) -> None:
    if namespace == NAMESPACE:
        assert dimensions == code_metrics.DIMENSIONS, f"{where}: {name} under {dimensions}"
        assert emits(name), f"{where}: no code emits {name}"
        return
    assert namespace in AWS_METRICS, f"{where}: {namespace}"
    names, dimension, resource_type = AWS_METRICS[namespace]
    assert name in names and set(dimensions) == {dimension}, f"{where}: {namespace} {name} {dimensions}"
    assert template["Resources"][_reference(dimensions[dimension])]["Type"] == resource_type, where


def test_every_alarm_watches_a_metric_the_code_or_the_stack_emits(synthesized) -> None:
    template = synthesized[0]
    seen = list(alarm_metrics(template))
    assert len({alarm for alarm, *_ in seen}) >= 20
    for where, namespace, name, dimensions in seen:
        check(template, where, namespace, name, dimensions)


def test_every_dashboard_metric_is_one_the_code_or_the_stack_emits(synthesized) -> None:
    template = synthesized[0]
    seen = list(dashboard_metrics(template))
    shown = {name for _, _, name, _ in seen}
    # Burn, dollars avoided, what the sweep did and why it held back, errors, throttles, spot, pre-warm, runs.
    assert {"BurnRateHourlyUSD", "DollarsAvoided", "Action_mark", "Action_delete", "Protection_persistent"} <= shown
    assert {"Errors", "Throttles", "Spot_handled", "Spot_recovery-started", "ExecutionsStarted"} <= shown
    assert {f"Protection_{p}" for p in code_metrics.PROTECTIONS} <= shown
    for where, namespace, name, dimensions in seen:
        check(template, where, namespace, name, dimensions)


def test_a_metric_nobody_emits_is_refused(synthesized) -> None:
    template = synthesized[0]
    with pytest.raises(AssertionError, match="no code emits"):
        check(template, "made up", NAMESPACE, "Action_explode", code_metrics.DIMENSIONS)
    with pytest.raises(AssertionError, match="under"):
        check(template, "made up", NAMESPACE, "Scanned", {"service": "trainctl", "function": "x"})
    with pytest.raises(AssertionError, match="not a reference"):
        check(template, "made up", "AWS/Lambda", "Errors", {"FunctionName": "someone-elses"})


def test_the_dollars_avoided_widget_states_its_assumption(synthesized) -> None:
    widgets = [w["properties"] for w in dashboard(synthesized[0])["widgets"]]
    avoided = [w for w in widgets if any("DollarsAvoided" in line for line in w.get("metrics", []))]
    assert len(avoided) == 2
    hours = code_metrics.hours_until_noticed()
    for widget in avoided:
        text = json.dumps(widget)
        assert "estimate" in text and f"{hours} h" in text


def test_the_dashboard_counts_the_instances_ssm_does_not_manage_on_their_own(synthesized) -> None:
    widgets = [w["properties"] for w in dashboard(synthesized[0])["widgets"]]
    counted = [
        w
        for w in widgets
        if w.get("view") == "singleValue"
        and any("Protection_not-managed-by-ssm" in line for line in w.get("metrics", []))
    ]
    assert len(counted) == 1 and "README" in counted[0]["title"]


def test_the_dashboard_lists_what_the_sweep_keeps_as_unreadable_or_min_age_from_its_own_log(synthesized) -> None:
    evading = code_metrics.handler_constant("cleanup_sweep", "EVADING")  # the handler logs these every sweep
    assert isinstance(evading, tuple)
    widgets = [w for w in dashboard(synthesized[0])["widgets"] if w["type"] == "log"]
    assert len(widgets) == 1
    query = widgets[0]["properties"]["query"]
    assert all(name in query for name in evading) and "decision.owner" in query
    assert query.startswith("SOURCE '") and "CleanupSweep" in query  # the sweep function's own log group


# -------------------------------------------------------------------------------------------------- the alarms


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def test_every_alarm_notifies_the_topic(synthesized) -> None:
    topic = next(k for k, r in synthesized[0]["Resources"].items() if r["Type"] == "AWS::SNS::Topic")
    for logical_id, props in alarms(synthesized[0]).items():
        assert props["AlarmActions"] == [{"Ref": topic}], logical_id


def test_each_function_has_an_errors_and_a_throttles_alarm(synthesized) -> None:
    template = synthesized[0]
    functions = {k for k, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    watched: dict[str, set[str]] = {}
    for _, namespace, name, dimensions in alarm_metrics(template):
        if namespace == "AWS/Lambda":
            watched.setdefault(name, set()).add(_reference(dimensions["FunctionName"]))
    trainctl = {f for f in functions if "LogRetention" not in f and "Custom" not in f}
    assert watched["Errors"] == watched["Throttles"] == trainctl and len(trainctl) == 7


def test_failures_queue_and_workflows_alarm_above_zero(synthesized) -> None:
    found = alarms(synthesized[0])
    queue = next(p for k, p in found.items() if "FailureQueue" in k)
    assert (queue["MetricName"], queue["Threshold"], queue["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        0,
        "GreaterThanThreshold",
    )
    workflows = [p for k, p in found.items() if "WorkflowFailed" in k]
    assert len(workflows) == 2
    for props in workflows:
        assert {m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m} == {
            "ExecutionsFailed",
            "ExecutionsTimedOut",
        }


@pytest.mark.parametrize(
    ("alarm", "metric", "period"), [("SweepHeartbeat", "Scanned", 7200), ("CostCheck", "BurnRateHourlyUSD", 1800)]
)
def test_a_heartbeat_breaches_when_two_scheduled_runs_are_missing(
    synthesized, alarm: str, metric: str, period: int
) -> None:
    props = next(p for k, p in alarms(synthesized[0]).items() if alarm in k)
    assert props["MetricName"] == metric and props["Statistic"] == "SampleCount"
    assert props["Period"] * props["EvaluationPeriods"] == period  # two of rate(1 hour) / rate(15 minutes)
    assert (props["ComparisonOperator"], props["Threshold"]) == ("LessThanThreshold", 1)
    assert props["TreatMissingData"] == "breaching"


def test_the_burn_alarm_watches_the_threshold(synthesized) -> None:
    burn = next(p for k, p in alarms(synthesized[0]).items() if "BurnRate" in k)
    assert (burn["MetricName"], burn["Threshold"]) == ("BurnRateHourlyUSD", 50)


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 hour)", 7200),
        ("rate(15 minutes)", 1800),
        ("rate(1 minute)", 120),
        ("rate(12 hours)", 86400),
        ("rate(2 days)", 86400),  # an alarm looks at one day at most
        ("cron(0 6 * * ? *)", 86400),
    ],
)
def test_heartbeat_window_is_two_periods_and_a_day_at_most(expression: str, seconds: int) -> None:
    from infra.alarms import heartbeat_window

    assert heartbeat_window(expression).to_seconds() == seconds


# ---------------------------------------------------------------------------------------- the dollars avoided


def sweep_handler() -> Any:
    from trainctl.cli.local_run import load_handler

    return load_handler("cleanup_sweep")


def test_the_dashboard_reads_the_handlers_own_assumption() -> None:
    handler = sweep_handler()
    assert code_metrics.dollars_avoided_metric() == handler.DOLLARS_AVOIDED_METRIC == "DollarsAvoided"
    assert code_metrics.hours_until_noticed() == handler.HOURS_UNTIL_NOTICED


def test_dollars_avoided_prices_what_was_stopped_or_deleted_by_hand() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from trainctl.core.resources import Instance, Snapshot, Volume
    from trainctl.sweep.rules import Decision, SweepPlan
    from trainctl.sweep.run import priced

    handler = sweep_handler()
    at = datetime(2026, 11, 20, tzinfo=UTC)
    since = at - timedelta(days=30)
    region, zone = "us-east-1", "us-east-1a"
    # What the sweep saw before it acted: each decision carries its price as decided, whatever happens after.
    resources = {
        r.resource_id: r
        for r in (
            Instance("i-run", region, "running", "g5.xlarge", since, zone),
            Instance("i-stopped", region, "stopped", "g5.xlarge", since, zone),
            Instance("i-kept", region, "running", "g5.xlarge", since, zone),
            Volume("vol-1", region, "available", 500, "gp3", since, zone),
            Snapshot("snap-1", region, "completed", since, None, 100),
        )
    }
    planned = [
        Decision("i-run", "instance", region, "stop"),
        Decision("i-stopped", "instance", region, "terminate"),  # it cost nothing per hour
        Decision("i-kept", "instance", region, "stop"),
        Decision("vol-1", "volume", region, "delete"),
        Decision("snap-1", "snapshot", region, "mark"),  # a mark avoids nothing yet
    ]
    plan = priced(SweepPlan(at, tuple(planned), scanned=5, in_scope=5), resources, at)
    outcomes = {"i-kept": "failed"}
    decisions = [replace(d, outcome=outcomes.get(d.resource_id, "done")) for d in plan.decisions]
    assert [d.hourly_usd is not None for d in decisions] == [True, True, True, True, False]
    avoided = handler.dollars_avoided(decisions, handler.HOURS_UNTIL_NOTICED)
    # Published on-demand prices, us-east-1: g5.xlarge $1.006/h; gp3 $0.08/GB-month over 730 h.
    by_hand = (1.006 + 500 * 0.08 / 730) * 168
    assert avoided == pytest.approx(by_hand, abs=0.01)


def test_an_enforced_sweep_emits_the_dollars_it_avoided(factory, monkeypatch, capsys) -> None:
    from trainctl.cli import stack_resources
    from trainctl.cli.local_run import LocalContext
    from trainctl.core import names, tags
    from trainctl.core.clock import fixed_clock, system_clock

    stack_resources.ensure_on_emulator(factory, ("us-east-1",))
    ec2 = factory.ec2("us-east-1")
    scope = [{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}]
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=500, VolumeType="gp3", TagSpecifications=scope)
    for name, value in {
        "REGIONS": "us-east-1",
        "DRY_RUN": "false",
        "MAX_ACTION_SHARE": "1",
        "LEDGER_TABLE": names.LEDGER_TABLE,
        "TRAINING_CHECK_TIMEOUT": "1s",
    }.items():
        monkeypatch.setenv(f"TRAINCTL_{name}", value)
    handler = sweep_handler()
    monkeypatch.setattr(handler, "client_factory", lambda: factory)
    t0 = system_clock() + timedelta(hours=1)

    def sweep_at(at: Any) -> dict[str, Any]:
        handler.deployed_settings.cache_clear()
        handler.clock = fixed_clock(at)
        capsys.readouterr()
        result: dict[str, Any] = handler.lambda_handler(
            {"task": "cleanup_sweep"}, LocalContext(function_name="trainctl-cleanup")
        )
        blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        [blob] = [b for b in blobs if "DollarsAvoided" in b]
        assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "trainctl" and blob["service"] == "trainctl"
        [result["avoided"]] = blob["DollarsAvoided"]  # EMF: the values of this one flush
        return result

    marked = sweep_at(t0)
    assert [d["action"] for d in marked["decisions"] if d["resource_id"] == volume["VolumeId"]] == ["mark"]
    assert marked["avoided"] == 0
    acted = sweep_at(t0 + timedelta(hours=24, minutes=16))  # past the grace and the delivery lag
    assert [d["outcome"] for d in acted["decisions"] if d["resource_id"] == volume["VolumeId"]] == ["done"]
    assert acted["avoided"] == pytest.approx(500 * 0.08 / 730 * 168, abs=0.01)
