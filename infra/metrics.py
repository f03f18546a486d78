"""The metrics trainctl's code emits, as CloudWatch metrics for the alarms and the dashboard.

Every handler emits through Powertools' one Metrics object (trainctl.aws.observability): namespace `trainctl`,
one dimension `service=trainctl`. The names are the handlers' (functions/*/handler.py); the templated ones
(`Action_<action>`, `Protection_<name>`, `Spot_<status>`) take their values from the domain's own types, so a
new protection or action shows on the dashboard without an edit here. tests/infra/test_observability.py holds
every metric the alarms and the dashboard use to one the code emits.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import get_args

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

from trainctl.aws.observability import BURN_RATE_METRIC, NAMESPACE, PROJECTION_METRIC, SERVICE
from trainctl.core.protections import Protection
from trainctl.spot.run import Status as SpotStatus
from trainctl.sweep.rules import Action

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"
DIMENSIONS = {"service": SERVICE}

# What one sweep reports (functions/cleanup_sweep/handler.py emit_metrics).
SCANNED = "Scanned"
CANDIDATES = "Candidates"
FAILED_ACTIONS = "Errors"
SWEEP_ACTIONS: tuple[str, ...] = get_args(Action)
PROTECTIONS: tuple[str, ...] = tuple(p.value for p in Protection)
# What one cost check reports (functions/cost_alerts/handler.py emit_metrics).
BURN_RATE = BURN_RATE_METRIC
PROJECTION = PROJECTION_METRIC
# What one spot event came to (functions/spot_interruption/handler.py).
SPOT_STATUSES: tuple[str, ...] = get_args(SpotStatus)


def action_metric(action: str) -> str:
    return f"Action_{action}"


def protection_metric(protection: str) -> str:
    return f"Protection_{protection}"


def spot_metric(status: str) -> str:
    return f"Spot_{status}"


@cache
def handler_constant(function: str, name: str) -> object:
    """A literal a handler module assigns at its top level, read without running the handler (as
    infra.declarations reads PERMISSIONS): the handler is the one place it is written."""
    tree = ast.parse((FUNCTIONS / function / "handler.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"functions/{function}/handler.py assigns no {name}")


def dollars_avoided_metric() -> str:
    return str(handler_constant("cleanup_sweep", "DOLLARS_AVOIDED_METRIC"))


def hours_until_noticed() -> int:
    hours = handler_constant("cleanup_sweep", "HOURS_UNTIL_NOTICED")
    assert isinstance(hours, int)
    return hours


def emitted(
    name: str,
    *,
    statistic: str = "Sum",
    period: cdk.Duration | None = None,
    label: str | None = None,
    color: str | None = None,
) -> cloudwatch.Metric:
    """One metric trainctl's code emits, under its namespace and dimension."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map=DIMENSIONS,
        statistic=statistic,
        period=period or cdk.Duration.hours(1),
        label=label,
        color=color,
    )
