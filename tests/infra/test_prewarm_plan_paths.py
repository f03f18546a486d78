"""The pre-warm workflow reads its plan only through PrewarmPlan's fields: a path to anything else fails synth."""

from __future__ import annotations

import json
import re

import pytest

from infra.export_workflows import definitions
from infra.prewarm_workflow import plan_path
from trainctl.aws import state_machines as workflows
from trainctl.prewarm.plan import CreateVolumeParameters, PrewarmPlan


def test_a_field_gives_its_path_and_a_nested_field_its_wire_name() -> None:
    assert plan_path() == "$.plan"
    assert plan_path("volume_id") == "$.plan.volume_id"
    assert plan_path("create_volume", "volume_initialization_rate") == "$.plan.create_volume.VolumeInitializationRate"


@pytest.mark.parametrize(
    "fields",
    [("volume",), ("VolumeId",), ("create_volume", "SnapshotId"), ("create_volume", "nope"), ("zone", "name")],
)
def test_a_name_that_is_no_field_is_refused(fields: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="has no field"):
        plan_path(*fields)


@pytest.mark.infra
def test_every_plan_path_in_the_synthesised_workflow_is_a_field_the_plan_task_writes(synthesized) -> None:
    text = definitions(synthesized[0])[workflows.PREWARM]
    used = set(re.findall(r"\$\.plan((?:\.[A-Za-z0-9_]+)*)", text))
    top = set(PrewarmPlan.model_fields)
    nested = {field.alias or name for name, field in CreateVolumeParameters.model_fields.items()}
    assert used >= {"", ".volume_id", ".create_volume", ".create_volume.SnapshotId"}
    for path in used - {""}:
        first, *rest = path.removeprefix(".").split(".")
        assert first in top, path
        assert rest == [] or (first == "create_volume" and len(rest) == 1 and rest[0] in nested), path
    # Every read is of the plan's own result, the Plan task's output.
    assert json.loads(text)["States"]["Plan"]["ResultPath"] == "$.plan"
