"""A lease in DynamoDB: two enforced sweeps at the same moment never act side by side."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from botocore.exceptions import ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import access_error, error_code
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PERMISSIONS = needs("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")

LEASE_KEY = ledger.lease("cleanup_sweep")


def provider_lease_key(provider: str) -> ledger.Item:
    """Each provider's sweep has its own lease: it never waits on the AWS sweep's, nor the other provider's."""
    return ledger.lease(f"provider_sweep#{provider}")


class Lease(Protocol):
    def acquire(self, now: datetime, duration: timedelta) -> bool: ...

    def renew(self, now: datetime, duration: timedelta) -> bool: ...

    def release(self) -> None: ...


class DynamoDbLease:
    """Conditional put: taken only if free or expired; released only by its holder."""

    def __init__(
        self, dynamodb: DynamoDBClient, table_name: str, holder: str | None = None, *, key: ledger.Item = LEASE_KEY
    ) -> None:
        self._dynamodb = dynamodb
        self._key = key
        self._table = table_name
        self.holder = holder or uuid.uuid4().hex

    def acquire(self, now: datetime, duration: timedelta) -> bool:
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    **self._key,
                    "holder": {"S": self.holder},
                    "lease_until": {"N": str(int((now + duration).timestamp()))},
                    # The ledger's TTL attribute cleans up a lease whose holder died.
                    "expires_at": {"N": str(int((now + duration + timedelta(days=1)).timestamp()))},
                },
                ConditionExpression="attribute_not_exists(pk) OR lease_until < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now.timestamp()))}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise access_error("PutItem", exc) from exc
        return True

    def renew(self, now: datetime, duration: timedelta) -> bool:
        """Extend a lease this holder still has; False when it lapsed or another sweep took it."""
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=self._key,
                UpdateExpression="SET lease_until = :until, expires_at = :expires",
                ConditionExpression="holder = :me AND lease_until >= :now",
                ExpressionAttributeValues={
                    ":me": {"S": self.holder},
                    ":now": {"N": str(int(now.timestamp()))},
                    ":until": {"N": str(int((now + duration).timestamp()))},
                    ":expires": {"N": str(int((now + duration + timedelta(days=1)).timestamp()))},
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise access_error("UpdateItem", exc) from exc
        return True

    def release(self) -> None:
        try:
            self._dynamodb.delete_item(
                TableName=self._table,
                Key=self._key,
                ConditionExpression="holder = :me",
                ExpressionAttributeValues={":me": {"S": self.holder}},
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise access_error("DeleteItem", exc) from exc
