"""Spot recovery: when EC2 reclaimed an instance that asked for it, start the relaunch workflow with its input."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from trainctl.aws.clients import ClientFactory, access_error, error_code
from trainctl.core import tags
from trainctl.core.clock import Clock
from trainctl.core.permissions import needs
from trainctl.core.settings import SpotSettings
from trainctl.spot.rules import (
    checkpoint_command,
    recovery_refusal,
    recovery_zones,
)
from trainctl.spot.run import SpotLedger, SpotOutcome, describe_instance, owner_notice

if TYPE_CHECKING:
    pass

PERMISSIONS = needs("ec2:DescribeAvailabilityZones", "states:StartExecution")

Status = Literal["handled", "refused", "ignored", "recovery-started", "unrecoverable"]
_COMMAND_DONE = {"Success", "Failed", "Cancelled", "TimedOut", "Undeliverable", "Terminated", "DeliveryTimedOut"}


def start_recovery(
    factory: ClientFactory,
    settings: SpotSettings,
    *,
    instance_id: str,
    region: str,
    clock: Clock,
) -> SpotOutcome:
    """On a reclaimed spot instance tagged trainctl:recover=true: start the recovery workflow, once."""
    outcome = SpotOutcome("recovery-started", instance_id, region, "terminated")
    ec2 = factory.ec2(region)
    instance = describe_instance(ec2, instance_id, region)
    ledger = SpotLedger(factory.dynamodb(), settings.ledger_table)
    warnings = [h for h in ledger.history(instance_id) if h.get("kind") == "warning" and h.get("status") == "handled"]
    why_not = recovery_refusal(instance, settings, warned=bool(warnings))
    if why_not is not None or instance is None:
        outcome.status, outcome.reason = "ignored", why_not or "unknown instance"
        return outcome
    outcome.owner = instance.tags.get(tags.OWNER, "")
    template_id = instance.tags.get("aws:ec2launchtemplate:id")
    assert settings.recovery_state_machine_arn is not None
    workflow_region = settings.recovery_state_machine_arn.split(":")[3]
    if not template_id:
        outcome.status, outcome.reason = "unrecoverable", "launched without a launch template: nothing to relaunch from"
    elif region != workflow_region:
        # Step Functions SDK integrations act in the workflow's own region.
        outcome.status, outcome.reason = "unrecoverable", f"recovery runs in {workflow_region} only, not {region}"
    if outcome.status == "unrecoverable":
        _tell_unrecoverable(factory, settings, outcome)
        return outcome
    zones = [
        z["ZoneName"]
        for z in ec2.describe_availability_zones(Filters=[{"Name": "state", "Values": ["available"]}])[
            "AvailabilityZones"
        ]
    ]
    candidates = recovery_zones(instance.availability_zone, zones)[: settings.recovery_max_attempts]
    snapshots = warnings[-1]["snapshots"] if warnings else []
    command = checkpoint_command(instance, settings, mode="resume")
    restorable = [s for s in snapshots if s.get("device")]
    execution_input = {
        "instance_id": instance_id,
        "region": region,
        "owner": outcome.owner or "(no owner)",
        "launch_template": {
            "LaunchTemplateId": template_id,
            "Version": instance.tags.get("aws:ec2launchtemplate:version", "$Default"),
        },
        "zones": candidates,
        "attempt": 0,
        "max_attempts": len(candidates),
        # Restored by RunInstances itself, dying with a half-built instance; kept once it runs.
        "block_devices": [
            {
                "DeviceName": s["device"],
                "Ebs": {"SnapshotId": s["snapshot_id"], "VolumeType": s["volume_type"], "DeleteOnTermination": True},
            }
            for s in restorable
        ],
        "keep_mappings": [{"DeviceName": s["device"], "Ebs": {"DeleteOnTermination": False}} for s in restorable],
        "tags": [
            {"Key": settings.scope_tag, "Value": "true"},
            {"Key": tags.RECOVERED_FROM, "Value": instance_id},
            {"Key": tags.OWNER, "Value": outcome.owner or "(no owner)"},
        ],
        "resume": {"document": command.document, "parameters": command.parameters},
        "topic_arn": settings.topic_arn or "",
    }
    sfn = factory.client("stepfunctions", workflow_region)
    try:
        # The name makes the start idempotent: a repeated event finds the execution already there.
        started = sfn.start_execution(
            stateMachineArn=settings.recovery_state_machine_arn,
            name=f"recover-{instance_id}",
            input=json.dumps(execution_input),
        )
        outcome.execution_arn = str(started["executionArn"])
    except ClientError as exc:
        if error_code(exc) != "ExecutionAlreadyExists":
            raise access_error("StartExecution", exc) from exc
        outcome.reason = "recovery already started for this instance"
    outcome.notes.append(f"zones to try: {', '.join(candidates) or 'none'}; {len(restorable)} volume(s) to restore")
    return outcome


def _tell_unrecoverable(factory: ClientFactory, settings: SpotSettings, outcome: SpotOutcome) -> None:
    if settings.topic_arn:
        owner_notice(
            factory,
            settings.topic_arn,
            outcome.owner,
            f"trainctl spot: cannot recover {outcome.instance_id}",
            f"{outcome.instance_id} was reclaimed and asked for recovery, but {outcome.reason}.",
        )
