"""README.md says what the code says: the settings reference is the schema's, the contents are the headings, the
running cost counts what the stack holds, and the deployer's execution policy covers every resource type."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra import readme
from infra import running_cost as cost
from infra.config import DeployOptions
from trainctl.core.settings import ENV_PREFIX, AgeGuardSettings, CostSettings, SpotSettings, SweepSettings

pytestmark = pytest.mark.infra

TEXT = readme.README.read_text(encoding="utf-8")


def test_the_generated_parts_of_the_readme_are_what_the_code_says() -> None:
    assert readme.updated(TEXT) == TEXT, "README.md has drifted from the code: run python -m infra.readme"


def test_every_setting_of_the_schema_is_in_the_reference_once() -> None:
    names = {
        name for model in (SweepSettings, AgeGuardSettings, CostSettings, SpotSettings) for name in model.model_fields
    }
    for name in names:
        assert TEXT.count(f"| `{ENV_PREFIX}{name.upper()}` |") == 1, name
    for name in DeployOptions.model_fields:
        assert TEXT.count(f"| `{name}` |") == 1, name


def test_a_new_setting_without_a_meaning_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(readme.MEANINGS, "min_age")
    with pytest.raises(LookupError, match="TRAINCTL_MIN_AGE"):
        readme.settings_reference()


def test_a_changed_default_shows_as_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    field = SweepSettings.model_fields["grace_period"]
    monkeypatch.setattr(field, "default", field.default * 2)
    assert readme.updated(TEXT) != TEXT


def test_the_contents_list_every_section_in_order() -> None:
    headings = [line[3:] for line in TEXT.splitlines() if line.startswith("## ")]
    listed = re.findall(r"\[([^\]]+)\]\(#([^)]+)\)", readme.contents(TEXT))
    assert [title for title, _ in listed] == headings
    assert ("Dashboard and alarms", "dashboard-and-alarms") in listed
    assert readme.slug("Age guard: who made it, and when") == "age-guard-who-made-it-and-when"


def test_the_running_cost_counts_what_the_stack_holds(synthesized) -> None:
    template: dict[str, Any] = synthesized[0]
    resources = template["Resources"].values()
    alarms = [r["Properties"] for r in resources if r["Type"] == "AWS::CloudWatch::Alarm"]
    alarm_metrics = sum(len([m for m in a.get("Metrics", []) if "MetricStat" in m]) or 1 for a in alarms)
    assert (len(alarms), alarm_metrics) == (22, cost.ALARM_METRICS)
    from tests.infra.test_observability import dashboard_metrics

    assert len(list(dashboard_metrics(template))) == cost.DASHBOARD_METRICS
    memory = {
        r["Properties"]["Description"].split(":")[0]: r["Properties"]["MemorySize"]
        for r in resources
        if r["Type"] == "AWS::Lambda::Function"
    }
    assert memory["trainctl cleanup sweep"] == cost.SWEEP_GB * 1024
    assert memory["trainctl cost alerts"] == cost.FUNCTION_GB * 1024
    schedules = sorted(
        r["Properties"]["ScheduleExpression"] for r in resources if r["Type"] == "AWS::Scheduler::Schedule"
    )
    options = DeployOptions()
    assert schedules == sorted([options.sweep_schedule, options.cost_schedule])


def test_the_running_cost_arithmetic() -> None:
    assert cost.runs_per_month("rate(1 hour)") == 730
    assert cost.runs_per_month("rate(15 minutes)") == 2920
    lines = {line.item: line for line in cost.lines()}
    assert lines["Lambda duration"].quantity == 730 * 30 * 1 + 2920 * 5 * 0.5 + 1500 * 0.3 * 0.5 + 3000 * 0.5 * 0.5 + (
        20 * 40 * 1 + 20 * 1 * 0.5
    )
    assert lines["CloudWatch dashboard"].usd == 3.00 and lines["CloudWatch alarms"].usd == pytest.approx(2.40)
    assert lines["Lambda requests"].price == "$0.20 / 1M"
    total, after_free = cost.totals()
    assert total == pytest.approx(sum(line.usd for line in lines.values()))
    assert 0 < after_free < total
    faster = cost.totals(DeployOptions(sweep_schedule="rate(30 minutes)"))[0]
    assert faster > total


def _policy(sid: str) -> dict[str, Any]:
    blocks = re.findall(r"```json\n(.*?)\n```", TEXT, flags=re.DOTALL)
    found = [json.loads(b) for b in blocks if f'"Sid": "{sid}"' in b]
    assert len(found) == 1, sid
    policy: dict[str, Any] = found[0]
    return policy


SERVICE = {"StepFunctions": "states"}


def test_the_deployers_execution_policy_covers_every_resource_type(synthesized) -> None:
    actions = {
        action.split(":")[0]
        for statement in _policy("TrainctlStackResources")["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    types = {r["Type"] for r in synthesized[0]["Resources"].values()}
    for resource_type in types:
        service = resource_type.split("::")[1]
        assert SERVICE.get(service, service.lower()) in actions, resource_type


def test_the_deployer_only_assumes_the_bootstrap_roles() -> None:
    [statement] = _policy("UseTheCdkBootstrapRoles")["Statement"]
    assert statement["Action"] == "sts:AssumeRole" and statement["Resource"].endswith(
        ":role/cdk-hnb659fds-*-ACCOUNT-REGION"
    )


def test_the_readme_says_what_destroy_keeps(synthesized) -> None:
    kept = {
        r["Type"]
        for r in synthesized[0]["Resources"].values()
        if r.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate")
    }
    assert kept == {"AWS::DynamoDB::Table", "AWS::KMS::Key"}
    teardown = TEXT[TEXT.index("## Teardown") : TEXT.index("\n## ", TEXT.index("## Teardown") + 3)]
    assert "trainctl-ledger" in teardown and "KMS key" in teardown


def test_the_recommended_scp_keeps_every_key_trainctl_trusts_to_trainctl() -> None:
    """Issue 25: the SCP covered cleanup-after, managed and role only; owner, ttl and the stamps were anyone's."""
    from trainctl.core import tags

    [statement] = _policy("OnlyTrainctlWritesItsOwnTags")["Statement"]
    keys = set(statement["Condition"]["ForAnyValue:StringEqualsIgnoreCase"]["aws:TagKeys"])
    trusted = {
        tags.CLEANUP_AFTER,
        tags.MANAGED,
        tags.ROLE,
        tags.OWNER,
        tags.TTL,
        tags.CREATED_AT,
        tags.CREATED_BY,
        tags.SPOT_INSTANCE,
    }
    assert trusted <= keys, sorted(trusted - keys)
    for key in trusted:  # each with its reason, in the table above the policy
        assert f"| `{key}` |" in TEXT
