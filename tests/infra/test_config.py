"""Deploy settings from cdk.json: typed, and an invalid one fails synth naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import DeployOptions, load_config
from trainctl.core.errors import SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_cdk_json_is_valid_and_dry_run() -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]["trainctl"]
    config = load_config(context, default_region="us-east-1")
    assert config.sweep.dry_run is True
    assert config.function_environment()["TRAINCTL_DRY_RUN"] == "true"
    assert config.function_environment()["TRAINCTL_REGIONS"] == "us-east-1"


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"grace_period": "soon"}, "trainctl.grace_period"),
        ({"grace": "24h"}, "trainctl.grace"),
        ({"sweep_schedule": "every hour"}, "trainctl.sweep_schedule"),
        ({"regions": ["us-east-1", "mars-1"]}, "trainctl.regions"),
        ({"max_action_share": 3}, "trainctl.max_action_share"),
        ({"ledger_table": "mine"}, "trainctl.ledger_table"),
        ({"notification_email": "not-an-address"}, "trainctl.notification_email"),
        ({"hourly_threshold_usd": 0}, "trainctl.hourly_threshold_usd"),
        ({"owner_thresholds": {"bob": {"hourly": 5}}}, "trainctl.owner_thresholds"),
        ({"cost_schedule": "often"}, "trainctl.cost_schedule"),
        ({"price_table": "mine"}, "trainctl.price_table"),
        ({"prewarm_bucket_keys": ["alias/data"], "prewarm_buckets": ["d1"]}, "trainctl.prewarm_bucket_keys"),
        ({"recovery_instance_roles": ["*"]}, "trainctl.recovery_instance_roles"),
        ({"recovery_instance_roles": ["arn:aws:iam::123456789012:role/*"]}, "trainctl.recovery_instance_roles"),
    ],
)
def test_an_invalid_setting_names_itself(context: dict[str, object], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace(".", r"\.")):
        load_config(context, default_region="us-east-1")


def test_app_exits_with_the_message_on_a_bad_setting(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"trainctl": {"min_age": "a bit"}}),
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1",
    }
    completed = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode != 0
    assert "trainctl.min_age" in completed.stderr


def test_cost_settings_reach_the_cost_function_spelled_out() -> None:
    config = load_config(
        {"hourly_threshold_usd": 80, "owner_thresholds": {"ml-team": {"daily_usd": 900}}, "regions": ["eu-west-1"]},
        default_region="us-east-1",
    )
    environment = config.cost_environment()
    assert environment["TRAINCTL_HOURLY_THRESHOLD_USD"] == "80.0"
    assert environment["TRAINCTL_DAILY_THRESHOLD_USD"] == "100.0"
    assert environment["TRAINCTL_REGIONS"] == "eu-west-1"
    assert json.loads(environment["TRAINCTL_OWNER_THRESHOLDS"]) == {"ml-team": {"daily_usd": 900.0}}
    assert "TRAINCTL_PRICE_TABLE" not in environment  # the stack sets it from the table it creates


def test_tracing_aws_calls_reaches_every_function_only_when_asked() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    from infra.stack import trace_aws_calls
    from trainctl.aws.observability import TRACE_AWS_CALLS

    def functions_env(trace: bool) -> list[dict[str, str]]:
        stack = cdk.Stack(cdk.App())
        for name in ("One", "Two"):
            lambda_.Function(
                stack,
                name,
                runtime=lambda_.Runtime.PYTHON_3_12,
                handler="handler.lambda_handler",
                code=lambda_.Code.from_inline("def lambda_handler(e, c): pass"),
                environment={"KEEP": "me"},
            )
        if trace:
            trace_aws_calls(stack)
        template = cdk.assertions.Template.from_stack(stack).to_json()
        return [
            r["Properties"]["Environment"]["Variables"]
            for r in template["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"
        ]

    assert all(TRACE_AWS_CALLS not in env for env in functions_env(False))
    assert all(env == {"KEEP": "me", TRACE_AWS_CALLS: "true"} for env in functions_env(True))
    assert DeployOptions().trace_aws_calls is False


def test_bucket_keys_and_recovery_roles_are_lists_and_keys_need_buckets() -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    config = load_config(
        {"prewarm_buckets": "data", "prewarm_bucket_keys": [key], "recovery_instance_roles": "trainer, eval"},
        default_region="us-east-1",
    )
    assert config.options.prewarm_bucket_keys == (key,)
    assert config.options.recovery_instance_roles == ("trainer", "eval")
    assert DeployOptions().recovery_instance_roles == ()  # default: pass none
    with pytest.raises(SettingsError, match="prewarm_bucket_keys is set but prewarm_buckets is not"):
        load_config({"prewarm_bucket_keys": [key]}, default_region="us-east-1")
