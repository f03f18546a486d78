"""The Organization as the hub reads it: the accounts of the covered units, and the run's items.

Apart from the child run (`run.py`) so that the plan step loads no sweep: it reads Organizations and the hub's
records only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import ClientFactory, error_code
from trainctl.core.errors import TrainctlError
from trainctl.core.permissions import needs
from trainctl.core.sweep_settings import SweepSettings
from trainctl.organization.record import AccountRecords
from trainctl.organization.rules import Coverage, MemberAccount, plan_coverage
from trainctl.organization.settings import OrganizationSettings

PERMISSIONS = needs(
    "organizations:DescribeOrganization",
    "organizations:ListChildren",
    "organizations:ListAccountsForParent",
    "organizations:DescribeAccount",
    "organizations:ListParents",
)


# -- Organizations reads ---------------------------------------------------------------------------------------


def management_account(organizations: Any) -> str | None:
    try:
        answer = organizations.describe_organization()
    except ClientError as exc:
        raise TrainctlError(f"the organization could not be described ({error_code(exc)})") from exc
    found = answer.get("Organization", {}).get("MasterAccountId")
    return str(found) if found else None


def _account_state(raw: Mapping[str, Any]) -> str:
    # Organizations now reports State (ACTIVE, SUSPENDED, ...) beside the older Status.
    return str(raw.get("State") or raw.get("Status") or "")


def accounts_under(organizations: Any, unit: str, path: tuple[str, ...] = ()) -> Iterator[MemberAccount]:
    """Every account in the unit and every unit below it, each with the units it sits under (nearest first)."""
    units = (unit, *path)
    try:
        for page in organizations.get_paginator("list_accounts_for_parent").paginate(ParentId=unit):
            for raw in page.get("Accounts", []):
                yield MemberAccount(str(raw["Id"]), _account_state(raw), units)
        children = organizations.get_paginator("list_children")
        for page in children.paginate(ParentId=unit, ChildType="ORGANIZATIONAL_UNIT"):
            for child in page.get("Children", []):
                yield from accounts_under(organizations, str(child["Id"]), units)
    except ClientError as exc:
        raise TrainctlError(f"organizational unit {unit} could not be read ({error_code(exc)})") from exc


def listed_account(organizations: Any, account: str) -> MemberAccount | None:
    """An account listed by id (such as the management account); None when the organization does not know it."""
    try:
        raw = organizations.describe_account(AccountId=account)["Account"]
    except ClientError as exc:
        if error_code(exc) == "AccountNotFoundException":
            return None
        raise TrainctlError(f"account {account} could not be described ({error_code(exc)})") from exc
    return MemberAccount(account, _account_state(raw), ())


def units_of(organizations: Any, account: str) -> tuple[str, ...]:
    """The units an account sits under, nearest first, up to the root (which is not a unit)."""
    units: list[str] = []
    child = account
    try:
        while True:
            parents = organizations.list_parents(ChildId=child).get("Parents", [])
            if not parents or parents[0].get("Type") != "ORGANIZATIONAL_UNIT":
                return tuple(units)
            child = str(parents[0]["Id"])
            units.append(child)
    except ClientError as exc:
        raise TrainctlError(f"account {account}'s units could not be read ({error_code(exc)})") from exc


def read_members(organizations: Any, settings: OrganizationSettings) -> list[MemberAccount]:
    found = [a for unit in settings.org_units for a in accounts_under(organizations, unit)]
    for account in settings.org_include_accounts:
        listed = listed_account(organizations, account)
        if listed is not None:
            found.append(listed)
    return found


def plan_organization(
    hub: ClientFactory, org: OrganizationSettings, sweep: SweepSettings, records: AccountRecords | None
) -> Coverage:
    """The organization run's items: every covered account in every region, each with its dry-run decided."""
    organizations = hub.client("organizations")
    members = read_members(organizations, org)
    covered = sorted({m.account_id for m in members})
    return plan_coverage(
        members,
        org,
        org.regions_or(sweep.regions),
        management_account=management_account(organizations),
        # Without the hub's records (a preview) no account counts as onboarded: every target is a dry-run.
        onboarded=records.onboarded(covered) if covered and records is not None else frozenset(),
        deployment_dry_run=sweep.dry_run,
    )
