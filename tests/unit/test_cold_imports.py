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
ENVELOPES = {"Envelope", "InstanceStateChange", "StateChangeDetail"}
# Only a schedule a person adds by hand sends an envelope: the stack's schedules send the target's request alone.
SCHEDULE = {"ScheduledEvent"}
CLOUDTRAIL = {"CloudTrailApiCall", "CloudTrailDetail"}
SPOT = {"SpotInterruptionWarning", "SpotWarningDetail", "RebalanceRecommendation", "RebalanceDetail"}

# The models a function may build as its handler is imported: its settings and the events every call of it parses.
OWN = {
    # The stack's schedule sends the request alone: an envelope is only ever a schedule added by hand.
    "cleanup_sweep": {"SweepSettings"},
    "age_guard": {"AgeGuardSettings", *ENVELOPES, *CLOUDTRAIL},
    # The cost schedule sends its request alone too: a state change's envelope is built on the first one.
    "cost_alerts": {"CostSettings", "OwnerThresholds"},
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
    foreign = (SETTINGS | ENVELOPES | SCHEDULE | CLOUDTRAIL | SPOT) - OWN[function]
    assert models & foreign == set()
    assert models >= OWN[function] & SETTINGS  # the probe does see what the handler imports


def test_the_sweep_loads_no_price_model_until_a_termination_leaves_volumes_behind() -> None:
    modules = set(cold_import("cleanup_sweep")["modules"])
    assert {"trainctl.cost.left_behind", "trainctl.cost.rules", "trainctl.cost.prices.model"} & modules == set()
    assert "trainctl.sweep.rules" in modules


def test_a_schedule_added_by_hand_still_parses_and_a_state_change_builds_its_envelope_on_first_use() -> None:
    """What the handlers no longer build at import is built by the parser of the event that needs it."""
    from trainctl.core.events import CostRequest, parse_cost_event, parse_sweep_trigger
    from trainctl.core.schedule_events import ScheduledEvent

    rule = {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-06T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }
    assert parse_sweep_trigger(rule).task == "cleanup_sweep"
    assert parse_cost_event(rule) == CostRequest(task="cost_alerts")
    assert ScheduledEvent.model_validate({**rule, "source": "aws.scheduler", "detail": "{}"}).detail == {}
    change = parse_cost_event(
        {
            **rule,
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "detail": {"instance-id": "i-0123456789abcdef0", "state": "stopped"},
        }
    )
    assert not isinstance(change, CostRequest)
    assert (change.detail.instance_id, change.detail.state) == ("i-0123456789abcdef0", "stopped")


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


def test_the_organization_plan_loads_no_sweep() -> None:
    # It reads the accounts and who is onboarded: the sweep, its ledger and the resource model are the children's.
    modules = set(cold_import("organization_plan")["modules"])
    assert {m for m in modules if m.startswith("trainctl.sweep")} == set()
    assert {"trainctl.core.resources", "trainctl.core.protections"} & modules == set()
    assert "trainctl.organization.members" in modules


DATACLASSES_PROBE = """
import dataclasses, json, sys
import handler

made = {
    f"{name}.{value.__qualname__}"
    for name, module in list(sys.modules.items())
    if name.startswith("trainctl")
    for value in vars(module).values()
    if isinstance(value, type) and value.__module__ == name and dataclasses.is_dataclass(value)
}
print(json.dumps(sorted(made)))
"""

# On Python 3.11 each dataclass costs the cold start 0.3 to 1 ms to make (its methods compiled one exec at a time):
# the sweep's and the cost check's value containers are NamedTuples, made several times faster (bench/RESULTS.md).
DATACLASS_BUDGET = {"cleanup_sweep": 10, "cost_alerts": 17}


@pytest.mark.parametrize("function", sorted(DATACLASS_BUDGET))
def test_a_handlers_cold_start_makes_few_dataclasses(function: str) -> None:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions" / function), str(ROOT / "layers")]),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    out = subprocess.run(
        [sys.executable, "-c", DATACLASSES_PROBE],
        env=environment,
        cwd=ROOT / "functions" / function,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    made = json.loads(out.strip().splitlines()[-1])
    assert "trainctl.core.resources.Instance" in made  # the probe sees what the handler imports
    assert len(made) <= DATACLASS_BUDGET[function], made


@pytest.mark.parametrize("function", ["organization_plan", "organization_sweep"])
def test_the_organization_handlers_build_no_schedule_request_of_the_accounts_own_functions(function: str) -> None:
    # They refuse with the same InvalidEvent as every handler, from trainctl.core.errors, without its models.
    loaded = cold_import(function)
    assert {"SweepRequest", "CostRequest"} & set(loaded["models"]) == set()
    assert "trainctl.core.events" not in loaded["modules"]
    assert "OrganizationSettings" in loaded["models"]


def test_an_organization_child_builds_none_of_the_plan_steps_models() -> None:
    models = set(cold_import("organization_sweep")["models"])
    assert {"OrganizationPlanRequest", "OrganizationCostTotal"} & models == set()
    assert {"OrganizationItem", "OrganizationCostItem"} <= models
    assert {"OrganizationPlanRequest", "OrganizationCostTotal"} <= set(cold_import("organization_plan")["models"])


def test_the_cost_check_loads_notices_only_with_a_breach() -> None:
    # An ordinary check finds no breach and tells no one; the sweep, which tells owners of most runs, loads them.
    assert "trainctl.core.notices" not in cold_import("cost_alerts")["modules"]
    assert "trainctl.core.notices" in cold_import("cleanup_sweep")["modules"]
