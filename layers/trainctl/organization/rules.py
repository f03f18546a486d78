"""Which account-regions an organization run sweeps, and which of them it may enforce on: pure decisions.

Opt-in is explicit: an account is swept only if it sits in a covered unit (or below one), or is listed by id,
and it is active and not on the hub's deny-list. The management account is never swept unless listed by id
(StackSets never deploy a spoke there). The first sweep of a newly onboarded account is always a dry-run,
however the organization is set: newly onboarded means the ledger holds no completed dry-run of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from trainctl.organization.settings import ACCOUNT_ID, OrganizationSettings

ACTIVE = "ACTIVE"

# Why an account of the organization is not swept, each reported by name.
DENY_LISTED = "deny-listed"
MANAGEMENT = "management-account"
NOT_ACTIVE = "not-active"

# Why a covered account is swept as a dry-run.
FIRST_SWEEP = "first-sweep"
DEPLOYMENT_DRY_RUN = "deployment-dry-run"
NOT_ENFORCED = "not-enforced"


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class MemberAccount(NamedTuple):
    """An account as Organizations lists it, with the units it sits under (nearest first, up to a covered one)."""

    account_id: str
    status: str = ACTIVE
    units: tuple[str, ...] = ()


class Target(NamedTuple):
    """One child of the organization run: one account in one region."""

    account: str
    region: str
    dry_run: bool
    why_dry_run: str | None = None

    def to_item(self) -> dict[str, object]:
        """What the Distributed Map hands one child."""
        item: dict[str, object] = {"account": self.account, "region": self.region, "dry_run": self.dry_run}
        if self.why_dry_run is not None:
            item["why_dry_run"] = self.why_dry_run  # the child reports the plan's reason, not just "planned"
        return item


@dataclass(frozen=True, slots=True)
class Coverage:
    """What an organization run covers: the targets, and every account it leaves out with the reason."""

    targets: tuple[Target, ...]
    covered: tuple[str, ...]
    excluded: dict[str, str] = field(default_factory=dict)

    def items(self) -> list[dict[str, object]]:
        return [t.to_item() for t in self.targets]

    def cost_items(self, run: str) -> list[dict[str, object]]:
        """The cost run's items: one per covered account, whose child prices all its regions (fewer children,
        fewer Step Functions state transitions, at the cost check's quarter-hourly cadence)."""
        return [{"capability": "cost", "account": account, "run": run} for account in self.covered]


def is_account_id(value: object) -> bool:
    return isinstance(value, str) and ACCOUNT_ID.fullmatch(value) is not None


def why_excluded(account: MemberAccount, settings: OrganizationSettings, management_account: str | None) -> str | None:
    """Why a listed account is not swept (None: it is). The deny-list is asked first and beats everything."""
    if account.account_id in settings.org_exclude_accounts:
        return DENY_LISTED
    if account.account_id == management_account and account.account_id not in settings.org_include_accounts:
        return MANAGEMENT
    if account.status != ACTIVE:
        return NOT_ACTIVE
    return None


def why_dry_run(
    account: MemberAccount, settings: OrganizationSettings, *, onboarded: frozenset[str], deployment_dry_run: bool
) -> str | None:
    """Why this account is swept as a dry-run (None: it is enforced)."""
    if account.account_id not in onboarded:
        return FIRST_SWEEP
    if deployment_dry_run:
        return DEPLOYMENT_DRY_RUN
    if account.account_id in settings.org_enforce_accounts or set(account.units) & set(settings.org_enforce_units):
        return None
    return NOT_ENFORCED


def plan_coverage(
    accounts: Iterable[MemberAccount],
    settings: OrganizationSettings,
    regions: Sequence[str],
    *,
    management_account: str | None,
    onboarded: frozenset[str],
    deployment_dry_run: bool,
) -> Coverage:
    """Every account of the covered units (as read, recursively) and those listed by id, in every region.

    `accounts` are what Organizations listed under the covered units plus the accounts listed by id; an account
    listed twice (under two covered units, or also by id) is swept once.
    """
    seen: dict[str, MemberAccount] = {}
    for account in accounts:
        known = seen.get(account.account_id)
        units = (*known.units, *account.units) if known else account.units
        seen[account.account_id] = MemberAccount(account.account_id, account.status, tuple(dict.fromkeys(units)))
    # A listed account whose unit is not covered is not opted in (a misconfigured read must not widen scope).
    opted_in = {
        a: m for a, m in seen.items() if set(m.units) & set(settings.org_units) or a in settings.org_include_accounts
    }
    excluded: dict[str, str] = {}
    covered: list[str] = []
    targets: list[Target] = []
    for account_id in sorted(opted_in):
        account = opted_in[account_id]
        why = why_excluded(account, settings, management_account)
        if why is not None:
            excluded[account_id] = why
            continue
        covered.append(account_id)
        reason = why_dry_run(account, settings, onboarded=onboarded, deployment_dry_run=deployment_dry_run)
        targets.extend(Target(account_id, region, reason is not None, reason) for region in regions)
    # The deny-list is reported even for an account no unit lists: the hub says what it would never sweep.
    for account_id in settings.org_exclude_accounts:
        excluded.setdefault(account_id, DENY_LISTED)
    return Coverage(tuple(targets), tuple(covered), excluded)
