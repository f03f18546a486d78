"""A resource used between two sweeps loses its mark: the tag goes, and the ledger says why.

The ledger line is what counts: a sweep trusts a mark only when nothing since it says "used", so a mark whose
tag could not be removed is still void.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import access_error
from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.marks import AGE_GUARD
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

PERMISSIONS = needs("ec2:DescribeTags", "ec2:DeleteTags", "dynamodb:PutItem")
RECORDED_BY = AGE_GUARD


class MarkVoider:
    def __init__(self, ec2: EC2Client, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._ec2 = ec2
        self._dynamodb = dynamodb
        self._table = table_name

    def marked(self, resource_ids: Sequence[str]) -> list[str]:
        try:
            found = self._ec2.describe_tags(
                Filters=[
                    {"Name": "resource-id", "Values": list(resource_ids)},
                    {"Name": "key", "Values": [tags.CLEANUP_AFTER]},
                ]
            )["Tags"]
        except ClientError as exc:
            raise access_error("DescribeTags", exc) from exc
        return sorted({str(t["ResourceId"]) for t in found})

    def record_use(self, resource_id: str, at: datetime, why: str) -> None:
        """The line a sweep reads: any mark older than this use is void, also one written after it was heard."""
        entry = {
            "action": "unmark",
            "outcome": "done",
            "reasons": [],
            "protections": [],
            "detail": why,
            "at": format_instant(at),
            "recorded_by": RECORDED_BY,
        }
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    **ledger.sweep_decision(resource_id, at, RECORDED_BY),
                    "action": {"S": "unmark"},
                    "decision": {"S": json.dumps(entry, sort_keys=True)},
                    **ledger.expires(at),
                },
            )
        except ClientError as exc:
            raise access_error("PutItem", exc) from exc

    def remove_mark(self, resource_id: str) -> bool:
        """Take the tag away: without it a candidate earns a fresh mark. False if the tag stayed."""
        try:
            self._ec2.delete_tags(Resources=[resource_id], Tags=[{"Key": tags.CLEANUP_AFTER}])
        except ClientError:
            return False
        return True

    def void(self, resource_id: str, at: datetime, why: str) -> bool:
        """Both ways at once: the tag goes even when the ledger cannot take the line (and then raises)."""
        try:
            self.record_use(resource_id, at, why)
        finally:
            removed = self.remove_mark(resource_id)
        return removed
