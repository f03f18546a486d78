"""The organization's cost total: the children's results summed per account and per owner, checked against each
account's thresholds, each owner's and the organization's, and told as the single account's cost alerts are.

Pure but for the two small stores here (the children's results under their run, and what was last said of each
breach): the plan function runs it as the cost run's last step without loading any pricing or sweep code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws import ledger as keys
from trainctl.aws.clients import access_error
from trainctl.aws.notifications import Notifier
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.cost_settings import CostSettings
from trainctl.core.errors import AwsAccessError
from trainctl.core.permissions import needs
from trainctl.core.text import one_line
from trainctl.cost.rules import AlertState, Breach, breach_notice, cleared_notice, plan_alerts
from trainctl.cost.store import AlertStore
from trainctl.organization.settings import OrganizationSettings

PERMISSIONS = needs("dynamodb:PutItem", "dynamodb:Query", "dynamodb:DeleteItem")

# The children's results of one cost run, and what was last said of each organization breach: apart from the
# single account's cost alerts (`cost-alert`), so that neither check clears the other's.
RESULTS_PARTITION = "org-cost"
ALERTS_PARTITION = "cost-alert#organization"
# Whose burn a notice lists: the top few, as the single account's notices list their top offenders.
LISTED = 5
NO_RESULT = "its cost child left no result (failed or timed out)"


# -- the children's results, kept under the run ---------------------------------------------------------------


class CostRunResults:
    """Each child's result under its run in the hub's ledger, so the last step sums them without a payload limit."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def keep(self, run: str, child: Mapping[str, Any], at: datetime) -> None:
        item = {
            **keys.key(f"{RESULTS_PARTITION}#{run}", str(child["account"])),
            "result": {"S": json.dumps(child, sort_keys=True, default=str)},
            **keys.expires(at),
        }
        try:
            self._dynamodb.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise _error("PutItem", exc) from exc

    def of_run(self, run: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        try:
            pages = self._dynamodb.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression=f"{keys.PARTITION_KEY} = :pk",
                ExpressionAttributeValues={":pk": {"S": f"{RESULTS_PARTITION}#{run}"}},
            )
            for page in pages:
                found.extend(json.loads(item["result"]["S"]) for item in page.get("Items", []))
        except (ClientError, BotoCoreError) as exc:
            raise _error("Query", exc) from exc
        return found


class OrganizationAlerts:
    """What was last said of each organization breach (AlertStore), in a partition of its own."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def load(self) -> dict[str, AlertState]:
        states: dict[str, AlertState] = {}
        try:
            pages = self._dynamodb.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression=f"{keys.PARTITION_KEY} = :pk",
                ExpressionAttributeValues={":pk": {"S": ALERTS_PARTITION}},
            )
            for page in pages:
                for item in page.get("Items", []):
                    raw = json.loads(item["state"]["S"])
                    key = str(item[keys.SORT_KEY]["S"])
                    notified = parse_instant(str(raw["notified_at"]))
                    states[key] = AlertState(key, float(raw["value"]), notified, str(raw.get("headline", "")))
        except (ClientError, BotoCoreError) as exc:
            raise _error("Query", exc) from exc
        return states

    def save(self, state: AlertState) -> None:
        raw = {"value": state.value, "notified_at": format_instant(state.notified_at), "headline": state.headline}
        try:
            self._dynamodb.put_item(
                TableName=self._table, Item={**keys.key(ALERTS_PARTITION, state.key), "state": {"S": json.dumps(raw)}}
            )
        except (ClientError, BotoCoreError) as exc:
            raise _error("PutItem", exc) from exc

    def clear(self, key: str) -> None:
        try:
            self._dynamodb.delete_item(TableName=self._table, Key=keys.key(ALERTS_PARTITION, key))
        except (ClientError, BotoCoreError) as exc:
            raise _error("DeleteItem", exc) from exc


def _error(operation: str, exc: ClientError | BotoCoreError) -> AwsAccessError:
    if isinstance(exc, ClientError):
        return access_error(operation, exc)
    return AwsAccessError(operation, type(exc).__name__, str(exc))


# -- the organization's total: pure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrganizationCost:
    """Burn per account and per owner, the total over the accounts reached, and the thresholds crossed."""

    accounts: dict[str, dict[str, Any]]
    owners: dict[str, dict[str, Any]]
    hourly_usd: float
    unpriced: int
    # Covered accounts left out of the total, each with why: an unreachable spoke, a child with no result.
    unreachable: dict[str, str]
    excluded: dict[str, str]
    breaches: tuple[Breach, ...] = ()
    notified: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        return not self.unreachable and self.unpriced == 0

    def total_words(self) -> str:
        """What the total covers, said beside it: never a silent $0 for an account that was not read."""
        if not self.unreachable:
            return f"over {len(self.accounts)} account(s)"
        left_out = ", ".join(sorted(self.unreachable))
        return f"over {len(self.accounts) - len(self.unreachable)} account(s); excludes unreachable {left_out}"

    def to_json(self) -> dict[str, Any]:
        return {
            "hourly_usd": round(self.hourly_usd, 4),
            "daily_usd": round(self.hourly_usd * 24, 4),
            "complete": self.complete,
            "total_covers": self.total_words(),
            "excludes": sorted(self.unreachable),
            "unreachable": [{"account": a, "error": e} for a, e in sorted(self.unreachable.items())],
            "unpriced": self.unpriced,
            "accounts": self.accounts,
            "owners": self.owners,
            "excluded": dict(sorted(self.excluded.items())),
            "breaches": [{**b.to_json(), "account": _account_of(b)} for b in self.breaches],
            "alerts": {"notified": list(self.notified), "cleared": list(self.cleared)},
            "notes": list(self.notes),
        }


def _account_of(breach: Breach) -> str | None:
    return _account_of_key(breach.key)


def _account_of_key(key: str) -> str | None:
    return key.split(":")[2] if key.startswith("org:account:") else None


def summarise(
    children: Sequence[Mapping[str, Any]],
    covered: Sequence[str],
    excluded: Mapping[str, str],
    org: OrganizationSettings,
    settings: CostSettings,
) -> OrganizationCost:
    """The children's results over the covered accounts: a covered account without a result is unreachable."""
    by_account = {str(c.get("account")): c for c in children}
    accounts: dict[str, dict[str, Any]] = {}
    owners: dict[str, dict[str, Any]] = {}
    unreachable: dict[str, str] = {}
    for account in sorted(dict.fromkeys(covered)):
        child = by_account.get(account)
        if child is None or child.get("outcome") != "done":
            error = str(child.get("error")) if child is not None and child.get("error") else NO_RESULT
            unreachable[account] = error
            accounts[account] = {"outcome": "failed", "error": error, "hourly_usd": None, "daily_usd": None}
            continue
        hourly = float(child.get("hourly_usd") or 0.0)
        accounts[account] = {
            "outcome": "done",
            "error": None,
            "hourly_usd": round(hourly, 4),
            "daily_usd": round(hourly * 24, 4),
            "resources": int(child.get("resources") or 0),
            "unpriced": int(child.get("unpriced") or 0),
        }
        for owner, burn in dict(child.get("owners") or {}).items():
            mine = owners.setdefault(str(owner), {"hourly_usd": 0.0, "accounts": {}})
            owned = float(dict(burn).get("hourly_usd") or 0.0)
            mine["hourly_usd"] = round(mine["hourly_usd"] + owned, 4)
            mine["accounts"][account] = round(owned, 4)
    for mine in owners.values():
        mine["daily_usd"] = round(mine["hourly_usd"] * 24, 4)
    reached = [a for a in accounts.values() if a["outcome"] == "done"]
    total = sum(a["hourly_usd"] for a in reached)
    unpriced = sum(a["unpriced"] for a in reached)
    result = OrganizationCost(
        accounts=accounts,
        owners=dict(sorted(owners.items())),
        hourly_usd=total,
        unpriced=unpriced,
        unreachable=unreachable,
        excluded=dict(excluded),
    )
    return replace(result, breaches=tuple(find_organization_breaches(result, org, settings)))


def find_organization_breaches(
    cost: OrganizationCost, org: OrganizationSettings, settings: CostSettings
) -> list[Breach]:
    """Each account against its thresholds, each owner against theirs over every account, and the organization."""
    breaches: list[Breach] = []
    account_hourly = org.org_account_hourly_usd or settings.hourly_threshold_usd
    account_daily = org.org_account_daily_usd or settings.daily_threshold_usd
    for account, burn in cost.accounts.items():
        if burn["outcome"] != "done":
            continue
        for kind, value, limit in (
            ("hourly", burn["hourly_usd"], account_hourly),
            ("daily", burn["daily_usd"], account_daily),
        ):
            if value > limit:
                breaches.append(Breach(f"org:account:{account}:{kind}", kind, f"account {account}", value, limit))  # type: ignore[arg-type]
    for owner, burn in cost.owners.items():
        limits = settings.owner_limits(owner)
        if limits is None:
            continue
        for kind, value, owner_limit in (
            ("hourly", burn["hourly_usd"], limits.hourly_usd),
            ("daily", burn["daily_usd"], limits.daily_usd),
        ):
            if owner_limit is not None and value > owner_limit:
                breaches.append(
                    Breach(
                        f"org:owner:{owner}:{kind}",
                        kind,  # type: ignore[arg-type]
                        f"owner {owner} across the organization",
                        value,
                        owner_limit,
                        owner=owner,
                    )
                )
    for kind, value, org_limit in (
        ("hourly", cost.hourly_usd, org.org_hourly_usd),
        ("daily", cost.hourly_usd * 24, org.org_daily_usd),
    ):
        if org_limit is not None and value > org_limit:
            breaches.append(Breach(f"org:total:{kind}", kind, "organization", value, org_limit))  # type: ignore[arg-type]
    if cost.unpriced:
        breaches.append(Breach("org:unpriced", "unpriced", "organization", float(cost.unpriced), 0.0))
    return breaches


# -- telling people --------------------------------------------------------------------------------------------


def breach_lines(breach: Breach, cost: OrganizationCost) -> tuple[str, ...]:
    """Whose burn is behind the breach, every owner escaped; the organization's total names what it leaves out."""
    account = _account_of(breach)
    lines: list[str] = []
    if account is not None:
        burners = sorted(
            ((o, b["accounts"][account]) for o, b in cost.owners.items() if account in b["accounts"]),
            key=lambda pair: (-pair[1], pair[0]),
        )
        lines = [f"owner {one_line(o)}: ${usd:,.4f}/h in account {account}" for o, usd in burners[:LISTED]]
    elif breach.owner is not None:
        spread = sorted(cost.owners[breach.owner]["accounts"].items(), key=lambda pair: (-pair[1], pair[0]))
        lines = [f"account {a}: ${usd:,.4f}/h" for a, usd in spread[:LISTED]]
    else:
        reached = [(a, b["hourly_usd"]) for a, b in cost.accounts.items() if b["outcome"] == "done"]
        lines = [f"account {a}: ${usd:,.4f}/h" for a, usd in sorted(reached, key=lambda p: (-p[1], p[0]))[:LISTED]]
    lines += [f"not counted: account {a}: {one_line(why)}" for a, why in sorted(cost.unreachable.items())]
    return tuple(lines)


def alert_organization(
    cost: OrganizationCost, alerts: AlertStore, notifier: Notifier, settings: CostSettings, at: datetime
) -> OrganizationCost:
    """New breaches told at once, known ones after the cooldown or once grown, ended ones cleared: as one account."""
    plan = plan_alerts(cost.breaches, alerts.load(), at, cooldown=settings.alert_cooldown, growth=settings.alert_growth)
    notified = []
    for breach, why in plan.notify:
        shown = replace(breach, scope=one_line(breach.scope), key=one_line(breach.key))
        notice = breach_notice(shown, why, at)
        account = _account_of(breach)
        facts = {**notice.facts, "total_covers": cost.total_words(), **({"account": account} if account else {})}
        notifier.publish(replace(notice, lines=breach_lines(breach, cost), facts=facts))
        # Saved after the publish: a failed publish is retried next run rather than silently swallowed.
        alerts.save(AlertState(breach.key, breach.value, at, shown.headline()))
        notified.append(breach.key)
    for state in plan.cleared:
        cleared = cleared_notice(replace(state, key=one_line(state.key), headline=one_line(state.headline)), at)
        # The clearing names its account as the breach did: subscribers filter an account's notices by it.
        account = _account_of_key(state.key)
        notifier.publish(replace(cleared, facts={**cleared.facts, "account": account}) if account else cleared)
        alerts.clear(state.key)
    return replace(cost, notified=tuple(notified), cleared=tuple(s.key for s in plan.cleared))
