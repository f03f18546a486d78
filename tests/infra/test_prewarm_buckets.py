"""A deployment that names pre-warm data buckets synthesises, cdk-nag clean, reading only those buckets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.infra.conftest import synth
from tests.infra.test_stack import as_list, statements

pytestmark = pytest.mark.infra


def test_configured_buckets_are_read_by_the_worker_and_sized_by_the_plan_only(tmp_path: Path) -> None:
    template = synth(tmp_path, {"trainctl": {"dry_run": True, "prewarm_buckets": ["datasets", "models"]}})
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert all(plugin["violations"] == [] for plugin in report["pluginReports"])
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
