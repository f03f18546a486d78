"""Spot recovery: when EC2 reclaimed an instance that asked for it, start the relaunch workflow with its input."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from botocore.exceptions import ClientError

from trainctl.aws.clients import ClientFactory, access_error, error_code
from trainctl.core import tags
from trainctl.core.clock import Clock, ensure_utc
from trainctl.core.notices import Notice, digest
from trainctl.core.permissions import needs
from trainctl.core.settings import SpotSettings
from trainctl.core.text import one_line
from trainctl.spot.rules import (
    checkpoint_command,
    reclaim_warning,
    recovery_refusal,
    recovery_zones,
)
from trainctl.spot.run import SpotLedger, SpotOutcome, describe_instance, owner_notice

PERMISSIONS = needs("ec2:DescribeAvailabilityZones", "states:StartExecution")

Status = Literal["handled", "refused", "ignored", "recovery-started", "unrecoverable"]
_COMMAND_DONE = {"Success", "Failed", "Cancelled", "TimedOut", "Undeliverable", "Terminated", "DeliveryTimedOut"}


def start_recovery(
    factory: ClientFactory,
    settings: SpotSettings,
    *,
    instance_id: str,
    region: str,
    terminated_at: datetime,
    clock: Clock,
) -> SpotOutcome:
    """On a reclaimed spot instance tagged trainctl:recover=true: start the recovery workflow, once.

    Reclaimed means: a terminate warning was handled minutes before this termination (`terminated_at`, the
    state change's time), and EC2 gives no user-initiated reason for it. Anything else ended on purpose.
    """
    outcome = SpotOutcome("recovery-started", instance_id, region, "terminated")
    ec2 = factory.ec2(region)
    instance = describe_instance(ec2, instance_id, region)
    ledger = SpotLedger(factory.dynamodb(), settings.ledger_table)
    warning = reclaim_warning(ledger.history(instance_id), ensure_utc(terminated_at))
    why_not = recovery_refusal(instance, settings, warned=warning is not None)
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
    snapshots = list((warning or {}).get("snapshots") or [])
    command = checkpoint_command(instance, settings, mode="resume")
    restorable = [s for s in snapshots if s.get("device")]
    # The workflow reads the launch template from the interrupted instance itself and writes its own tags: the
    # input names neither. The owner becomes a message attribute and a tag there: one escaped line.
    execution_input = {
        "instance_id": instance_id,
        "region": region,
        "owner": one_line(outcome.owner) if outcome.owner else "(no owner)",
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
            Notice(
                kind="spot",
                title=f"trainctl spot: cannot recover {outcome.instance_id}",
                summary=f"{outcome.instance_id} was reclaimed and asked for recovery, but {one_line(outcome.reason)}.",
                next_steps=("Launch a replacement yourself from its launch template, and restore its snapshots.",),
                owner=outcome.owner or None,
                severity="critical",
                thread=f"trainctl-spot-{digest(outcome.instance_id)}",
                resources=(outcome.instance_id,),
            ),
        )
