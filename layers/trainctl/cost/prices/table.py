"""The DynamoDB price table: prices the Price List API gave, kept with a time to live."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from trainctl.aws.clients import access_error
from trainctl.core.clock import Clock
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

from trainctl.cost.prices.model import Price

PERMISSIONS = needs("dynamodb:BatchGetItem", "dynamodb:PutItem")


class PriceTable(Protocol):
    def get_many(self, keys: list[str]) -> dict[str, Price]: ...

    def put(self, key: str, price: Price, expires: datetime) -> None: ...


class DynamoDbPriceTable:
    """Prices fetched from the API, shared by every function and run; DynamoDB's TTL drops stale ones."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str, clock: Clock) -> None:
        self._dynamodb = dynamodb
        self._table = table_name
        self._clock = clock

    def get_many(self, keys: list[str]) -> dict[str, Price]:
        found: dict[str, Price] = {}
        now = int(self._clock().timestamp())
        try:
            for start in range(0, len(keys), 100):
                request: dict[str, Any] = {
                    self._table: {"Keys": [{"pk": {"S": key}} for key in keys[start : start + 100]]}
                }
                for _ in range(8):
                    response = self._dynamodb.batch_get_item(RequestItems=request)
                    for item in response.get("Responses", {}).get(self._table, []):
                        # TTL deletion lags by up to days: an expired item is treated as absent.
                        if int(item["expires_at"]["N"]) > now:
                            found[item["pk"]["S"]] = Price.from_json(json.loads(item["price"]["S"]))
                    request = dict(response.get("UnprocessedKeys") or {})
                    if not request:
                        break
        except ClientError as exc:
            raise access_error("BatchGetItem", exc) from exc
        return found

    def put(self, key: str, price: Price, expires: datetime) -> None:
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": key},
                    "price": {"S": json.dumps(price.to_json())},
                    "expires_at": {"N": str(int(expires.timestamp()))},
                },
            )
        except ClientError as exc:
            raise access_error("PutItem", exc) from exc


class InMemoryPriceTable:
    def __init__(self) -> None:
        self.items: dict[str, tuple[Price, datetime]] = {}

    def get_many(self, keys: list[str]) -> dict[str, Price]:
        return {key: self.items[key][0] for key in keys if key in self.items}

    def put(self, key: str, price: Price, expires: datetime) -> None:
        self.items[key] = (price, expires)


# ------------------------------------------------------------------------------------------------------- spot
