"""Real IaC scanners as gates (issue 17 item 12): checkov on the synthesised template, parliament on every IAM
policy document. Both run offline at pinned versions; every finding is fixed, or skipped (checkov: in the
resource's Metadata) or allowed (parliament: below) with a written reason."""

from __future__ import annotations

import fcntl
import fnmatch
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.infra.gates import as_list

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
CHECKOV_VERSION: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["trainctl"]["scanners"]["checkov"]
CHECKOV_VENV = ROOT / ".cache" / f"checkov-{CHECKOV_VERSION}"
ACCOUNT = "123456789012"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov at the pinned version, in a virtual environment of its own (it pins another boto3)."""
    binary = CHECKOV_VENV / "bin" / "checkov"
    CHECKOV_VENV.parent.mkdir(exist_ok=True)
    with (CHECKOV_VENV.parent / f"checkov-{CHECKOV_VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # test workers install once between them
        if not binary.is_file():
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", "--clear", str(CHECKOV_VENV)], check=True)
            pip = [str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            subprocess.run([*pip, "--disable-pip-version-check", f"checkov=={CHECKOV_VERSION}"], check=True)
    return binary


def run_checkov(binary: Path, template: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [str(binary), "-f", str(template), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
        timeout=300,
    )
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    report = json.loads(completed.stdout)
    found: dict[str, Any] = report[0] if isinstance(report, list) else report
    assert found["summary"]["checkov_version"] == CHECKOV_VERSION
    return found


def test_checkov_finds_nothing_unfixed_and_every_skip_says_why(synthesized, checkov: Path) -> None:
    _, outdir = synthesized
    report = run_checkov(checkov, Path(outdir) / "Trainctl.template.json")
    failed = [(f["check_id"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert report["summary"]["passed"] > 200
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment") or ""
        assert len(reason) > 40, (skipped["check_id"], skipped["resource"])


def test_checkov_fails_a_bad_resource_and_honours_a_skip_with_its_reason(tmp_path: Path, checkov: Path) -> None:
    """The gate is live: an unencrypted log group fails (CKV_AWS_158) until its Metadata skips it, with a reason."""
    group: dict[str, Any] = {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}}
    template = tmp_path / "bad.json"
    template.write_text(json.dumps({"Resources": {"Logs": group}}))
    assert "CKV_AWS_158" in {f["check_id"] for f in run_checkov(checkov, template)["results"]["failed_checks"]}
    group["Metadata"] = {"checkov": {"skip": [{"id": "CKV_AWS_158", "comment": "a reason, written down"}]}}
    template.write_text(json.dumps({"Resources": {"Logs": group}}))
    skipped = run_checkov(checkov, template)["results"]["skipped_checks"]
    assert [(s["check_id"], s["check_result"]["suppress_comment"]) for s in skipped] == [
        ("CKV_AWS_158", "a reason, written down")
    ]


# ------------------------------------------------------------------ parliament

# Findings accepted, each with its reason: (issue, action, required resource format) -> reason.
PARLIAMENT_ALLOWED = {
    ("RESOURCE_MISMATCH", "ssm:GetParameter", "arn:*:ssm:*:*:parameter/*"): (
        "AWS's public parameters (the latest Amazon Linux AMI) have no account in their ARN: "
        "arn:aws:ssm:REGION::parameter/aws/service/..., which parliament's format does not foresee."
    ),
}


def _fake_arn(template: dict[str, Any], logical_id: str) -> str:
    kind = template["Resources"].get(logical_id, {}).get("Type", "")
    arns = {
        "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}",
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical_id}",
        "AWS::KMS::Key": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical_id}",
        "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{logical_id}",
        "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT}:{logical_id}",
        "AWS::StepFunctions::StateMachine": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{logical_id}",
        "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{logical_id}",
        "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{logical_id}",
    }
    assert kind in arns, f"no ARN shape for {logical_id} ({kind})"
    return arns[kind]


def resolved(template: dict[str, Any], value: Any) -> Any:
    """A policy document with CloudFormation's functions replaced by ARNs of the shape they resolve to."""
    pseudo = {
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
    }
    if isinstance(value, list):
        return [resolved(template, item) for item in value]
    if not isinstance(value, dict):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolved(template, part)) for part in parts)
    if "Ref" in value:
        return pseudo.get(value["Ref"]) or _fake_arn(template, value["Ref"])
    if "Fn::GetAtt" in value:
        return _fake_arn(template, value["Fn::GetAtt"][0])
    return {key: resolved(template, item) for key, item in value.items()}


def parliament_findings(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(issue, action, detail) of every finding not explained away; see the mismatches below."""
    from parliament import analyze_policy_string

    statements = as_list(document["Statement"])
    left = []
    for finding in analyze_policy_string(json.dumps(document)).findings:
        details = finding.detail if isinstance(finding.detail, list) else [finding.detail]
        for detail in details:
            action = detail.get("action", "") if isinstance(detail, dict) else str(detail)
            shape = detail.get("required_format", "") if isinstance(detail, dict) else ""
            if finding.issue == "RESOURCE_MISMATCH" and _granted_elsewhere(statements, action, shape):
                continue
            if (finding.issue, action, shape) in PARLIAMENT_ALLOWED:
                continue
            left.append((finding.issue, action, shape or json.dumps(detail)))
    return left


def _granted_elsewhere(statements: list[dict[str, Any]], action: str, shape: str) -> bool:
    """A statement split by resource type on purpose (each type under its own conditions): parliament reports each
    part as a mismatch; it is none if another statement of the same policy grants the action on that type."""
    return any(
        s["Effect"] == "Allow"
        and action in as_list(s["Action"])
        and any(fnmatch.fnmatchcase(r, shape) for r in as_list(s["Resource"]))
        for s in statements
    )


def policy_documents(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resolved(template, resource["Properties"]["PolicyDocument"])
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Policy"
    }


def test_parliament_finds_nothing_unexplained_in_any_policy(synthesized) -> None:
    documents = policy_documents(synthesized[0])
    assert len(documents) >= 10
    for logical_id, document in documents.items():
        assert parliament_findings(document) == [], logical_id
    for reason in PARLIAMENT_ALLOWED.values():
        assert len(reason) > 40


def test_parliament_catches_unknown_actions_conditions_that_do_not_apply_and_real_mismatches() -> None:
    """The gate is live: each of these is a finding; a type split across two statements is not."""
    unknown = {"Effect": "Allow", "Action": "ec2:TerminateInstance", "Resource": "*"}
    wrong_key = {
        "Effect": "Allow",
        "Action": "ec2:DescribeInstances",
        "Resource": "*",
        "Condition": {"StringEquals": {"s3:prefix": "x"}},
    }
    mismatch = {"Effect": "Allow", "Action": "sns:Publish", "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q"}
    for bad in (unknown, wrong_key, mismatch):
        assert parliament_findings({"Version": "2012-10-17", "Statement": [bad]}), bad
    split = [
        {"Effect": "Allow", "Action": "ec2:AttachVolume", "Resource": f"arn:aws:ec2:{REGION}:{ACCOUNT}:volume/*"},
        {"Effect": "Allow", "Action": "ec2:AttachVolume", "Resource": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"},
    ]
    assert parliament_findings({"Version": "2012-10-17", "Statement": split}) == []
