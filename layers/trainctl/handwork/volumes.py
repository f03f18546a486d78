"""Volumes and snapshots by hand: create, attach, detach, delete, snapshot, restore, and what depends on what.

Each operation checks first and refuses with a reason; a refusal changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import error_code
from trainctl.aws.ec2 import find_volume
from trainctl.core import tags
from trainctl.core.permissions import needs
from trainctl.core.protections import is_persistent
from trainctl.core.resources import RegionInventory, Volume
from trainctl.handwork.instances import instance
from trainctl.handwork.refusals import NotFound, Refused

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Tags given at creation are authorised as ec2:CreateTags.
PERMISSIONS = needs(
    "ec2:AttachVolume",
    "ec2:CreateSnapshot",
    "ec2:CreateVolume",
    "ec2:CreateTags",
    "ec2:DeleteVolume",
    "ec2:DescribeSnapshots",
    "ec2:DetachVolume",
)


def volume(ec2: EC2Client, region: str, volume_id: str) -> Volume:
    found = find_volume(ec2, region, volume_id)
    if found is None:
        raise NotFound(f"no volume {volume_id} in {region}")
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
    iops: int | None = None,
    throughput_mibps: int | None = None,
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
    if iops is not None:
        extra["Iops"] = iops
    if throughput_mibps is not None:
        extra["Throughput"] = throughput_mibps
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
