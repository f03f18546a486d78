"""The organization's metrics carry the account (issue 29, item 3): as EMF metadata on the per-account emissions of
the organization run's child and of the spot and age_guard functions handling a member's forwarded event, never as
a dimension (CloudWatch bills each metric, and a dimension per account makes one per account); only an account
with an account id's shape is named."""

from __future__ import annotations

import json
import types
from datetime import timedelta
from typing import Any

import pytest

from tests.integration.test_organization import (
    REGION,
    Organization,
    handlers,
    organization,
    spoke_roles_as_iam_would,
)
from tests.integration.test_organization_forwarded import (
    Accounts,
    accounts,
    age_guard,
    assumed,
    created_volume,
    in_account,
    invoke,
    spot,
    spot_trainer,
    warning,
)
from trainctl.aws.clients import ClientFactory
from trainctl.cli.local_run import LocalContext
from trainctl.core.clock import fixed_clock, system_clock

# The organization run's and the forwarded events' fixtures, shared with their own tests.
__all__ = ["accounts", "age_guard", "assumed", "handlers", "organization", "spoke_roles_as_iam_would", "spot"]


def emitted(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """Every EMF object the invocation printed (Powertools writes one JSON object a line to stdout)."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]


def dimensions(blob: dict[str, Any]) -> set[str]:
    return {d for directive in blob["_aws"]["CloudWatchMetrics"] for group in directive["Dimensions"] for d in group}


def metric_names(blob: dict[str, Any]) -> set[str]:
    return {m["Name"] for directive in blob["_aws"]["CloudWatchMetrics"] for m in directive["Metrics"]}


def test_each_organization_child_names_its_account_in_metadata_not_in_a_dimension(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, child = handlers
    child.clock = fixed_clock(system_clock() + timedelta(hours=1))
    # alice is swept; carol has no spoke role: that account's error, counted under its name.
    for account, outcome in ((organization.alice, "done"), (organization.carol, "failed")):
        capsys.readouterr()
        result = child.lambda_handler({"account": account, "region": REGION}, LocalContext("trainctl-org-sweep"))
        assert result["outcome"] == outcome
        [blob] = emitted(capsys)
        assert "OrganizationTargetErrors" in metric_names(blob)
        assert blob["OrganizationTargetErrors"] == [1 if outcome == "failed" else 0]
        assert blob["account"] == account
        assert "account" not in dimensions(blob)


def test_a_members_forwarded_spot_warning_names_the_account_on_its_metrics(
    accounts: Accounts, spot: types.ModuleType, assumed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    alice = accounts.alice
    result = invoke(spot, warning(alice, accounts.instances[alice]), "trainctl-spot_interruption")
    assert result["status"] == "handled"
    [blob] = emitted(capsys)
    assert {"Spot_handled", "CheckpointIssuedMs"} <= metric_names(blob)
    assert blob["account"] == alice and "account" not in dimensions(blob)
    # A refused one too: it is counted, and the count says whose.
    invoke(spot, warning(accounts.dave, accounts.instances[accounts.dave]), "trainctl-spot_interruption")
    [refused] = emitted(capsys)
    assert refused["ForwardedRefused"] == [1] and refused["account"] == accounts.dave


def test_an_account_of_the_wrong_shape_and_the_hubs_own_events_name_no_account(
    factory: ClientFactory, accounts: Accounts, spot: types.ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    event = warning(accounts.alice, accounts.instances[accounts.alice])
    event["account"] = "$(id)\nforged"
    invoke(spot, event, "trainctl-spot_interruption")
    [refused] = emitted(capsys)
    assert refused["ForwardedRefused"] == [1]
    assert "account" not in refused and "$(id)" not in json.dumps(refused)
    # The hub's own warning is a single account's, as before: no account in its metrics.
    invoke(spot, warning(accounts.hub, spot_trainer(factory)), "trainctl-spot_interruption")
    [own] = emitted(capsys)
    assert own["Spot_handled"] == [1] and "account" not in own


def test_a_members_forwarded_call_names_the_account_on_age_guards_metrics(
    accounts: Accounts, age_guard: types.ModuleType, assumed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    alice = in_account(accounts.alice)
    volume = alice.ec2(REGION).create_volume(AvailabilityZone=f"{REGION}a", Size=500)["VolumeId"]
    capsys.readouterr()
    result = invoke(age_guard, created_volume(accounts.alice, volume), "trainctl-age_guard")
    assert result["status"] == "stamped"
    [blob] = emitted(capsys)
    assert blob["Stamp_stamped"] == [1] and blob["ResourcesStamped"] == [1]
    assert blob["account"] == accounts.alice and "account" not in dimensions(blob)
