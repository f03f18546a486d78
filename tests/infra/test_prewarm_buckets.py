"""A deployment with settings that widen IAM on purpose synthesises, cdk-nag clean, granting exactly what they name:
pre-warm data buckets (one of them SSE-KMS, issue 17 item 9) and the roles spot recovery may pass (item 6)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import synth
from tests.infra.gates import pass_role_unnamed
from tests.infra.test_declared_policies import (
    FUNCTIONS,
    WITHHELD_WITHOUT_AN_ORGANIZATION,
    assert_state_machines_grant_what_they_call,
    functions_by_folder,
    granted,
)
from tests.infra.test_stack import as_list, statements

pytestmark = pytest.mark.infra

KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CONTEXT = {
    "trainctl": {
        "dry_run": True,
        "prewarm_buckets": ["datasets", "models"],
        "prewarm_bucket_keys": [KEY],
        "recovery_instance_roles": ["trainer", "arn:aws:iam::123456789012:role/ml/evaluator"],
    }
}


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    outdir = tmp_path_factory.mktemp("cdk.configured")
    return synth(outdir, CONTEXT), outdir


def test_it_synthesises_cdk_nag_clean(configured) -> None:
    report = json.loads((configured[1] / "validation-report.json").read_text())
    assert all(plugin["violations"] == [] for plugin in report["pluginReports"])


def test_configured_buckets_are_read_by_the_worker_and_sized_by_the_plan_only(configured) -> None:
    template = configured[0]
    worker = [s for s in statements(template, "PrewarmWorkerRole") if s.get("Sid") == "ReadDataBuckets"]
    assert [sorted(as_list(s["Action"])) for s in worker] == [["s3:GetObject", "s3:ListBucket"]]
    assert sorted(as_list(worker[0]["Resource"])) == [
        "arn:aws:s3:::datasets",
        "arn:aws:s3:::datasets/*",
        "arn:aws:s3:::models",
        "arn:aws:s3:::models/*",
    ]
    planner = [s for s in statements(template, "PrewarmPlanFunction") if s.get("Sid") == "SizeTheData"]
    assert [as_list(s["Resource"]) for s in planner] == [["arn:aws:s3:::datasets", "arn:aws:s3:::models"]]


def test_the_worker_decrypts_sse_kms_objects_with_the_configured_key_through_s3_only(configured) -> None:
    worker = [s for s in statements(configured[0], "PrewarmWorkerRole") if s["Effect"] == "Allow"]
    decrypt = [s for s in worker if "kms:Decrypt" in as_list(s["Action"])]
    assert decrypt == [
        {
            "Sid": "DecryptDataBucketObjects",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": KEY,
            "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
        }
    ]


def test_recovery_passes_only_the_configured_roles_to_ec2(configured) -> None:
    template = configured[0]
    passing = [
        s
        for s in statements(template, "SpotRecovery")
        if s["Effect"] == "Allow" and "iam:PassRole" in as_list(s["Action"])
    ]
    assert [sorted(as_list(s["Resource"])) for s in passing] == [
        ["arn:aws:iam::123456789012:role/ml/evaluator", "arn:aws:iam::123456789012:role/trainer"]
    ]
    assert pass_role_unnamed(passing) == []
    assert_state_machines_grant_what_they_call(template, passes_template_roles=True)


def test_with_buckets_the_functions_are_granted_all_they_declare(configured) -> None:
    """Buckets configured, nothing is withheld for want of one; without an organization, the spoke access still is."""
    from infra.declarations import declared_for
    from infra.policy import FUNCTION_PLATFORM

    template, outdir = configured
    for folder, role in functions_by_folder(template, outdir).items():
        declared = declared_for(folder).actions - WITHHELD_WITHOUT_AN_ORGANIZATION.get(folder, set())
        assert granted(template, role) == declared | set(FUNCTION_PLATFORM), folder
    assert FUNCTIONS.is_dir()
