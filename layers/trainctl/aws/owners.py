"""Owners of record: who owned a resource when trainctl first heard of it (age_guard stamping its creation).

The `trainctl:owner` tag is a claim anyone allowed to tag can rewrite; the record is written once and never
overwritten, so the person a resource was made by still hears of what happens to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws import ledger
from trainctl.aws.batch_get import get_items
from trainctl.aws.clients import access_error, error_code
from trainctl.core.clock import format_instant
from trainctl.core.errors import AwsAccessError
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PERMISSIONS = needs("dynamodb:PutItem")
CLAIMS_AT_ONCE = 16


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
        keys = [ledger.owner_of_record(r) for r in dict.fromkeys(resource_ids)]
        return {
            str(item[ledger.PARTITION_KEY]["S"]).removeprefix("owner#"): str(item["owner"]["S"])
            for item in get_items(self._dynamodb, self._table, keys)
        }
