"""The hub's ledger, per account: each account's sweeps in a partition of their own, and each child's run.

The ledger table is the hub's, one for the whole organization. EC2 ids are unique across accounts, so a
resource's history, mark and owner of record stay under the resource's own id; but the sweeps a mark is judged
against are per account (`sweep#account#<id>`), as a provider's are per provider, so a mark in one account is
never vouched for by another account's sweeps. Every item an account's sweep writes carries its `account`.

Beside them, under `account#<id>`: one row per child run (`run#<at>#<region>#<sweep id>`: dry-run or enforced,
done or failed and why, the summary), and `onboarded`, written when the account's first dry-run completed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws import ledger as keys
from trainctl.aws.batch_get import get_items
from trainctl.aws.clients import access_error
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.errors import AwsAccessError
from trainctl.core.permissions import needs

PERMISSIONS = needs("dynamodb:PutItem", "dynamodb:Query")

ONBOARDED = "onboarded"
# Enough rows to find each region's newest run for any sensible number of regions.
NEWEST_RUNS = 100


def sweep_partition(account: str) -> str:
    return f"{keys.SWEEP_PARTITION}#account#{account}"


def account_partition(account: str) -> str:
    return f"account#{account}"


def onboarded_key(account: str) -> keys.Item:
    return keys.key(account_partition(account), ONBOARDED)


def run_key(account: str, region: str, at: datetime, sweep_id: str) -> keys.Item:
    return keys.key(account_partition(account), f"run#{format_instant(at)}#{region}#{sweep_id}")


def _error(operation: str, exc: ClientError | BotoCoreError) -> AwsAccessError:
    if isinstance(exc, ClientError):
        return access_error(operation, exc)
    return AwsAccessError(operation, type(exc).__name__, str(exc))


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class AccountRun(NamedTuple):
    """One child's run as the hub recorded it."""

    account: str
    region: str
    at: datetime
    sweep_id: str
    dry_run: bool
    outcome: str  # done | failed
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "account": self.account,
            "region": self.region,
            "at": format_instant(self.at),
            "sweep_id": self.sweep_id,
            "dry_run": self.dry_run,
            "outcome": self.outcome,
            "error": self.error,
        }


class AccountRecords:
    """Which accounts completed their first dry-run, and each child's run, in the hub's ledger table."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def onboarded(self, accounts: Sequence[str]) -> frozenset[str]:
        """The accounts whose first dry-run report completed: only they may be enforced on."""
        found = get_items(self._dynamodb, self._table, [onboarded_key(a) for a in dict.fromkeys(accounts)])
        return frozenset(str(item[keys.PARTITION_KEY]["S"]).removeprefix("account#") for item in found)

    def record_run(self, run: AccountRun, summary: dict[str, object]) -> None:
        """The child's run; a completed dry-run also onboards the account (written once, never withdrawn)."""
        item = {
            **run_key(run.account, run.region, run.at, run.sweep_id),
            "account": {"S": run.account},
            "region": {"S": run.region},
            "dry_run": {"BOOL": run.dry_run},
            "outcome": {"S": run.outcome},
            "summary": {"S": json.dumps(summary, sort_keys=True, default=str)},
            **({"error": {"S": run.error}} if run.error else {}),
            **keys.expires(run.at),
        }
        try:
            self._dynamodb.put_item(TableName=self._table, Item=item)
            if run.dry_run and run.outcome == "done":
                self._dynamodb.put_item(
                    TableName=self._table,
                    Item={**onboarded_key(run.account), "at": {"S": format_instant(run.at)}},
                    # The first completed dry-run is the one that onboarded the account: never overwritten.
                    ConditionExpression="attribute_not_exists(pk)",
                )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise _error("PutItem", exc) from exc
        except BotoCoreError as exc:
            raise _error("PutItem", exc) from exc

    def newest_runs(self, account: str) -> list[AccountRun]:
        """The account's newest run in each region, newest first."""
        try:
            answer = self._dynamodb.query(
                TableName=self._table,
                KeyConditionExpression=f"{keys.PARTITION_KEY} = :pk AND begins_with({keys.SORT_KEY}, :run)",
                ExpressionAttributeValues={":pk": {"S": account_partition(account)}, ":run": {"S": "run#"}},
                ScanIndexForward=False,
                Limit=NEWEST_RUNS,
            )
        except (ClientError, BotoCoreError) as exc:
            raise _error("Query", exc) from exc
        newest: dict[str, AccountRun] = {}
        for item in answer.get("Items", []):
            _, stamp, region, sweep_id = str(item[keys.SORT_KEY]["S"]).split("#", 3)
            if region in newest:
                continue
            newest[region] = AccountRun(
                account=account,
                region=region,
                at=parse_instant(stamp),
                sweep_id=sweep_id,
                dry_run=bool(item.get("dry_run", {}).get("BOOL", True)),
                outcome=str(item.get("outcome", {}).get("S", "")),
                error=str(item["error"]["S"]) if "error" in item else None,
            )
        return list(newest.values())
