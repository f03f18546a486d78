"""The sweep's ledger for one account of the organization, in the hub's table (see trainctl.organization.record).

Apart from the records of onboarding and runs: the plan step reads those alone and loads no sweep.
"""

from __future__ import annotations

from typing import Any

from trainctl.organization.record import sweep_partition
from trainctl.sweep.record import DynamoDbLedger


class AccountLedger(DynamoDbLedger):
    """The sweep's ledger for one account: its sweeps in their own partition, every item marked with the account."""

    def __init__(self, dynamodb: Any, table_name: str, account: str) -> None:
        super().__init__(dynamodb, table_name)
        self.account = account
        self.sweep_partition = sweep_partition(account)

    def _write_all(self, items: list[dict[str, Any]]) -> None:
        super()._write_all([{**item, "account": {"S": self.account}} for item in items])
