"""A handler's cold start loads what its own events and settings need, not every function's (issue 26).

Each probe imports one handler in a fresh interpreter, as a cold Lambda does, and reports which trainctl modules
and pydantic models that import created. Times live in bench/ (python -m bench.cold_start); this is what they
rest on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import handler
from pydantic import BaseModel

def subclasses(model):
    for child in model.__subclasses__():
        yield child
        yield from subclasses(child)

print(json.dumps({
    "modules": sorted(m for m in sys.modules if m.startswith("trainctl")),
    "models": sorted({m.__name__ for m in subclasses(BaseModel) if m.__module__.startswith("trainctl.")}),
}))
"""

SETTINGS = {"SweepSettings", "AgeGuardSettings", "CostSettings", "OwnerThresholds", "SpotSettings"}
ENVELOPES = {"Envelope", "ScheduledEvent", "InstanceStateChange", "StateChangeDetail"}
CLOUDTRAIL = {"CloudTrailApiCall", "CloudTrailDetail"}
SPOT = {"SpotInterruptionWarning", "SpotWarningDetail", "RebalanceRecommendation", "RebalanceDetail"}

# The models each function reads: its settings and the events its rules and schedules send it.
OWN = {
    # The stack's schedule sends the request alone: an envelope is only ever a schedule added by hand.
    "cleanup_sweep": {"SweepSettings"},
    "age_guard": {"AgeGuardSettings", *ENVELOPES, *CLOUDTRAIL},
    "cost_alerts": {"CostSettings", "OwnerThresholds", *ENVELOPES},
    "spot_interruption": {"SpotSettings", *ENVELOPES, *SPOT},
    "spot_recovery_plan": {"SpotSettings"},
}


def cold_import(function: str) -> dict[str, list[str]]:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers")]),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environment,
        cwd=ROOT / "functions" / function,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    loaded: dict[str, list[str]] = json.loads(out.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("function", sorted(OWN))
def test_a_handler_builds_no_other_functions_settings_or_event_models(function: str) -> None:
    models = set(cold_import(function)["models"])
    foreign = (SETTINGS | ENVELOPES | CLOUDTRAIL | SPOT) - OWN[function]
    assert models & foreign == set()
    assert models >= OWN[function] & SETTINGS  # the probe does see what the handler imports


def test_the_sweep_loads_no_price_model_until_a_termination_leaves_volumes_behind() -> None:
    modules = set(cold_import("cleanup_sweep")["modules"])
    assert {"trainctl.cost.left_behind", "trainctl.cost.rules", "trainctl.cost.prices.model"} & modules == set()
    assert "trainctl.sweep.rules" in modules


def test_age_guard_loads_no_resource_model() -> None:
    # It stamps from CloudTrail's words alone: the resource model and the protections are the sweep's.
    modules = set(cold_import("age_guard")["modules"])
    assert {"trainctl.core.resources", "trainctl.core.protections"} & modules == set()
    assert "trainctl.age_guard.rules" in modules


def test_every_settings_model_is_still_listed_together() -> None:
    """The command line and the README read every model from trainctl.core.settings."""
    from pydantic import BaseModel

    from trainctl.core import settings

    listed = {
        name
        for name, value in vars(settings).items()
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel
    }
    assert listed == SETTINGS
