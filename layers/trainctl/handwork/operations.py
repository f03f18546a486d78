"""What engineers do by hand (volumes, snapshots, instances), under the same safety model as the automation.

Each operation checks first and refuses with a reason; a refusal changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from trainctl.aws.clients import error_code
from trainctl.aws.ec2 import find_instance, find_volume
from trainctl.aws.keep_volumes import keep_volumes
from trainctl.core import tags
from trainctl.core.errors import TrainctlError
from trainctl.core.protections import is_persistent, volumes_dying_with, younger_than_min_age
from trainctl.core.resources import Instance, RegionInventory, Volume
from trainctl.sweep.rules import Training, TrainingCheck

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


class Refused(TrainctlError):
    """The operation would break a protection (or cannot be done); nothing was changed."""


class NotFound(TrainctlError):
    """No such resource in this region."""


def volume(ec2: EC2Client, region: str, volume_id: str) -> Volume:
    found = find_volume(ec2, region, volume_id)
    if found is None:
        raise NotFound(f"no volume {volume_id} in {region}")
    return found


def instance(ec2: EC2Client, region: str, instance_id: str) -> Instance:
    found = find_instance(ec2, region, instance_id)
    if found is None:
        raise NotFound(f"no instance {instance_id} in {region}")
    return found


def create_volume(
    ec2: EC2Client,
    *,
    size_gib: int,
    volume_type: str,
    zone: str,
    persistent: bool,
    owner: str | None,
    scope_tag: str,
    snapshot_id: str | None = None,
    initialization_rate: int | None = None,
) -> str:
    labels = {scope_tag: "true"}
    if persistent:
        labels[tags.PERSISTENT] = "true"
    if owner:
        labels[tags.OWNER] = owner
    extra: dict[str, Any] = {}
    if snapshot_id:
        extra["SnapshotId"] = snapshot_id
    if initialization_rate:
        extra["VolumeInitializationRate"] = initialization_rate
    created = ec2.create_volume(
        Size=size_gib,
        VolumeType=volume_type,  # type: ignore[arg-type]
        AvailabilityZone=zone,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in labels.items()]}],
        **extra,
    )
    return str(created["VolumeId"])


def attach(ec2: EC2Client, region: str, volume_id: str, instance_id: str, device: str) -> None:
    disk = volume(ec2, region, volume_id)
    machine = instance(ec2, region, instance_id)
    if disk.availability_zone != machine.availability_zone:
        raise Refused(
            f"{volume_id} is in {disk.availability_zone} and {instance_id} in {machine.availability_zone}: "
            "a volume attaches only in its own zone (snapshot it and restore it there)"
        )
    if disk.attachments:
        raise Refused(f"{volume_id} is already attached to {disk.attachments[0].instance_id}")
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)


def detach(ec2: EC2Client, region: str, volume_id: str, *, force: bool) -> str:
    disk = volume(ec2, region, volume_id)
    if not disk.attachments:
        raise Refused(f"{volume_id} is not attached")
    holder = disk.attachments[0].instance_id
    ec2.detach_volume(VolumeId=volume_id, InstanceId=holder, Force=force)
    return holder


def delete_volume(ec2: EC2Client, region: str, volume_id: str, *, force: bool) -> Volume:
    disk = volume(ec2, region, volume_id)
    if disk.attachments:
        raise Refused(f"{volume_id} is attached to {disk.attachments[0].instance_id}: detach it first")
    if is_persistent(disk.tags) and not force:
        raise Refused(f"{volume_id} is tagged {tags.PERSISTENT}: deleting it needs --force (and a confirmation)")
    ec2.delete_volume(VolumeId=volume_id)
    return disk


def snapshot(ec2: EC2Client, region: str, volume_id: str, description: str) -> str:
    disk = volume(ec2, region, volume_id)
    labels = {k: v for k, v in disk.tags.items() if k in (tags.OWNER, tags.MANAGED, tags.PERSISTENT)}
    created = ec2.create_snapshot(
        VolumeId=volume_id,
        Description=description,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in labels.items()]}],
    )
    return str(created["SnapshotId"])


@dataclass
class Dependencies:
    images: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def warnings(self) -> list[str]:
        found = []
        if self.images:
            found.append(f"backs AMI {', '.join(sorted(self.images))}")
        if self.volumes:
            found.append(f"restored as {', '.join(sorted(self.volumes))}")
        return found


def snapshot_dependencies(inventory: RegionInventory) -> dict[str, Dependencies]:
    """Per snapshot: the AMIs that need it and the volumes restored from it."""
    dependencies: dict[str, Dependencies] = defaultdict(Dependencies)
    for image in inventory.images:
        for snapshot_id in image.snapshot_ids:
            dependencies[snapshot_id].images.append(image.image_id)
    for disk in inventory.volumes:
        if disk.snapshot_id:
            dependencies[disk.snapshot_id].volumes.append(disk.resource_id)
    return dependencies


def restore(
    ec2: EC2Client,
    region: str,
    snapshot_id: str,
    *,
    zone: str,
    volume_type: str,
    owner: str | None,
    scope_tag: str,
    initialization_rate: int | None,
) -> str:
    try:
        found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    except ClientError as exc:
        if error_code(exc).startswith("InvalidSnapshot"):
            raise NotFound(f"no snapshot {snapshot_id} in {region}") from None
        raise
    size = int(found[0].get("VolumeSize", 1))
    return create_volume(
        ec2,
        size_gib=size,
        volume_type=volume_type,
        zone=zone,
        persistent=False,
        owner=owner,
        scope_tag=scope_tag,
        snapshot_id=snapshot_id,
        initialization_rate=initialization_rate,
    )


# ---------------------------------------------------------------------------------------------------- instances

Verdict = Literal["terminate", "refuse"]


@dataclass(frozen=True)
class TerminationCheck:
    verdict: Verdict
    reasons: tuple[str, ...]
    keep: tuple[tuple[str, str], ...] = ()  # persistent volumes to keep: (volume id, device)


def check_termination(
    machine: Instance,
    volumes: list[Volume],
    training: TrainingCheck,
    *,
    now: datetime,
    min_age: timedelta,
    force: bool,
) -> TerminationCheck:
    """Pure: the safety model for a termination by hand. --force waives the minimum age and an unknown
    training state, never a persistent instance or a running training job."""
    reasons: list[str] = []
    if machine.state in ("shutting-down", "terminated"):
        reasons.append(f"already {machine.state}")
    if is_persistent(machine.tags):
        reasons.append(f"tagged {tags.PERSISTENT}")
    if younger_than_min_age(machine, min_age, now) and not force:
        reasons.append(f"younger than the minimum age {min_age} (use --force)")
    if training.status is Training.ACTIVE:
        reasons.append(f"a training job is running: {training.detail}")
    elif training.status is Training.UNKNOWN and not force:
        reasons.append(f"the training check gave no verdict ({training.detail}); --force to proceed anyway")
    keep = volumes_dying_with(machine, {v.resource_id: v for v in volumes})
    return TerminationCheck("refuse" if reasons else "terminate", tuple(reasons), keep)


def terminate(ec2: EC2Client, machine: Instance, check: TerminationCheck) -> None:
    if check.verdict != "terminate":
        raise Refused(f"{machine.resource_id} not terminated: {'; '.join(check.reasons)}")
    if check.keep and not keep_volumes(ec2, machine.resource_id, check.keep):
        raise Refused(
            f"{machine.resource_id} not terminated: DeleteOnTermination could not be cleared on a persistent volume"
        )
    ec2.terminate_instances(InstanceIds=[machine.resource_id])


# ------------------------------------------------------------------------------------------------------ graph


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str


def resource_graph(inventory: RegionInventory) -> tuple[dict[str, str], list[Edge]]:
    """Nodes (id -> label) and edges: instance -> attached volume -> snapshot -> AMI, snapshot -> restored volume."""
    nodes: dict[str, str] = {}
    edges: list[Edge] = []
    for machine in inventory.instances:
        nodes[machine.resource_id] = f"{machine.resource_id} {machine.instance_type} {machine.state}"
        for device in machine.block_devices:
            edges.append(Edge(machine.resource_id, device.volume_id, device.device_name))
    for disk in inventory.volumes:
        marker = " persistent" if is_persistent(disk.tags) else ""
        nodes[disk.resource_id] = f"{disk.resource_id} {disk.volume_type} {disk.size_gib} GiB{marker}"
        if disk.snapshot_id:
            edges.append(Edge(disk.snapshot_id, disk.resource_id, "restored as"))
    for snap in inventory.snapshots:
        nodes[snap.resource_id] = f"{snap.resource_id} {snap.volume_size_gib} GiB"
        if snap.volume_id:
            edges.append(Edge(snap.volume_id, snap.resource_id, "snapshot"))
    for image in inventory.images:
        nodes[image.image_id] = f"{image.image_id} AMI {image.state}"
        for snapshot_id in image.snapshot_ids:
            edges.append(Edge(snapshot_id, image.image_id, "backs"))
    for edge in edges:
        nodes.setdefault(edge.source, f"{edge.source} (gone)")
        nodes.setdefault(edge.target, f"{edge.target} (gone)")
    return nodes, edges


def graph_dot(nodes: dict[str, str], edges: list[Edge]) -> str:
    lines = ["digraph trainctl {", "  rankdir=LR;"]
    lines += [f'  "{n}" [label="{label}"];' for n, label in sorted(nodes.items())]
    lines += [f'  "{e.source}" -> "{e.target}" [label="{e.label}"];' for e in edges]
    return "\n".join([*lines, "}"])


def graph_mermaid(nodes: dict[str, str], edges: list[Edge]) -> str:
    def node_id(name: str) -> str:
        return name.replace("-", "_")

    lines = ["graph LR"]
    lines += [f'  {node_id(n)}["{label}"]' for n, label in sorted(nodes.items())]
    lines += [f"  {node_id(e.source)} -->|{e.label}| {node_id(e.target)}" for e in edges]
    return "\n".join(lines)
