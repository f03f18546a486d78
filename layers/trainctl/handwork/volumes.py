"""Volumes and snapshots by hand: create, attach, detach, delete, snapshot, restore, and what depends on what.

Each operation checks first and refuses with a reason; a refusal changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import error_code
from trainctl.aws.ec2 import find_volume, snapshot_from_api
from trainctl.core import tags
from trainctl.core.permissions import needs
from trainctl.core.protections import is_persistent
from trainctl.core.resources import Instance, RegionInventory, Snapshot, Volume
from trainctl.core.text import one_line
from trainctl.handwork.instances import instance
from trainctl.handwork.ownership import Problem, Waivers, other_owner, ownership
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
    "ec2:DescribeAvailabilityZones",
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
    if owner and owner.strip():
        labels[tags.OWNER] = owner.strip()
    extra: dict[str, Any] = {}
    if snapshot_id:
        extra["SnapshotId"] = snapshot_id
    if initialization_rate is not None:
        if not snapshot_id:
            raise Refused("an initialisation rate is for a volume restored from a snapshot: an empty one needs none")
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


def zone_names(ec2: EC2Client) -> tuple[str, ...]:
    """The zones this account may use in the client's region (Local and Wavelength Zones once opted in)."""
    return tuple(sorted(str(z["ZoneName"]) for z in ec2.describe_availability_zones()["AvailabilityZones"]))


def default_zone(ec2: EC2Client, region: str) -> str:
    """The region's first Availability Zone (us-east-1a), never a Local or Wavelength Zone ahead of it."""
    known = zone_names(ec2)
    return next((z for z in known if z.startswith(region) and len(z) == len(region) + 1), known[0])


def unknown_zone(ec2: EC2Client, region: str, zone: str) -> str | None:
    """Why a zone of the region's form is not one to create in (us-east-1z: the region has none such), or None."""
    known = zone_names(ec2)
    if zone in known:
        return None
    return f"--zone {one_line(zone, 64)}: {region} has no such zone for this account (its zones: {', '.join(known)})"


@dataclass(frozen=True)
class HandCheck:
    """What a hand operation on a volume found: what it would hurt, each with the waiver that allows it, if any.

    Made by the check functions below; the operation refuses while any problem is not waived.
    """

    volume: Volume
    instance: Instance
    problems: tuple[Problem, ...]
    waivers: Waivers

    @property
    def refusals(self) -> list[Problem]:
        return self.waivers.unwaived(self.problems)

    @property
    def waived(self) -> list[Problem]:
        return self.waivers.waived(self.problems)


def attach_problems(disk: Volume, machine: Instance, *, me: str | None) -> list[Problem]:
    """Pure: attaching gives the instance the volume's data and the volume the instance's writes; each must be
    the person's own, or waived by name. A zone or an attachment EC2 would refuse is refused first, in words."""
    if disk.availability_zone != machine.availability_zone:
        return [
            Problem(
                f"{disk.resource_id} is in {disk.availability_zone} and {machine.resource_id} in "
                f"{machine.availability_zone}: a volume attaches only in its own zone "
                "(snapshot it and restore it there)"
            )
        ]
    if disk.attachments:
        return [Problem(f"{disk.resource_id} is already attached to {disk.attachments[0].instance_id}")]
    return [
        *other_owner(machine, me, f"the owner of {machine.resource_id}"),
        *other_owner(disk, me, f"the owner of {disk.resource_id}"),
    ]


def check_attach(
    ec2: EC2Client, region: str, volume_id: str, instance_id: str, *, me: str | None, waivers: Waivers
) -> HandCheck:
    disk = volume(ec2, region, volume_id)
    machine = instance(ec2, region, instance_id)
    return HandCheck(disk, machine, tuple(attach_problems(disk, machine, me=me)), waivers)


def attach(ec2: EC2Client, check: HandCheck, device: str) -> None:
    if check.refusals:
        raise Refused(f"{check.volume.resource_id} not attached: {'; '.join(map(str, check.refusals))}")
    ec2.attach_volume(VolumeId=check.volume.resource_id, InstanceId=check.instance.resource_id, Device=device)


def is_root_of(disk: Volume, machine: Instance) -> bool:
    """The instance boots from it: its device is the instance's root device."""
    return bool(machine.root_device_name) and any(
        d.volume_id == disk.resource_id and d.device_name == machine.root_device_name for d in machine.block_devices
    )


def detach_problems(disk: Volume, holder: Instance, *, me: str | None, scope_tag: str) -> list[Problem]:
    """Pure: the protections a detach by hand goes through. The root volume of an instance that is not stopped
    is refused outright (no waiver: the instance would lose its disk under it); a volume outside the scope, or
    another owner's, or one attached to another owner's instance, needs the waiver that names it."""
    problems = []
    if is_root_of(disk, holder) and holder.state != "stopped":
        problems.append(
            Problem(
                f"{disk.resource_id} is the root volume of {holder.resource_id}, which is {one_line(holder.state)}: "
                "stop the instance first"
            )
        )
    problems += ownership(disk, me=me, scope_tag=scope_tag)
    problems += other_owner(holder, me, f"the owner of {holder.resource_id}")
    return problems


def check_detach(
    ec2: EC2Client, region: str, volume_id: str, *, me: str | None, scope_tag: str, waivers: Waivers
) -> HandCheck:
    disk = volume(ec2, region, volume_id)
    if not disk.attachments:
        raise Refused(f"{volume_id} is not attached")
    holder = instance(ec2, region, disk.attachments[0].instance_id)
    return HandCheck(disk, holder, tuple(detach_problems(disk, holder, me=me, scope_tag=scope_tag)), waivers)


def detach(ec2: EC2Client, check: HandCheck, *, force: bool) -> str:
    if check.refusals:
        raise Refused(f"{check.volume.resource_id} not detached: {'; '.join(map(str, check.refusals))}")
    holder = check.instance.resource_id
    ec2.detach_volume(VolumeId=check.volume.resource_id, InstanceId=holder, Force=force)
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
    extra: dict[str, Any] = {}
    # EC2 refuses a tag specification without tags: an untagged volume's snapshot is made with none.
    if labels:
        extra["TagSpecifications"] = [
            {"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in labels.items()]}
        ]
    created = ec2.create_snapshot(VolumeId=volume_id, Description=description, **extra)
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


def find_snapshot(ec2: EC2Client, region: str, snapshot_id: str) -> Snapshot:
    """The snapshot as trainctl reads it: its size, and the tags that say whose it is and whether it is in scope
    (a restore copies its data to whoever asks)."""
    try:
        found = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    except ClientError as exc:
        if error_code(exc).startswith("InvalidSnapshot"):
            raise NotFound(f"no snapshot {snapshot_id} in {region}") from None
        raise
    if not found:
        raise NotFound(f"no snapshot {snapshot_id} in {region}")
    return snapshot_from_api(region, dict(found[0]))


def snapshot_size(ec2: EC2Client, region: str, snapshot_id: str) -> int:
    """The size in GiB a volume restored from the snapshot has (and at least needs)."""
    return max(1, find_snapshot(ec2, region, snapshot_id).volume_size_gib)


def restore(
    ec2: EC2Client,
    snapshot_id: str,
    *,
    size_gib: int,
    zone: str,
    volume_type: str,
    owner: str | None,
    scope_tag: str,
    initialization_rate: int | None,
    iops: int | None = None,
    throughput_mibps: int | None = None,
) -> str:
    return create_volume(
        ec2,
        size_gib=size_gib,
        volume_type=volume_type,
        zone=zone,
        persistent=False,
        owner=owner,
        scope_tag=scope_tag,
        snapshot_id=snapshot_id,
        initialization_rate=initialization_rate,
        iops=iops,
        throughput_mibps=throughput_mibps,
    )
