"""Spot recovery: when EC2 reclaimed an instance that asked for it, start the relaunch workflow with its id alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from trainctl.aws.clients import ClientFactory, access_error, error_code
from trainctl.core import tags
from trainctl.core.clock import Clock, ensure_utc
from trainctl.core.notices import Notice, digest
from trainctl.core.permissions import needs
from trainctl.core.spot_settings import SpotSettings
from trainctl.core.text import one_line
from trainctl.spot.rules import reclaim_warning, recovery_is_late, recovery_refusal
from trainctl.spot.run import SpotLedger, SpotOutcome, describe_instance, owner_notice

PERMISSIONS = needs("states:StartExecution")

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
    elif warning is not None and recovery_is_late(_warned_at(warning), clock(), settings):
        outcome.status, outcome.reason = "unrecoverable", "the termination came to trainctl too late after its warning"
    if outcome.status == "unrecoverable":
        _tell_unrecoverable(factory, settings, outcome)
        return outcome
    # The instance id alone: the workflow reads what to restore, whose it is and where from its records.
    execution_input = {"instance_id": instance_id}
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
    restorable = [s for s in (warning or {}).get("snapshots") or [] if s.get("device")]
    outcome.notes.append(f"{len(restorable)} volume(s) to restore, as the warning's record says")
    return outcome


def _warned_at(warning: Mapping[str, Any]) -> datetime:
    return ensure_utc(datetime.fromisoformat(str(warning.get("event_time", ""))))


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
