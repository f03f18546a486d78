"""Spot interruptions, acted on: the checkpoint command first, then snapshots, persistence, ledger, the owner.

Every step is timed from the handler's start; a step that fails is reported and the next one still runs,
because each saves something the others do not.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from trainctl.aws import ledger
from trainctl.aws.clients import ClientFactory, access_error, error_code
from trainctl.aws.ec2 import find_instance, volume_from_api
from trainctl.aws.keep_volumes import keep_volumes
from trainctl.aws.notifications import SnsNotifier
from trainctl.aws.owners import OwnersOfRecord
from trainctl.core import tags
from trainctl.core.clock import Clock, ensure_utc, format_instant
from trainctl.core.errors import AwsAccessError
from trainctl.core.notices import Notice, digest
from trainctl.core.permissions import needs
from trainctl.core.protections import volumes_dying_with
from trainctl.core.resources import Instance, Volume
from trainctl.core.spot_settings import SpotSettings
from trainctl.core.text import one_line
from trainctl.spot.plan import recorded_history
from trainctl.spot.rules import (
    EventKind,
    checkpoint_command,
    checkpoint_wait,
    data_volumes,
    refusal,
    saves_data,
    snapshot_tags,
    warning_is_late,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ec2 import EC2Client

# Tags on CreateSnapshots are authorised as ec2:CreateTags.
PERMISSIONS = needs(
    "dynamodb:PutItem",
    "dynamodb:Query",
    "ec2:CreateSnapshots",
    "ec2:CreateTags",
    "ec2:DescribeVolumes",
    "ssm:SendCommand",
    "ssm:GetCommandInvocation",
)

Status = Literal["handled", "refused", "late", "ignored", "recovery-started", "unrecoverable"]
_COMMAND_DONE = {"Success", "Failed", "Cancelled", "TimedOut", "Undeliverable", "Terminated", "DeliveryTimedOut"}


@dataclass
class Step:
    """One step of handling a spot event: when it started, how long it took, and what came of it."""

    name: str
    at_ms: float  # since the handler started
    took_ms: float
    outcome: str  # done | failed | skipped
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "at_ms": round(self.at_ms, 1),
            "took_ms": round(self.took_ms, 1),
            "outcome": self.outcome,
            "detail": self.detail,
        }


@dataclass
class SpotOutcome:
    """What handling a spot event did, step by step, and for whom."""

    status: Status
    instance_id: str
    region: str
    kind: str
    reason: str = ""
    owner: str = ""
    steps: list[Step] = field(default_factory=list)
    command_id: str | None = None
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    kept_volumes: list[str] = field(default_factory=list)
    execution_arn: str | None = None
    notes: list[str] = field(default_factory=list)
    # What the warning said (terminate, stop, hibernate) and when: recovery follows only a terminate warning
    # minutes before the termination.
    action: str = ""
    event_time: str = ""
    # The zone that lost its capacity: recovery relaunches elsewhere.
    zone: str = ""
    # Owners the trainctl:owner tag no longer names, told all the same (the owner of record is `owner`).
    also_tell: list[str] = field(default_factory=list)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "instance_id": self.instance_id,
            "region": self.region,
            "kind": self.kind,
            "reason": self.reason,
            "owner": self.owner,
            "command_id": self.command_id,
            "snapshots": self.snapshots,
            "kept_volumes": self.kept_volumes,
            "execution_arn": self.execution_arn,
            "steps": [s.to_json() for s in self.steps],
            "notes": self.notes,
            "action": self.action,
            "event_time": self.event_time,
            "zone": self.zone,
        }


class Stopwatch:
    """Milliseconds since the handler started: the measure of the two-minute window."""

    def __init__(self, started: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._started = started
        self._monotonic = monotonic

    def now_ms(self) -> float:
        return (self._monotonic() - self._started) * 1000


def owner_notice(factory: ClientFactory, topic_arn: str, notice: Notice) -> None:
    """One notice per interruption on the topic, with the owner as an attribute to filter on (escaped there)."""
    SnsNotifier(factory.sns(), topic_arn).publish(notice)


def describe_instance(ec2: EC2Client, instance_id: str, region: str) -> Instance | None:
    try:
        return find_instance(ec2, region, instance_id)
    except ClientError as exc:
        raise access_error("DescribeInstances", exc) from exc


class SpotLedger:
    """What was done for each interruption, in the ledger table; recovery reads the snapshots from it."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def record(self, outcome: SpotOutcome, at: datetime) -> None:
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item={
                    **ledger.spot_interruption(outcome.instance_id, at, outcome.kind),
                    "kind": {"S": outcome.kind},
                    "outcome": {"S": json.dumps(outcome.to_json(), sort_keys=True)},
                    **ledger.expires(at),
                },
            )
        except ClientError as exc:
            raise access_error("PutItem", exc) from exc

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        return recorded_history(self._dynamodb, self._table, instance_id)


def handle_interruption(
    factory: ClientFactory,
    settings: SpotSettings,
    *,
    instance_id: str,
    region: str,
    kind: EventKind,
    interruption_id: str,
    event_time: datetime,
    clock: Clock,
    watch: Stopwatch,
    sleep: Callable[[float], None] = time.sleep,
    action: str = "",
) -> SpotOutcome:
    """`action`: the warning's instance-action (terminate, stop, hibernate); none for a rebalance."""
    outcome = SpotOutcome("handled", instance_id, region, kind, action=action)
    outcome.event_time = format_instant(ensure_utc(event_time))
    ec2 = factory.ec2(region)
    instance = describe_instance(ec2, instance_id, region)
    why_not = refusal(instance, settings)
    if why_not is not None or instance is None:
        outcome.status, outcome.reason = "refused", why_not or "unknown instance"
        return outcome
    outcome.owner = instance.tags.get(tags.OWNER, "")
    outcome.zone = instance.availability_zone
    if kind == "warning" and warning_is_late(ensure_utc(event_time), clock(), settings):
        # Recorded and reported, never acted on: nothing is snapshotted, and recovery never follows it.
        outcome.status = "late"
        outcome.reason = (
            f"the warning is from {outcome.event_time}, more than its two minutes and "
            f"TRAINCTL_SPOT_EVENT_DELIVERY_LAG ago: nothing was saved for it"
        )
        outcome.notes.append(outcome.reason)
        _record_and_tell(factory, settings, outcome, clock(), watch)
        return outcome

    # (a) The checkpoint command: the one step whose every second counts.
    command = checkpoint_command(instance, settings)
    if command.note:
        outcome.notes.append(command.note)
    began = watch.now_ms()
    try:
        response = factory.ssm(region).send_command(
            DocumentName=command.document,
            InstanceIds=[instance_id],
            Parameters=command.parameters,
            TimeoutSeconds=110,
            Comment=f"trainctl spot {kind}: checkpoint"[:100],
        )
        outcome.command_id = str(response["Command"]["CommandId"])
        outcome.steps.append(Step("checkpoint-command", began, watch.now_ms() - began, "done", f"hook {command.hook}"))
    except ClientError as exc:
        outcome.steps.append(Step("checkpoint-command", began, watch.now_ms() - began, "failed", error_code(exc)))

    if saves_data(kind, settings):
        wait = checkpoint_wait(kind, settings, event_time=ensure_utc(event_time), now=clock())
        if outcome.command_id is not None and wait > timedelta(0):
            _await_checkpoint(factory, region, outcome, wait, watch, sleep)
        # One read of the attached volumes serves (b) and (c): their types, tags and persistence.
        volumes, unread = _attached_volumes(ec2, instance)
        _snapshot_data_volumes(ec2, instance, volumes, settings, interruption_id, outcome, watch)
        _keep_persistent(ec2, instance, volumes, unread, outcome, watch, settings.scope_tag)
    else:
        outcome.notes.append("rebalance recommendation: checkpoint only (TRAINCTL_SPOT_REBALANCE_ACTION=checkpoint)")
    _record_and_tell(factory, settings, outcome, clock(), watch)
    return outcome


def _await_checkpoint(
    factory: ClientFactory,
    region: str,
    outcome: SpotOutcome,
    wait: timedelta,
    watch: Stopwatch,
    sleep: Callable[[float], None],
) -> None:
    began = watch.now_ms()
    deadline = began + wait.total_seconds() * 1000
    status = "Pending"
    assert outcome.command_id is not None
    while True:
        try:
            invocation = factory.ssm(region).get_command_invocation(
                CommandId=outcome.command_id, InstanceId=outcome.instance_id
            )
            status = str(invocation.get("Status"))
        except ClientError as exc:
            if error_code(exc) != "InvocationDoesNotExist":
                status = error_code(exc)
                break
        if status in _COMMAND_DONE or watch.now_ms() >= deadline:
            break
        sleep(1.0)
    done = status == "Success"
    outcome.steps.append(
        Step("checkpoint-wait", began, watch.now_ms() - began, "done" if done else "failed", f"command {status}")
    )


def _snapshot_data_volumes(
    ec2: EC2Client,
    instance: Instance,
    attached: list[Volume],
    settings: SpotSettings,
    interruption_id: str,
    outcome: SpotOutcome,
    watch: Stopwatch,
) -> None:
    began = watch.now_ms()
    wanted = data_volumes(instance)
    if not wanted:
        outcome.steps.append(Step("snapshot", began, 0.0, "skipped", "no data volumes attached"))
        return
    labels = snapshot_tags(instance, settings, interruption_id)
    devices = {d.volume_id: d.device_name for d in instance.block_devices}
    try:
        # One call, one crash-consistent point in time across every data volume.
        response = ec2.create_snapshots(
            InstanceSpecification={"InstanceId": instance.resource_id, "ExcludeBootVolume": True},
            Description=f"trainctl: spot {outcome.kind} of {instance.resource_id}",
            TagSpecifications=[
                {"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in labels.items()]}
            ],
        )
    except ClientError as exc:
        outcome.steps.append(Step("snapshot", began, watch.now_ms() - began, "failed", error_code(exc)))
        return
    volumes = {v.resource_id: v for v in attached}
    for snapshot in response.get("Snapshots", []):
        volume_id = str(snapshot.get("VolumeId", ""))
        volume = volumes.get(volume_id)
        outcome.snapshots.append(
            {
                "snapshot_id": str(snapshot["SnapshotId"]),
                "volume_id": volume_id,
                "device": devices.get(volume_id, ""),
                "size_gib": int(snapshot.get("VolumeSize", 0)),
                "volume_type": volume.volume_type if volume else "gp3",
            }
        )
    outcome.steps.append(
        Step("snapshot", began, watch.now_ms() - began, "done", f"{len(outcome.snapshots)} data volume(s)")
    )


def _attached_volumes(ec2: EC2Client, instance: Instance) -> tuple[list[Volume], str]:
    """The instance's volumes, or why they could not be read (the snapshot goes ahead without them)."""
    ids = [d.volume_id for d in instance.block_devices]
    if not ids:
        return [], ""
    try:
        found = ec2.describe_volumes(VolumeIds=ids).get("Volumes", [])
    except ClientError as exc:
        return [], error_code(exc)
    return [volume_from_api(instance.region, dict(v)) for v in found], ""


def _keep_persistent(
    ec2: EC2Client,
    instance: Instance,
    attached: list[Volume],
    unread: str,
    outcome: SpotOutcome,
    watch: Stopwatch,
    scope_tag: str,
) -> None:
    began = watch.now_ms()
    if unread:
        outcome.steps.append(Step("keep-persistent", began, 0.0, "failed", f"volumes unreadable: {unread}"))
        return
    keep = volumes_dying_with(instance, {v.resource_id: v for v in attached}, scope_tag)
    if not keep:
        outcome.steps.append(Step("keep-persistent", began, 0.0, "skipped", "no persistent volume would die with it"))
        return
    kept = keep_volumes(ec2, instance.resource_id, keep)
    outcome.kept_volumes = [volume_id for volume_id, _ in keep] if kept else []
    detail = ", ".join(volume_id for volume_id, _ in keep)
    outcome.steps.append(Step("keep-persistent", began, watch.now_ms() - began, "done" if kept else "failed", detail))


def _record_and_tell(
    factory: ClientFactory, settings: SpotSettings, outcome: SpotOutcome, at: datetime, watch: Stopwatch
) -> None:
    _owner_of_record(factory, settings, outcome)
    began = watch.now_ms()
    try:
        SpotLedger(factory.dynamodb(), settings.ledger_table).record(outcome, at)
        outcome.steps.append(Step("ledger", began, watch.now_ms() - began, "done"))
    except Exception as exc:  # the owner must still hear of it
        outcome.steps.append(Step("ledger", began, watch.now_ms() - began, "failed", str(exc)[:200]))
    if settings.topic_arn is None:
        return
    began = watch.now_ms()
    notice = interruption_notice(outcome)
    try:
        for owner in dict.fromkeys([outcome.owner or None, *outcome.also_tell]):
            owner_notice(factory, settings.topic_arn, replace(notice, owner=owner))
        owner = one_line(outcome.owner) if outcome.owner else "-"
        outcome.steps.append(Step("notify", began, watch.now_ms() - began, "done", f"owner {owner}"))
    except AwsAccessError as exc:
        outcome.steps.append(Step("notify", began, watch.now_ms() - began, "failed", exc.code))


def _owner_of_record(factory: ClientFactory, settings: SpotSettings, outcome: SpotOutcome) -> None:
    """After the work is saved: the record and the notice name the owner trainctl recorded, and the tag's owner
    hears of it too. A tag anyone may rewrite never takes an interruption away from its owner."""
    try:
        recorded = OwnersOfRecord(factory.dynamodb(), settings.ledger_table).read([outcome.instance_id])
    except AwsAccessError as exc:
        outcome.notes.append(f"the owner of record could not be read ({exc.code}): the tag's owner is told")
        return
    of_record = recorded.get(outcome.instance_id)
    if of_record is None or of_record == outcome.owner:
        return
    if outcome.owner:
        outcome.also_tell.append(outcome.owner)
        outcome.notes.append(
            f"its trainctl:owner tag says {one_line(outcome.owner, 64)}, trainctl recorded "
            f"{one_line(of_record, 64)}: both are told"
        )
    outcome.owner = of_record


def interruption_notice(outcome: SpotOutcome) -> Notice:
    failed = [s.name for s in outcome.steps if s.outcome == "failed"]
    title = f"trainctl spot {outcome.kind}: {outcome.instance_id}" + (
        f" ({', '.join(failed)} failed)" if failed else " (late: nothing saved)" if outcome.status == "late" else ""
    )
    # Every value below may carry text from a tag or an error: each is one escaped line, never a line of its own.
    lines = [
        f"{s.name}: {s.outcome} at +{s.at_ms:.0f} ms, took {s.took_ms:.0f} ms {one_line(s.detail)}".rstrip()
        for s in outcome.steps
    ]
    if outcome.snapshots:
        lines.append(
            "snapshots: " + ", ".join(one_line(f"{s['snapshot_id']} of {s['device']}") for s in outcome.snapshots)
        )
    if outcome.kept_volumes:
        lines.append("kept (DeleteOnTermination=false): " + ", ".join(one_line(v) for v in outcome.kept_volumes))
    lines.extend(one_line(note, 1000) for note in outcome.notes)
    steps = []
    if outcome.snapshots:
        steps.append("Restore from the snapshots above: trainctl resources graph shows what each was taken of.")
    if outcome.status == "late":
        steps.append("Nothing was checkpointed, snapshotted or kept for this warning, and it starts no recovery.")
    elif outcome.kind == "warning":
        steps.append("EC2 reclaims the instance in about two minutes: resume from the last checkpoint elsewhere.")
    if failed:
        steps.append("Some steps failed: the spot_interruption function's log says why.")
    return Notice(
        kind="spot",
        title=title,
        summary=f"EC2 sent a spot {one_line(outcome.kind)} for {outcome.instance_id} ({outcome.region}); trainctl did:",
        lines=tuple(lines),
        next_steps=tuple(steps),
        owner=outcome.owner or None,
        severity="critical" if failed else "warning",
        thread=f"trainctl-spot-{digest(outcome.instance_id)}",
        resources=(outcome.instance_id, *(one_line(s["snapshot_id"]) for s in outcome.snapshots)),
        facts={"region": outcome.region, "event_time": one_line(outcome.event_time or "")},
    )


# ---------------------------------------------------------------------------------------------------- recovery
