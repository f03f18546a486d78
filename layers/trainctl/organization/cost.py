"""The cost check across an organization, one account at a time: each account priced through its spoke role.

One child per account prices all its regions (the existing cost check, run with the spoke's credentials); its
result is kept in the hub's ledger under the run, and the run's last step sums them (`cost_total`). An account
whose spoke cannot be reached is that account's error: named, and the total says it leaves that account out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainctl.aws.clients import ClientFactory
from trainctl.core.clock import Clock
from trainctl.core.cost_settings import CostSettings
from trainctl.core.errors import TrainctlError
from trainctl.cost.prices.chain import PriceBook
from trainctl.cost.prices.price_file import load_price_file
from trainctl.cost.prices.price_list import PriceListApi, RateLimiter
from trainctl.cost.prices.spot_history import SpotPriceHistory
from trainctl.cost.prices.table import DynamoDbPriceTable
from trainctl.cost.run import CostResult, run_cost_check
from trainctl.organization.cost_total import LISTED
from trainctl.organization.rules import DENY_LISTED, is_account_id
from trainctl.organization.settings import OrganizationSettings
from trainctl.organization.spoke import SpokeFactory, reach_spoke

# -- one account -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountCost:
    """One account's cost check, or the one-line error that kept it from being priced."""

    account: str
    regions: tuple[str, ...]
    error: str | None = None
    result: CostResult | None = None

    def to_json(self) -> dict[str, Any]:
        owners: dict[str, dict[str, Any]] = {}
        resources = self.result.resources if self.result else ()
        for cost in resources:
            mine = owners.setdefault(cost.owner, {"hourly_usd": 0.0, "resources": 0, "unpriced": 0})
            mine["hourly_usd"] = round(mine["hourly_usd"] + (cost.hourly_usd or 0.0), 4)
            mine["resources"] += 1
            mine["unpriced"] += 0 if cost.priced else 1
        shown = self.result.to_json() if self.result else {}
        return {
            "capability": "cost",
            "account": self.account,
            "regions": list(self.regions),
            "outcome": "failed" if self.error else "done",
            "error": self.error,
            "at": shown.get("at"),
            "hourly_usd": shown.get("hourly_usd"),
            "daily_usd": shown.get("daily_usd"),
            "resources": len(resources),
            "unpriced": len(shown.get("unpriced", [])),
            "owners": dict(sorted(owners.items())),
            "top": shown.get("resources", [])[:LISTED],
            "notes": shown.get("notes", []),
        }


def child_price_book(
    hub: ClientFactory, spoke: ClientFactory, settings: CostSettings, clock: Clock, *, use_table: bool, use_api: bool
) -> PriceBook:
    """List prices through the hub (its price table and the Price List API are the organization's, not the
    account's); spot prices from the spoke, whose zone names are its own."""
    api = None
    if use_api:
        pricing = hub.client("pricing", settings.pricing_region)
        api = PriceListApi(pricing, limiter=RateLimiter(settings.pricing_requests_per_second), clock=clock)
    return PriceBook(
        clock=clock,
        price_file=load_price_file(settings.price_file),
        table=DynamoDbPriceTable(hub.dynamodb(), settings.price_table, clock) if use_table else None,
        api=api,
        spot=SpotPriceHistory(spoke.ec2),
        list_price_ttl=settings.list_price_ttl,
        spot_price_ttl=settings.spot_price_ttl,
    )


BookFor = Callable[[ClientFactory], PriceBook]


def price_account(
    hub: ClientFactory,
    account: str,
    org: OrganizationSettings,
    settings: CostSettings,
    clock: Clock,
    *,
    book_for: BookFor,
    spoke: SpokeFactory = reach_spoke,
) -> AccountCost:
    """One account priced in every covered region through its spoke role; nobody is told (the total tells)."""
    if not is_account_id(account):
        raise TrainctlError("an organization item's account must be a 12-digit account id")
    regions = org.regions_or(settings.regions)
    if account in org.org_exclude_accounts:
        # The deny-list beats any item: nothing is assumed or read in that account.
        return AccountCost(account, regions, f"account {account}: {DENY_LISTED}")
    try:
        spoke_factory = spoke(hub, account, regions[0], org.org_spoke_role)
        effective = settings.model_copy(update={"regions": regions})
        result = run_cost_check(spoke_factory, effective, clock, book_for(spoke_factory))
    except TrainctlError as exc:
        error = str(exc) if str(exc).startswith(f"account {account}") else f"account {account}: {exc}"
        return AccountCost(account, regions, error)
    return AccountCost(account, regions, None, result)
