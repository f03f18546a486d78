"""Every protection rule, in one place: what keeps a resource alive whoever asks.

The sweep, the hand commands, the spot handler and the pre-warm workflow all ask these functions, so a
rule changed here changes for every destructive path at once. Pure: tags, resources and instants in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from trainctl.core import tags
from trainctl.core.lifetimes import LAUNCH_ATTACH_SLACK, born_at
from trainctl.core.resources import BlockDevice, Instance, Resource, Snapshot, Volume


class Protection(StrEnum):
    """The names a protection is reported by (the README's safety model lists them)."""

    PERSISTENT = "persistent"
    MIN_AGE = "min-age"
    ATTACHED = "attached"
    TRAINING_ACTIVE = "training-active"
    # SSM does not manage the instance, so no training check can ever answer: kept unless decided on metrics.
    NOT_MANAGED_BY_SSM = "not-managed-by-ssm"
    AMI_BACKED = "ami-backed"
    LAUNCH_TEMPLATE = "launch-template"
    BACKUP_MANAGED = "backup-managed"
    MANAGED_ELSEWHERE = "managed-elsewhere"
    SHARED_SNAPSHOT = "shared-snapshot"
    TERMINATION_PROTECTED = "termination-protected"
    UNREADABLE = "unreadable"
    CANNOT_STOP = "cannot-stop"
    INSTANCE_STORE = "instance-store"
    # A volume the pre-warm workflow restored, unattached while EBS initialises it and the workflow waits.
    PREWARMING = "pre-warming"
    OUT_OF_SCOPE = "out-of-scope"
    BLAST_RADIUS = "blast-radius"


_BACKUP_DESCRIPTION = "This snapshot is created by the AWS Backup service"
_DLM_POLICY_TAG = "aws:dlm:lifecycle-policy-id"

VolumeToKeep = tuple[str, str]  # (volume id, device name)


def is_persistent(labels: Mapping[str, str]) -> bool:
    """A persistent resource is never deleted and never dies with an instance: any value but an explicit false,
    under the key in any case or a near miss of it (trainctl:persistant): a person meant to keep it."""
    exact, near = tags.persistent_keys(labels)
    return any(tags.protects(labels[key]) for key in (*exact, *near))


def persistent_key_warning(resource: Resource) -> str | None:
    """A near-miss key protects, and is named so that someone fixes it."""
    _, near = tags.persistent_keys(resource.tags)
    if not near:
        return None
    return f"{resource.resource_id}: tag key {near[0]!r} read as {tags.PERSISTENT}; please fix the key"


def in_scope(resource: Resource, scope_tag: str) -> bool:
    """In scope only when the scope tag says so explicitly: automation never guesses its way in."""
    return tags.opts_in(resource.tags.get(scope_tag))


def younger_than_min_age(resource: Resource, min_age: timedelta, now: datetime) -> bool:
    """True while nothing destructive may touch the resource; the newest creation signal counts."""
    return now - born_at(resource) < min_age


# The pre-warm workflow's execution limit (infra/prewarm.py): no run waits on a restored volume longer than this.
PREWARM_LONGEST_WAIT = timedelta(hours=14)


def is_prewarming(volume: Volume, now: datetime) -> bool:
    """A volume the pre-warm workflow restored and has not reported on yet (no trainctl:prewarmed-at), within the
    workflow's longest wait of EC2's own creation time: a role tag written by anyone protects for that bound only."""
    return (
        volume.tags.get(tags.ROLE) == tags.PREWARMED_VOLUME_ROLE
        and tags.PREWARMED_AT not in volume.tags
        and now - volume.create_time < PREWARM_LONGEST_WAIT
    )


def is_attached(volume: Volume) -> bool:
    return bool(volume.attachments)


def is_backup_managed(snapshot: Snapshot) -> bool:
    """AWS Backup and Data Lifecycle Manager keep their own snapshots: their retention, not ours."""
    return (
        tags.BACKUP_SOURCE in snapshot.tags
        or _DLM_POLICY_TAG in snapshot.tags
        or snapshot.description.startswith(_BACKUP_DESCRIPTION)
    )


def made_by_launch(instance: Instance, device: BlockDevice) -> bool:
    """Whether the instance's own launch created the volume: attached as the instance was first launched.

    AttachVolume needs a running or stopped instance, so a volume attached by hand comes well after the launch.
    """
    if device.attach_time is None:
        return False
    launched = instance.first_launch_time or instance.launch_time
    return abs(device.attach_time - launched) <= LAUNCH_ATTACH_SLACK


def must_outlive(instance: Instance, device: BlockDevice, volume: Volume | None, scope_tag: str) -> str | None:
    """Why a volume attached to the instance must not die with it, or None when it may.

    The launch's own volumes belong to the instance, tagged or not, and follow it as its launcher asked (kept,
    they would be orphans no sweep may delete), unless a tag on the volume itself says otherwise: persistent,
    explicitly out of scope, or another owner's. A volume attached later goes only when in scope, with the
    instance's owner, and not persistent. A volume trainctl cannot see is unknown, and unknown protects.
    """
    if volume is None:
        return "not in the inventory"
    if is_persistent(volume.tags):
        return "persistent"
    owner = volume.tags.get(tags.OWNER)
    if made_by_launch(instance, device):
        if _says_out_of_scope(volume, scope_tag):
            return "out of scope"
        if owner is not None and owner != instance.tags.get(tags.OWNER):
            return "owned by someone else"
        return None
    if not in_scope(volume, scope_tag):
        return "out of scope"
    if owner is None or owner != instance.tags.get(tags.OWNER):
        return "owned by someone else" if owner else "its owner is unknown"
    return None


def _says_out_of_scope(volume: Volume, scope_tag: str) -> bool:
    """The scope tag is there (under the key in any case) with anything but a yes: a person took it out."""
    written = [value for key, value in volume.tags.items() if key.casefold() == scope_tag.casefold()]
    return any(not tags.opts_in(value) for value in written)


def volumes_dying_with(instance: Instance, volumes: Mapping[str, Volume], scope_tag: str) -> tuple[VolumeToKeep, ...]:
    """Attached volumes that would die with the instance unless DeleteOnTermination is cleared first."""
    return tuple(
        (kept.volume_id, kept.device_name)
        for kept in volumes_left_behind(instance, volumes, scope_tag)
        if kept.clear_delete_on_termination
    )


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class LeftBehind(NamedTuple):
    """A volume that outlives its instance's termination, and why; the owner is told of each."""

    volume_id: str
    device_name: str
    why: str
    volume: Volume | None  # None when trainctl cannot see it
    # True when it is set to die with the instance: DeleteOnTermination must be cleared (and read back) first.
    clear_delete_on_termination: bool


def volumes_left_behind(instance: Instance, volumes: Mapping[str, Volume], scope_tag: str) -> tuple[LeftBehind, ...]:
    """Every attached volume a termination leaves behind: those kept from their fate, and those never set to go."""
    left = []
    for device in instance.block_devices:
        volume = volumes.get(device.volume_id)
        if not device.delete_on_termination:
            left.append(LeftBehind(device.volume_id, device.device_name, "not set to go with it", volume, False))
            continue
        why = must_outlive(instance, device, volume, scope_tag)
        if why is not None:
            left.append(LeftBehind(device.volume_id, device.device_name, why, volume, True))
    return tuple(left)
