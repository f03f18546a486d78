"""The sweep's record in the ledger: every decision and outcome of every enforced sweep (or memory, for tests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import access_error
from trainctl.core.permissions import needs
from trainctl.sweep.rules import Decision

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PERMISSIONS = needs("dynamodb:BatchWriteItem")

_BATCH = 25
_WRITERS = 4


class Ledger(Protocol):
    def record(
        self, sweep_id: str, at: datetime, summary: dict[str, object], decisions: Sequence[Decision]
    ) -> None: ...


def ledger_items(
    sweep_id: str, at: datetime, summary: dict[str, object], decisions: Sequence[Decision]
) -> list[dict[str, Any]]:
    until = ledger.expires(at)
    items: list[dict[str, Any]] = [{**ledger.sweep_run(at, sweep_id), "summary": {"S": _json(summary)}, **until}]
    for decision in decisions:
        items.append(
            {
                **ledger.sweep_decision(decision.resource_id, at, sweep_id),
                "sweep_id": {"S": sweep_id},
                "resource_type": {"S": decision.resource_type},
                "region": {"S": decision.region},
                "action": {"S": decision.action},
                "outcome": {"S": decision.outcome},
                "decision": {"S": _json(decision.to_json())},
                **until,
            }
        )
    return items


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class DynamoDbLedger:
    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def record(self, sweep_id: str, at: datetime, summary: dict[str, object], decisions: Sequence[Decision]) -> None:
        items = ledger_items(sweep_id, at, summary, decisions)
        batches = [items[start : start + _BATCH] for start in range(0, len(items), _BATCH)]
        # A big sweep writes a hundred batches: a few at a time, each a round trip.
        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            for _ in pool.map(self._write, batches):
                pass

    def _write(self, batch: list[dict[str, Any]]) -> None:
        requests: dict[str, Any] = {self._table: [{"PutRequest": {"Item": item}} for item in batch]}
        try:
            # Unprocessed items come back under throttling; botocore's retries cover the call, not these.
            for _ in range(8):
                response = self._dynamodb.batch_write_item(RequestItems=requests)
                requests = dict(response.get("UnprocessedItems") or {})
                if not requests:
                    return
        except ClientError as exc:
            raise access_error("BatchWriteItem", exc) from exc
        raise RuntimeError(f"ledger write left {len(requests[self._table])} items unprocessed")


class InMemoryLedger:
    def __init__(self) -> None:
        self.sweeps: list[tuple[str, datetime, dict[str, object], list[Decision]]] = []

    def record(self, sweep_id: str, at: datetime, summary: dict[str, object], decisions: Sequence[Decision]) -> None:
        self.sweeps.append((sweep_id, at, summary, list(decisions)))
