"""The organization run's definition shipped for emulators (`trainctl sandbox --organization`) is the one the hub
stack synthesises: a sandbox that ran another definition would prove nothing about the deployed one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.export_workflows import ORGANIZATION_CONTEXT, ORGANIZATION_RUN, organization_definition
from tests.infra.conftest import synth
from trainctl.aws import state_machines as workflows


def test_the_shipped_organization_run_is_the_synthesised_one(tmp_path_factory: pytest.TempPathFactory) -> None:
    template = synth(Path(tmp_path_factory.mktemp("organization-run")), ORGANIZATION_CONTEXT)
    synthesised = organization_definition(template)
    assert workflows.load(ORGANIZATION_RUN) == synthesised, "the stack changed: run `make workflows`"
    states = json.loads(synthesised)["States"]
    # What the sandbox relies on: the plan, then the Distributed Map over its items, each child the sweep function.
    assert states["PlanAccounts"]["Resource"].endswith(":function:trainctl-organization_plan")
    fan_out = states["EveryAccountRegion"]
    assert fan_out["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert fan_out["ItemsPath"] == "$.items"
    [child] = fan_out["ItemProcessor"]["States"].values()
    assert child["Resource"].endswith(":function:trainctl-organization_sweep")
