"""Reading items by key from the ledger table, a hundred keys a call, with the keys DynamoDB left unprocessed asked
again a few times: one place for every reader that knows its keys (owners of record, the marks trainctl wrote)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws.clients import access_error
from trainctl.core.errors import AwsAccessError
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

PERMISSIONS = needs("dynamodb:BatchGetItem")

BATCH_GET_MAX = 100
_UNPROCESSED_ROUNDS = 5


def get_items(dynamodb: DynamoDBClient, table: str, keys: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item of `keys` that exists; AwsAccessError when DynamoDB refuses, times out or keeps keys unread."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_MAX):
        wanted: list[Any] = list(keys[start : start + BATCH_GET_MAX])
        for _ in range(_UNPROCESSED_ROUNDS):
            try:
                answer = dynamodb.batch_get_item(RequestItems={table: {"Keys": wanted}})
            except ClientError as exc:
                raise access_error("BatchGetItem", exc) from exc
            except BotoCoreError as exc:
                raise AwsAccessError("BatchGetItem", type(exc).__name__, str(exc)) from exc
            found.extend(answer.get("Responses", {}).get(table, []))
            unprocessed: Any = answer.get("UnprocessedKeys") or {}
            wanted = list((unprocessed.get(table) or {}).get("Keys", []))
            if not wanted:
                break
        else:
            raise AwsAccessError("BatchGetItem", "UnprocessedKeys", "items left unread")
    return found
