"""Synth works with an account and without one, and every way of running it reads cdk.json the same way.

`make synth` runs `python app.py`, which reads cdk.json itself; the CDK CLI reads cdk.json and hands the context
over in CDK_CONTEXT_JSON. Both refuse a bad setting with the same single line, naming the key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.node_banner import SILENCE_END_OF_LIFE, silence_node_end_of_life
from infra.permissions import flatten_reference

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = json.loads((ROOT / "cdk.json").read_text())


def run_app(
    cwd: Path, *, account: str | None, context_json: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """app.py as `make synth` runs it (or as the CLI does, given context_json), with no banner switch set."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("CDK_DEFAULT_ACCOUNT", "CDK_CONTEXT_JSON", SILENCE_END_OF_LIFE)
    }
    env.update({"CDK_OUTDIR": str(cwd / "cdk.out"), "CDK_DEFAULT_REGION": "us-east-1"})
    if account:
        env["CDK_DEFAULT_ACCOUNT"] = account
    if context_json is not None:
        env["CDK_CONTEXT_JSON"] = json.dumps(context_json)
    return subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def cdk_json(directory: Path, **settings: object) -> Path:
    """The shipped cdk.json with some trainctl settings changed, in `directory`."""
    config = json.loads(json.dumps(SHIPPED))
    config["context"]["trainctl"].update(settings)
    (directory / "cdk.json").write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize("account", [None, "123456789012"], ids=["no-account", "account"])
def test_make_synth_works_with_and_without_an_account(tmp_path: Path, account: str | None) -> None:
    completed = run_app(cdk_json(tmp_path), account=account)
    assert completed.returncode == 0, completed.stderr
    assert "end-of-life" not in completed.stderr  # jsii's Node banner
    template = json.loads((tmp_path / "cdk.out" / "Trainctl.template.json").read_text())
    text = json.dumps(template)
    if account is None:
        assert '{"Ref": "AWS::AccountId"}' in text and "123456789012" not in text
    else:
        assert "123456789012" in text
    # cdk-nag ran and passed: the IAM5 findings on account-bearing ARNs were acknowledged by their flat names.
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    assert all(plugin["conclusion"] == "success" for plugin in report["pluginReports"])
    suppressed = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin.get("suppressedViolations", [])}
    assert suppressed


def test_make_synth_reads_cdk_json(tmp_path: Path) -> None:
    """The shipped settings reach the functions: a changed one shows in the template."""
    completed = run_app(cdk_json(tmp_path, grace_period="36h", sweep_schedule="rate(2 hours)"), account=None)
    assert completed.returncode == 0, completed.stderr
    text = (tmp_path / "cdk.out" / "Trainctl.template.json").read_text()
    assert '"TRAINCTL_GRACE_PERIOD": "36h"' in text and '"ScheduleExpression": "rate(2 hours)"' in text


@pytest.mark.parametrize(
    ("settings", "line"),
    [
        (
            {"min_age": "banana"},
            "trainctl: cdk.json context trainctl.min_age: 'banana' is not a duration; use a whole number and one "
            "unit of s, m, h, d or w (e.g. 5m, 24h)",
        ),
        (
            {"minage": "1h"},
            "trainctl: cdk.json context trainctl.minage: not a trainctl setting; did you mean min_age? "
            "(README.md, Settings, lists them all)",
        ),
    ],
    ids=["bad-value", "unknown-key"],
)
def test_a_bad_setting_is_one_line_naming_it_on_every_path(tmp_path: Path, settings: dict[str, str], line: str) -> None:
    by_make = run_app(cdk_json(tmp_path, **settings), account=None)
    context = {**SHIPPED["context"], "trainctl": {**SHIPPED["context"]["trainctl"], **settings}}
    # As the CDK CLI runs it: the context comes in CDK_CONTEXT_JSON (a good cdk.json in the folder is not read).
    good = tmp_path / "cli"
    good.mkdir()
    by_cli = run_app(cdk_json(good), account="123456789012", context_json=context)
    for completed in (by_make, by_cli):
        assert completed.returncode == 1
        assert completed.stderr.strip() == line  # one line: no traceback, no banner


def test_the_cli_context_wins_over_a_cdk_json_in_the_folder(tmp_path: Path) -> None:
    from app import cdk_json_context

    cdk_json(tmp_path, min_age="1h")
    assert cdk_json_context({}, tmp_path)["trainctl"]["min_age"] == "1h"  # type: ignore[index]
    assert cdk_json_context({"CDK_CONTEXT_JSON": "{}"}, tmp_path) is None
    assert cdk_json_context({"CONTEXT_OVERFLOW_LOCATION_ENV": "/tmp/x"}, tmp_path) is None
    assert cdk_json_context({}, tmp_path / "nowhere") is None


def test_a_token_in_an_acknowledgement_is_spelled_as_cdk_nag_spells_the_finding() -> None:
    joined = {"Fn::Join": ["", ["arn:aws:ec2:us-east-1:", {"Ref": "AWS::AccountId"}, ":instance/*"]]}
    assert flatten_reference(joined) == "arn:aws:ec2:us-east-1:<AWS::AccountId>:instance/*"
    assert flatten_reference({"Fn::GetAtt": ["Fn1", "Arn"]}) == "<Fn1.Arn>"
    assert flatten_reference({"Fn::Sub": "arn:${AWS::Partition}:s3:::b/*"}) == "arn:<AWS::Partition>:s3:::b/*"


def test_the_node_banner_switch_lists_the_running_node_and_keeps_what_was_there() -> None:
    environ = {SILENCE_END_OF_LIFE: "1"}
    silence_node_end_of_life(environ, major="20")
    assert environ[SILENCE_END_OF_LIFE] == "1,20"
    silence_node_end_of_life(environ, major="20")
    assert environ[SILENCE_END_OF_LIFE] == "1,20"
    empty: dict[str, str] = {}
    silence_node_end_of_life(empty, major="22")
    assert empty == {SILENCE_END_OF_LIFE: "22"}
