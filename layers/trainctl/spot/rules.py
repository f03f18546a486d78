"""Spot interruptions: pure decisions of what to save, from the instance, its volumes, the settings and the clock.

A warning comes about two minutes ahead and is best effort. The order is fixed: the checkpoint command first,
then one multi-volume snapshot of the data volumes, then DeleteOnTermination=false on persistent volumes,
then the ledger and the owner's message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from trainctl.core import tags
from trainctl.core.clock import ensure_utc, format_instant
from trainctl.core.protections import in_scope
from trainctl.core.resources import Instance
from trainctl.core.spot_settings import SpotSettings
from trainctl.core.text import one_line

EventKind = Literal["warning", "rebalance"]
# EC2 reclaims the instance about this long after the warning.
WARNING_LEAD = timedelta(minutes=2)
# What must be left after the checkpoint wait: the snapshot call, the persistence fix, and their retries.
SAVE_MARGIN = timedelta(seconds=40)
# A reclaim ends the instance about WARNING_LEAD after its warning; shutting down takes a few minutes more.
RECLAIM_WINDOW = timedelta(minutes=7)
GONE_STATES = frozenset({"shutting-down", "terminated"})
# EC2's StateReason when it takes spot capacity back; no person and no API call can give an instance this reason.
SPOT_RECLAIM_REASONS = frozenset({"Server.SpotInstanceTermination"})
# All a recovery execution is given: everything else comes from the ledger and from EC2.
RECOVERY_INPUT_FIELDS = ("instance_id",)
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$")


class RecoveryRefused(ValueError):
    """The recovery workflow may not relaunch this instance; nothing was launched."""


# Never compared nor hashed: eq=False spares the cold start making __eq__ and __hash__.
@dataclass(frozen=True, eq=False)
class CheckpointCommand:
    """The SSM command that tells a training job to checkpoint: document, parameters, hook."""

    document: str
    parameters: dict[str, list[str]]
    hook: str
    note: str = ""


def refusal(instance: Instance | None, settings: SpotSettings) -> str | None:
    """Why nothing may be done for this instance, or None when it is ours to save."""
    if instance is None:
        return "unknown instance: EC2 does not know it"
    if instance.lifecycle != "spot":
        return f"not a spot instance ({instance.lifecycle}): spot warnings are not for it"
    if instance.state in GONE_STATES:
        return f"instance already gone ({instance.state}): nothing left to checkpoint"
    if not in_scope(instance, settings.scope_tag):
        return f"out of scope: no {settings.scope_tag}=true"
    return None


def choose_hook(instance: Instance, settings: SpotSettings) -> tuple[str, str]:
    """The configured hook a tag asks for, else the default; a tag only ever selects a name from the set."""
    asked = instance.tags.get(tags.CHECKPOINT_HOOK)
    if asked is None:
        return settings.spot_default_hook, ""
    if asked in settings.spot_hooks:
        return asked, ""
    return settings.spot_default_hook, (
        f"{tags.CHECKPOINT_HOOK}={asked[:64]!r} is not a configured hook; ran {settings.spot_default_hook!r}"
    )


def checkpoint_s3_uri(settings: SpotSettings, instance_id: str) -> str:
    if not settings.spot_checkpoint_s3_uri:
        return ""
    return f"{settings.spot_checkpoint_s3_uri.rstrip('/')}/{instance_id}/"


def checkpoint_command(
    instance: Instance, settings: SpotSettings, *, mode: Literal["checkpoint", "resume"] = "checkpoint"
) -> CheckpointCommand:
    hook, note = choose_hook(instance, settings) if mode == "checkpoint" else (settings.spot_resume_hook, "")
    return CheckpointCommand(
        document=settings.spot_document,
        parameters={
            "Mode": [mode],
            "Signal": [settings.spot_signal],
            "PidFile": [settings.training_pid_file],
            "Hook": [hook],
            "CheckpointDir": [settings.spot_checkpoint_dir],
            "S3Uri": [checkpoint_s3_uri(settings, instance.resource_id)],
        },
        hook=hook,
        note=note,
    )


def warning_is_late(event_time: datetime, now: datetime, settings: SpotSettings) -> bool:
    """A warning older than its two-minute window and a delivery lag: the instance it spoke of is gone or spared."""
    return now - event_time > WARNING_LEAD + settings.spot_event_delivery_lag


def saves_data(kind: EventKind, settings: SpotSettings) -> bool:
    """A rebalance recommendation only checkpoints, unless configured to do everything."""
    return kind == "warning" or settings.spot_rebalance_action == "all"


def checkpoint_wait(kind: EventKind, settings: SpotSettings, *, event_time: datetime, now: datetime) -> timedelta:
    """How long the snapshot may wait for the checkpoint: never into the margin before the reclaim."""
    if kind != "warning":
        return settings.spot_checkpoint_wait
    left = event_time + WARNING_LEAD - SAVE_MARGIN - now
    return max(timedelta(0), min(settings.spot_checkpoint_wait, left))


def data_volumes(instance: Instance) -> list[str]:
    """Attached EBS volumes except the root: what CreateSnapshots takes with ExcludeBootVolume."""
    return [d.volume_id for d in instance.block_devices if d.device_name != instance.root_device_name]


def snapshot_tags(instance: Instance, settings: SpotSettings, interruption_id: str) -> dict[str, str]:
    values = {
        "Name": f"spot checkpoint of {instance.resource_id}",
        tags.SPOT_INSTANCE: instance.resource_id,
        tags.INTERRUPTION: interruption_id,
        settings.scope_tag: "true",
    }
    owner = instance.tags.get(tags.OWNER)
    if owner:
        values[tags.OWNER] = owner
    return values


def reclaim_warning(history: Sequence[Mapping[str, Any]], terminated_at: datetime) -> Mapping[str, Any] | None:
    """The handled terminate warning this termination followed, or None.

    Only a warning that said `terminate` counts (a stop or hibernate warning is not a reclaim), and only when
    the termination came within RECLAIM_WINDOW of it: a warning days earlier says nothing of why the instance
    ended now (a stop warning, a restart, and a sweep's termination a week later are not EC2 taking it back).
    """
    found: Mapping[str, Any] | None = None
    for entry in history:
        if entry.get("kind") != "warning" or entry.get("status") != "handled" or entry.get("action") != "terminate":
            continue
        try:
            warned_at = ensure_utc(datetime.fromisoformat(str(entry.get("event_time", ""))))
        except ValueError:
            continue
        if timedelta(0) <= terminated_at - warned_at <= RECLAIM_WINDOW:
            found = entry
    return found


def user_initiated(state_reason: str) -> bool:
    """EC2's `Client.*` state reasons: a person's (or the instance's own) shutdown, or a failed launch."""
    return state_reason.startswith("Client.")


def was_reclaimed(instance: Instance, warned: bool) -> bool:
    """EC2 took it back: a terminate warning came minutes before, and no one asked for the termination."""
    return warned and not user_initiated(instance.state_reason)


def _not_opted_in(instance: Instance, settings: SpotSettings) -> str | None:
    """What keeps an instance out of recovery whatever happened to it: not spot, out of scope, not opted in."""
    if instance.lifecycle != "spot":
        return "not a spot instance"
    if not in_scope(instance, settings.scope_tag):
        return f"out of scope: no {settings.scope_tag}=true"
    if not tags.opts_in(instance.tags.get(tags.RECOVER)):
        return f"no {tags.RECOVER}=true"
    return None


def recovery_refusal(instance: Instance | None, settings: SpotSettings, *, warned: bool) -> str | None:
    """`warned`: a handled terminate warning within RECLAIM_WINDOW before the termination (`reclaim_warning`)."""
    if instance is None:
        return "unknown instance"
    opted_out = _not_opted_in(instance, settings)
    if opted_out:
        return opted_out
    if user_initiated(instance.state_reason):
        return f"terminated by request ({instance.state_reason}), not reclaimed by EC2"
    if not was_reclaimed(instance, warned):
        window = int(RECLAIM_WINDOW.total_seconds() // 60)
        return f"no terminate warning in the {window} minutes before: not reclaimed by EC2"
    if settings.recovery_state_machine_arn is None:
        return "recovery is not deployed (no TRAINCTL_RECOVERY_STATE_MACHINE_ARN)"
    return None


def recovery_zones(lost_zone: str, available: Sequence[str]) -> list[str]:
    """The other zones of the region, in a stable order: the zone that just lost its capacity is skipped."""
    return sorted(z for z in available if z != lost_zone)


def recovery_is_late(warned_at: datetime, now: datetime, settings: SpotSettings) -> bool:
    """Recovery follows a reclaim at once: a warning older than the reclaim window and a delivery lag is history."""
    return now - warned_at > RECLAIM_WINDOW + settings.spot_event_delivery_lag


def recovery_instance_id(event: object) -> str:
    """The one thing a recovery execution is given; any other field is refused by name."""
    if not isinstance(event, Mapping):
        raise RecoveryRefused("the recovery input must be an object holding instance_id alone")
    for name in event:
        if name not in RECOVERY_INPUT_FIELDS:
            raise RecoveryRefused(
                f"unexpected field {one_line(name, 64)!r} in the recovery input: it holds instance_id alone, "
                "the workflow reads the rest from the spot handler's record"
            )
    instance_id = event.get("instance_id")
    if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
        raise RecoveryRefused(f"instance_id {one_line(instance_id, 64)!r} is not an instance id")
    return instance_id


def reclaimed_by_spot(instance: Instance) -> bool:
    """EC2 itself says it terminated the instance to take its spot capacity back."""
    return instance.state == "terminated" and instance.state_reason in SPOT_RECLAIM_REASONS


def plan_refusal(
    instance: Instance | None, warning: Mapping[str, Any] | None, settings: SpotSettings, *, now: datetime
) -> str | None:
    """Why the workflow may not relaunch this instance, from EC2's word and the spot handler's record alone.

    `warning`: the latest handled terminate warning the spot handler recorded for the instance.
    """
    if instance is None:
        return "unknown instance: EC2 does not know it"
    opted_out = _not_opted_in(instance, settings)
    if opted_out:
        return opted_out
    if not reclaimed_by_spot(instance):
        reason = one_line(instance.state_reason or "none", 64)
        return f"not reclaimed by EC2: {instance.state} with state reason {reason}"
    if warning is None:
        return "no handled terminate warning recorded for it: the spot handler saved nothing to restore"
    warned_at = ensure_utc(datetime.fromisoformat(str(warning["event_time"])))
    if recovery_is_late(warned_at, now, settings):
        return f"its warning ({format_instant(warned_at)}) is too old: recovery follows a reclaim at once"
    return None


def snapshot_refusal(instance_id: str, recorded: Mapping[str, Any], described: Mapping[str, Any] | None) -> str | None:
    """A snapshot the record names is restored only if it is the spot handler's checkpoint of that very instance."""
    snapshot_id = one_line(recorded.get("snapshot_id", ""), 64)
    if described is None:
        return f"snapshot {snapshot_id} is not in this account"
    labels = {str(t.get("Key")): str(t.get("Value")) for t in described.get("Tags", [])}
    if labels.get(tags.SPOT_INSTANCE) != instance_id:
        return f"snapshot {snapshot_id} is not tagged {tags.SPOT_INSTANCE}={instance_id}"
    if described.get("VolumeId") != recorded.get("volume_id"):
        return f"snapshot {snapshot_id} was not taken of the volume the record names"
    return None


def restore_mappings(snapshots: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """RunInstances' mappings that restore each data volume, and those that keep them once the instance runs.

    Restored with DeleteOnTermination=true, they die with a half-built instance; kept once it runs.
    """
    restorable = [s for s in snapshots if s.get("device")]
    launch = [
        {
            "DeviceName": s["device"],
            "Ebs": {"SnapshotId": s["snapshot_id"], "VolumeType": s["volume_type"], "DeleteOnTermination": True},
        }
        for s in restorable
    ]
    keep = [{"DeviceName": s["device"], "Ebs": {"DeleteOnTermination": False}} for s in restorable]
    return launch, keep
