"""Owners of record: who owned a resource when trainctl first heard of it (age_guard stamping its creation).

The `trainctl:owner` tag is a claim anyone allowed to tag can rewrite; the record is written once and never
overwritten, so the person a resource was made by still hears of what happens to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import access_error, error_code
from trainctl.core.clock import format_instant
from trainctl.core.errors import AwsAccessError
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PERMISSIONS = needs("dynamodb:PutItem", "dynamodb:BatchGetItem")
BATCH_GET_MAX = 100
CLAIMS_AT_ONCE = 16
_UNPROCESSED_ROUNDS = 5


class OwnersOfRecord:
    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def claim(self, owners: Mapping[str, str], at: datetime, recorded_by: str) -> None:
        """Record each resource's owner unless one is recorded already: the first word stands."""

        def put(item: tuple[str, str]) -> None:
            resource_id, owner = item
            try:
                self._dynamodb.put_item(
                    TableName=self._table,
                    Item={
                        **ledger.owner_of_record(resource_id),
                        "owner": {"S": owner},
                        "at": {"S": format_instant(at)},
                        "recorded_by": {"S": recorded_by},
                    },
                    ConditionExpression=f"attribute_not_exists({ledger.PARTITION_KEY})",
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise access_error("PutItem", exc) from exc
            except BotoCoreError as exc:
                raise AwsAccessError("PutItem", type(exc).__name__, str(exc)) from exc

        if len(owners) <= 1:
            for item in owners.items():
                put(item)
            return
        # A conditional write cannot be batched: a sweep's first marks are claimed a few at once.
        with ThreadPoolExecutor(max_workers=min(CLAIMS_AT_ONCE, len(owners))) as pool:
            list(pool.map(put, owners.items()))

    def read(self, resource_ids: Sequence[str]) -> dict[str, str]:
        """The recorded owner of each resource that has one."""
        found: dict[str, str] = {}
        ids = list(dict.fromkeys(resource_ids))
        for start in range(0, len(ids), BATCH_GET_MAX):
            keys: list[Any] = [ledger.owner_of_record(r) for r in ids[start : start + BATCH_GET_MAX]]
            for _ in range(_UNPROCESSED_ROUNDS):
                try:
                    answer = self._dynamodb.batch_get_item(RequestItems={self._table: {"Keys": keys}})
                except ClientError as exc:
                    raise access_error("BatchGetItem", exc) from exc
                except BotoCoreError as exc:
                    raise AwsAccessError("BatchGetItem", type(exc).__name__, str(exc)) from exc
                for item in answer.get("Responses", {}).get(self._table, []):
                    resource_id = str(item[ledger.PARTITION_KEY]["S"]).removeprefix("owner#")
                    found[resource_id] = str(item["owner"]["S"])
                unprocessed: Any = answer.get("UnprocessedKeys") or {}
                keys = list((unprocessed.get(self._table) or {}).get("Keys", []))
                if not keys:
                    break
            else:
                raise AwsAccessError("BatchGetItem", "UnprocessedKeys", "owners of record left unread")
        return found
