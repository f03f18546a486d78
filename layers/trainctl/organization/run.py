"""The organization run from the hub: read the covered accounts, reach each spoke, sweep one account-region.

The fan-out itself is a Step Functions Distributed Map: `plan_organization` lists its items (one per covered
account and region), and `sweep_target` is one child, the existing sweep run with the spoke's assumed
credentials and the hub's ledger and notifier. A spoke whose role is missing, denies, or answers from another
account is that account's error, named and counted; the other children run on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from trainctl.aws import ledger as keys
from trainctl.aws.clients import ClientFactory
from trainctl.aws.lease import DynamoDbLease
from trainctl.aws.notifications import Notifier
from trainctl.core.clock import Clock, format_instant
from trainctl.core.errors import TrainctlError
from trainctl.core.notices import Notice
from trainctl.core.sweep_settings import SweepSettings
from trainctl.organization.ledger import AccountLedger
from trainctl.organization.members import units_of
from trainctl.organization.record import AccountRecords, AccountRun
from trainctl.organization.rules import (
    DENY_LISTED,
    MemberAccount,
    Target,
    is_account_id,
    why_dry_run,
)
from trainctl.organization.settings import OrganizationSettings
from trainctl.organization.spoke import SpokeFactory, reach_spoke
from trainctl.sweep.run import SweepResult, run_sweep

# -- one child -------------------------------------------------------------------------------------------------


class AccountNotifier:
    """The hub's notifier, each notice naming the account it speaks of."""

    def __init__(self, notifier: Notifier, account: str) -> None:
        self._notifier = notifier
        self._account = account

    def publish(self, notice: Notice) -> None:
        self._notifier.publish(
            replace(
                notice,
                title=f"[account {self._account}] {notice.title}",
                thread=f"{self._account}#{notice.thread}",
                facts={**notice.facts, "account": self._account},
            )
        )


def account_lease_key(account: str, region: str) -> keys.Item:
    """Each account-region has its own lease: two children of the same one never act side by side."""
    return keys.lease(f"cleanup_sweep#{account}#{region}")


@dataclass(frozen=True, slots=True)
class TargetResult:
    """One child's outcome: JSON for the Distributed Map's results, aggregated per account and owner."""

    account: str
    region: str
    dry_run: bool
    error: str | None = None
    result: SweepResult | None = None
    why_dry_run: str | None = None

    def to_json(self) -> dict[str, object]:
        owners: dict[str, dict[str, int]] = {}
        for decision in self.result.decisions if self.result else ():
            if decision.action != "keep":
                counts = owners.setdefault(decision.owner or "unknown", {})
                counts[decision.action] = counts.get(decision.action, 0) + 1
        return {
            "account": self.account,
            "region": self.region,
            "dry_run": self.dry_run,
            "why_dry_run": self.why_dry_run,
            "outcome": "failed" if self.error else "done",
            "error": self.error,
            "sweep_id": self.result.sweep_id if self.result else None,
            "at": format_instant(self.result.at) if self.result else None,
            "summary": self.result.summary() if self.result else {},
            "owners": owners,
            "notes": list(self.result.notes) if self.result else [],
        }


def target_dry_run(
    target: Target,
    org: OrganizationSettings,
    sweep: SweepSettings,
    records: AccountRecords | None,
    organizations: Any,
) -> str | None:
    """Why this child is a dry-run, decided again from the hub's records: an item may only ask for less."""
    if target.dry_run:
        return target.why_dry_run or "planned"
    # Without the hub's records (a preview from a laptop) no account counts as onboarded.
    onboarded = records.onboarded([target.account]) if records is not None else frozenset()
    units = () if target.account in org.org_enforce_accounts else units_of(organizations, target.account)
    account = MemberAccount(target.account, units=units)
    return why_dry_run(account, org, onboarded=onboarded, deployment_dry_run=sweep.dry_run)


def sweep_target(
    hub: ClientFactory,
    target: Target,
    org: OrganizationSettings,
    sweep: SweepSettings,
    clock: Clock,
    *,
    records: AccountRecords | None,
    notifier: Notifier | None,
    remaining_ms: Callable[[], int] | None = None,
    spoke: SpokeFactory = reach_spoke,
) -> TargetResult:
    """One account-region swept with the spoke's credentials, recorded in the hub's ledger under the account.

    Without `records` nothing is recorded of the run, and every account is swept as a dry-run.
    """
    if not is_account_id(target.account):
        raise TrainctlError("an organization item's account must be a 12-digit account id")
    regions = org.regions_or(sweep.regions)
    if target.region not in regions:
        raise TrainctlError(f"region {target.region} is not one the organization covers ({', '.join(regions)})")
    if target.account in org.org_exclude_accounts:
        # The deny-list beats any item: nothing is assumed, read or written in that account.
        return TargetResult(target.account, target.region, True, f"account {target.account}: {DENY_LISTED}")
    why = None
    try:
        why = target_dry_run(target, org, sweep, records, hub.client("organizations"))
        dry_run = why is not None
        spoke_factory = spoke(hub, target.account, target.region, org.org_spoke_role)
        effective = sweep.model_copy(update={"regions": (target.region,), "dry_run": dry_run})
        dynamodb = hub.dynamodb()
        result = run_sweep(
            spoke_factory,
            effective,
            clock,
            ledger=AccountLedger(dynamodb, sweep.ledger_table, target.account),
            notifier=AccountNotifier(notifier, target.account) if notifier and not dry_run else None,
            lease=None
            if dry_run
            else DynamoDbLease(dynamodb, sweep.ledger_table, key=account_lease_key(target.account, target.region)),
            remaining_ms=remaining_ms,
        )
    except TrainctlError as exc:
        error = str(exc) if str(exc).startswith(f"account {target.account}") else f"account {target.account}: {exc}"
        outcome = TargetResult(target.account, target.region, why is not None, error, why_dry_run=why)
        _record(records, outcome, clock)
        return outcome
    outcome = TargetResult(target.account, target.region, dry_run, None, result, why)
    _record(records, outcome, clock)
    return outcome


def _record(records: AccountRecords | None, outcome: TargetResult, clock: Clock) -> None:
    if records is None:
        return
    at = outcome.result.at if outcome.result else clock()
    sweep_id = outcome.result.sweep_id if outcome.result else uuid.uuid4().hex[:12]
    run = AccountRun(
        outcome.account,
        outcome.region,
        at,
        sweep_id,
        outcome.dry_run,
        "failed" if outcome.error else "done",
        outcome.error,
    )
    records.record_run(run, outcome.result.summary() if outcome.result else {})


# -- the organization's summary --------------------------------------------------------------------------------


def aggregate(children: Sequence[Mapping[str, Any]]) -> dict[str, object]:
    """One summary per account and per owner over the children's JSON, with every failure by account."""
    accounts: dict[str, dict[str, Any]] = {}
    owners: dict[str, dict[str, int]] = {}
    failures: list[dict[str, object]] = []
    for child in children:
        account = str(child.get("account"))
        entry = accounts.setdefault(account, {"regions": 0, "failed": 0, "dry_run": True, "actions": {}})
        entry["regions"] += 1
        entry["dry_run"] = entry["dry_run"] and bool(child.get("dry_run", True))
        if child.get("outcome") == "failed":
            entry["failed"] += 1
            failures.append({"account": account, "region": child.get("region"), "error": child.get("error")})
        summary = child.get("summary") or {}
        for action, count in dict(summary.get("actions") or {}).items():
            if action != "keep":
                entry["actions"][action] = entry["actions"].get(action, 0) + int(count)
        for owner, counts in dict(child.get("owners") or {}).items():
            mine = owners.setdefault(str(owner), {})
            for action, count in dict(counts).items():
                mine[action] = mine.get(action, 0) + int(count)
    return {
        "accounts": dict(sorted(accounts.items())),
        "owners": dict(sorted(owners.items())),
        "children": len(children),
        "failed": len(failures),
        "failures": failures,
    }
