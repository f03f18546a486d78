"""What cost_alerts keeps between runs, in the ledger table: instance state changes and alert state."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import access_error
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.permissions import needs
from trainctl.cost.rules import AlertState, Transition

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PERMISSIONS = needs("dynamodb:PutItem", "dynamodb:Query", "dynamodb:DeleteItem")


class RuntimeHistory(Protocol):
    def record(self, region: str, instance_id: str, transition: Transition) -> None: ...

    def read(self, regions: Sequence[str]) -> dict[str, list[Transition]]: ...


class AlertStore(Protocol):
    def load(self) -> dict[str, AlertState]: ...

    def save(self, state: AlertState) -> None: ...

    def clear(self, key: str) -> None: ...


class DynamoDbCostStore:
    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def record(self, region: str, instance_id: str, transition: Transition) -> None:
        stamp = format_instant(transition.at)
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    **ledger.runtime_transition(region, instance_id, transition.at, transition.state),
                    "instance_id": {"S": instance_id},
                    "state": {"S": transition.state},
                    "at": {"S": stamp},
                    **ledger.expires(transition.at, ledger.HISTORY_RETENTION),
                },
            )
        except ClientError as exc:
            raise access_error("PutItem", exc) from exc

    def _query(self, partition: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        try:
            pages = self._dynamodb.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": partition}},
            )
            for page in pages:
                items.extend(page.get("Items", []))
        except ClientError as exc:
            raise access_error("Query", exc) from exc
        return items

    def read(self, regions: Sequence[str]) -> dict[str, list[Transition]]:
        history: dict[str, list[Transition]] = defaultdict(list)
        for region in regions:
            for item in self._query(ledger.runtime_partition(region)):
                history[item["instance_id"]["S"]].append(Transition(parse_instant(item["at"]["S"]), item["state"]["S"]))
        return dict(history)

    def load(self) -> dict[str, AlertState]:
        states = {}
        for item in self._query(ledger.COST_ALERT_PARTITION):
            raw = json.loads(item["state"]["S"])
            states[item[ledger.SORT_KEY]["S"]] = AlertState(
                item[ledger.SORT_KEY]["S"],
                float(raw["value"]),
                parse_instant(raw["notified_at"]),
                str(raw.get("headline", "")),
            )
        return states

    def save(self, state: AlertState) -> None:
        raw = {"value": state.value, "notified_at": format_instant(state.notified_at), "headline": state.headline}
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={**ledger.cost_alert(state.key), "state": {"S": json.dumps(raw)}},
            )
        except ClientError as exc:
            raise access_error("PutItem", exc) from exc

    def clear(self, key: str) -> None:
        try:
            self._dynamodb.delete_item(TableName=self._table, Key=ledger.cost_alert(key))
        except ClientError as exc:
            raise access_error("DeleteItem", exc) from exc


class InMemoryCostStore:
    def __init__(self) -> None:
        self.transitions: dict[str, list[Transition]] = defaultdict(list)
        self.regions: dict[str, str] = {}
        self.alerts: dict[str, AlertState] = {}

    def record(self, region: str, instance_id: str, transition: Transition) -> None:
        if transition not in self.transitions[instance_id]:
            self.transitions[instance_id].append(transition)
        self.regions[instance_id] = region

    def read(self, regions: Sequence[str]) -> dict[str, list[Transition]]:
        return {i: list(t) for i, t in self.transitions.items() if self.regions.get(i) in regions}

    def load(self) -> dict[str, AlertState]:
        return dict(self.alerts)

    def save(self, state: AlertState) -> None:
        self.alerts[state.key] = state

    def clear(self, key: str) -> None:
        self.alerts.pop(key, None)
