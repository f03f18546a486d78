"""The recovery workflow's first task: what to relaunch, read from EC2 and the spot handler's record, never the input.

The execution is given an instance id and nothing else. The instance must be terminated by EC2 for its spot
capacity, after a terminate warning the spot handler handled and recorded minutes before; the volumes to restore,
their snapshots, the owner and the lost zone come from that record, and each snapshot must be the spot handler's
checkpoint of that very instance. Only reads.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import ClientFactory, access_error, error_code
from trainctl.aws.ec2 import find_instance
from trainctl.core import tags
from trainctl.core.clock import Clock
from trainctl.core.permissions import needs
from trainctl.core.resources import Instance
from trainctl.core.spot_settings import SpotSettings
from trainctl.core.text import one_line
from trainctl.spot.rules import (
    RecoveryRefused,
    checkpoint_command,
    plan_refusal,
    recovery_instance_id,
    recovery_zones,
    restore_mappings,
    snapshot_refusal,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

# The ledger is encrypted with trainctl's key: reading it decrypts.
PERMISSIONS = needs(
    "dynamodb:Query",
    "kms:Decrypt",
    "ec2:DescribeInstances",
    "ec2:DescribeSnapshots",
    "ec2:DescribeAvailabilityZones",
)
TEMPLATE_ID = "aws:ec2launchtemplate:id"
TEMPLATE_VERSION = "aws:ec2launchtemplate:version"
# A relaunched instance that is not terminated: this reclaim was already recovered.
_ALIVE = ["pending", "running", "stopping", "stopped"]


def recorded_history(dynamodb: DynamoDBClient, table: str, instance_id: str) -> list[dict[str, Any]]:
    """Every outcome the spot handler recorded for the instance, oldest first."""
    try:
        items = dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": ledger.spot_partition(instance_id)}},
        ).get("Items", [])
    except ClientError as exc:
        raise access_error("Query", exc) from exc
    return [json.loads(item["outcome"]["S"]) for item in items]


def last_handled_warning(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest terminate warning the spot handler handled (a late one saved nothing, a stop one no reclaim)."""
    found = None
    for entry in history:
        if entry.get("kind") == "warning" and entry.get("status") == "handled" and entry.get("action") == "terminate":
            found = entry
    return found


def plan_recovery(
    event: object, factory: ClientFactory, settings: SpotSettings, *, region: str, clock: Clock
) -> dict[str, Any]:
    """The whole state the workflow runs on, or RecoveryRefused naming why."""
    instance_id = recovery_instance_id(event)
    ec2 = factory.ec2(region)
    instance = _describe(ec2, region, instance_id)
    warning = last_handled_warning(recorded_history(factory.dynamodb(), settings.ledger_table, instance_id))
    why_not = plan_refusal(instance, warning, settings, now=clock())
    if why_not is not None or instance is None or warning is None:
        raise RecoveryRefused(f"{instance_id}: {why_not}")
    template = {
        "LaunchTemplateId": instance.tags.get(TEMPLATE_ID, ""),
        "Version": instance.tags.get(TEMPLATE_VERSION, ""),
    }
    if not all(template.values()):
        raise RecoveryRefused(f"{instance_id}: launched without a launch template, nothing to relaunch from")
    _refuse_a_second_recovery(ec2, instance_id)
    snapshots = list(warning.get("snapshots") or [])
    _check_snapshots(ec2, instance_id, snapshots)
    lost_zone = str(warning.get("zone") or instance.availability_zone)
    zones = recovery_zones(lost_zone, _available_zones(ec2))[: settings.recovery_max_attempts]
    if not zones:
        raise RecoveryRefused(f"{instance_id}: no other available zone to relaunch in")
    block_devices, keep_mappings = restore_mappings(snapshots)
    command = checkpoint_command(instance, settings, mode="resume")
    owner = str(warning.get("owner") or "")
    return {
        "instance_id": instance_id,
        # A message attribute and a tag in the workflow: one escaped line.
        "owner": one_line(owner) if owner else "(no owner)",
        "launch_template": template,
        "zones": zones,
        "attempt": 0,
        "max_attempts": len(zones),
        "block_devices": block_devices,
        "keep_mappings": keep_mappings,
        "resume": {"document": command.document, "parameters": command.parameters},
        "topic_arn": settings.topic_arn or "",
    }


def _describe(ec2: EC2Client, region: str, instance_id: str) -> Instance | None:
    try:
        return find_instance(ec2, region, instance_id)
    except ClientError as exc:
        raise access_error("DescribeInstances", exc) from exc


def _refuse_a_second_recovery(ec2: EC2Client, instance_id: str) -> None:
    try:
        reservations = ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{tags.RECOVERED_FROM}", "Values": [instance_id]},
                {"Name": "instance-state-name", "Values": _ALIVE},
            ]
        )["Reservations"]
    except ClientError as exc:
        raise access_error("DescribeInstances", exc) from exc
    alive = [str(i["InstanceId"]) for r in reservations for i in r.get("Instances", [])]
    if alive:
        raise RecoveryRefused(f"{instance_id}: already recovered as {', '.join(alive)}")


def _check_snapshots(ec2: EC2Client, instance_id: str, snapshots: list[dict[str, Any]]) -> None:
    ids = [str(s.get("snapshot_id", "")) for s in snapshots]
    if not ids:
        return
    try:
        found = ec2.describe_snapshots(SnapshotIds=ids, OwnerIds=["self"]).get("Snapshots", [])
    except ClientError as exc:
        if error_code(exc) not in ("InvalidSnapshot.NotFound", "InvalidSnapshotID.Malformed"):
            raise access_error("DescribeSnapshots", exc) from exc
        found = []
    described = {str(s["SnapshotId"]): dict(s) for s in found}
    for recorded in snapshots:
        why_not = snapshot_refusal(instance_id, recorded, described.get(str(recorded.get("snapshot_id", ""))))
        if why_not is not None:
            raise RecoveryRefused(f"{instance_id}: {why_not}")


def _available_zones(ec2: EC2Client) -> list[str]:
    try:
        zones = ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])
    except ClientError as exc:
        raise access_error("DescribeAvailabilityZones", exc) from exc
    return [str(z["ZoneName"]) for z in zones["AvailabilityZones"]]
