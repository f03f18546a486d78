"""What exists: EC2 instances, EBS volumes, own snapshots and own AMIs, read in pages per region."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.core import tags
from trainctl.core.clock import ensure_utc
from trainctl.core.permissions import needs
from trainctl.core.resources import (
    LIVE_INSTANCE_STATES,
    Attachment,
    BlockDevice,
    Image,
    Instance,
    RegionInventory,
    Snapshot,
    Volume,
    stopped_since,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# What exists, read in pages.
PERMISSIONS = needs("ec2:DescribeInstances", "ec2:DescribeVolumes", "ec2:DescribeSnapshots", "ec2:DescribeImages")


def instance_from_api(region: str, raw: dict[str, Any]) -> Instance:
    devices = tuple(
        BlockDevice(
            volume_id=str(mapping["Ebs"]["VolumeId"]),
            device_name=str(mapping.get("DeviceName", "")),
            delete_on_termination=bool(mapping["Ebs"].get("DeleteOnTermination", False)),
        )
        for mapping in raw.get("BlockDeviceMappings", [])
        if "Ebs" in mapping and "VolumeId" in mapping["Ebs"]
    )
    state = str(raw["State"]["Name"])
    return Instance(
        resource_id=str(raw["InstanceId"]),
        region=region,
        state=state,
        instance_type=str(raw.get("InstanceType", "unknown")),
        launch_time=ensure_utc(raw["LaunchTime"]),
        availability_zone=str(raw.get("Placement", {}).get("AvailabilityZone", "")),
        lifecycle=str(raw.get("InstanceLifecycle", "on-demand")),
        stopped_since=stopped_since(raw.get("StateTransitionReason")) if state == "stopped" else None,
        block_devices=devices,
        tags=tags.tag_map(raw.get("Tags")),
        root_device_name=str(raw.get("RootDeviceName", "")),
        state_reason=str(raw.get("StateReason", {}).get("Code", "")),
    )


def volume_from_api(region: str, raw: dict[str, Any]) -> Volume:
    return Volume(
        resource_id=str(raw["VolumeId"]),
        region=region,
        state=str(raw["State"]),
        size_gib=int(raw.get("Size", 0)),
        volume_type=str(raw.get("VolumeType", "gp3")),
        create_time=ensure_utc(raw["CreateTime"]),
        availability_zone=str(raw.get("AvailabilityZone", "")),
        attachments=tuple(
            Attachment(
                instance_id=str(item["InstanceId"]),
                delete_on_termination=bool(item.get("DeleteOnTermination", False)),
            )
            for item in raw.get("Attachments", [])
            if item.get("State") in (None, "attaching", "attached", "busy")
        ),
        snapshot_id=str(raw["SnapshotId"]) if raw.get("SnapshotId") else None,
        tags=tags.tag_map(raw.get("Tags")),
        iops=int(raw["Iops"]) if raw.get("Iops") is not None else None,
        throughput_mibps=int(raw["Throughput"]) if raw.get("Throughput") is not None else None,
    )


def snapshot_from_api(region: str, raw: dict[str, Any]) -> Snapshot:
    return Snapshot(
        resource_id=str(raw["SnapshotId"]),
        region=region,
        state=str(raw.get("State", "completed")),
        start_time=ensure_utc(raw["StartTime"]),
        volume_id=str(raw["VolumeId"]) if raw.get("VolumeId") else None,
        volume_size_gib=int(raw.get("VolumeSize", 0)),
        description=str(raw.get("Description", "")),
        tags=tags.tag_map(raw.get("Tags")),
    )


def image_from_api(region: str, raw: dict[str, Any]) -> Image:
    return Image(
        image_id=str(raw["ImageId"]),
        region=region,
        state=str(raw.get("State", "available")),
        snapshot_ids=frozenset(
            str(mapping["Ebs"]["SnapshotId"])
            for mapping in raw.get("BlockDeviceMappings", [])
            if "Ebs" in mapping and mapping["Ebs"].get("SnapshotId")
        ),
    )


_MISSING_INSTANCE = ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")
_MISSING_VOLUME = ("InvalidVolume.NotFound", "InvalidVolumeID.Malformed")


def find_instance(ec2: EC2Client, region: str, instance_id: str) -> Instance | None:
    """One instance by id, or None when EC2 does not know it; other errors propagate."""
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING_INSTANCE:
            return None
        raise
    for reservation in reservations:
        for raw in reservation.get("Instances", []):
            return instance_from_api(region, dict(raw))
    return None


def find_volume(ec2: EC2Client, region: str, volume_id: str) -> Volume | None:
    try:
        found = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _MISSING_VOLUME:
            return None
        raise
    return volume_from_api(region, dict(found[0])) if found else None


class Ec2Inventory:
    """Reads one region through paginators and server-side filters; never one call per resource."""

    def __init__(self, ec2: EC2Client, region: str) -> None:
        self._ec2 = ec2
        self._region = region

    def instances(self) -> Iterator[Instance]:
        pages = self._ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}],
            PaginationConfig={"PageSize": 1000},
        )
        for page in pages:
            for reservation in page.get("Reservations", []):
                for raw in reservation.get("Instances", []):
                    yield instance_from_api(self._region, dict(raw))

    def volumes(self) -> Iterator[Volume]:
        pages = self._ec2.get_paginator("describe_volumes").paginate(PaginationConfig={"PageSize": 500})
        for page in pages:
            for raw in page.get("Volumes", []):
                yield volume_from_api(self._region, dict(raw))

    def snapshots(self) -> Iterator[Snapshot]:
        pages = self._ec2.get_paginator("describe_snapshots").paginate(
            OwnerIds=["self"], PaginationConfig={"PageSize": 1000}
        )
        for page in pages:
            for raw in page.get("Snapshots", []):
                yield snapshot_from_api(self._region, dict(raw))

    def images(self) -> Iterator[Image]:
        # Disabled and deprecated AMIs still need their snapshots: restoring them depends on it.
        pages = self._ec2.get_paginator("describe_images").paginate(
            Owners=["self"], IncludeDeprecated=True, IncludeDisabled=True
        )
        for page in pages:
            for raw in page.get("Images", []):
                yield image_from_api(self._region, dict(raw))

    def read(self) -> RegionInventory:
        # The four kinds at once: each page's round trip overlaps with the parsing of the others' pages.
        with ThreadPoolExecutor(max_workers=4) as pool:
            instances = pool.submit(lambda: tuple(self.instances()))
            volumes = pool.submit(lambda: tuple(self.volumes()))
            snapshots = pool.submit(lambda: tuple(self.snapshots()))
            images = pool.submit(lambda: tuple(self.images()))
            return RegionInventory(
                region=self._region,
                instances=instances.result(),
                volumes=volumes.result(),
                snapshots=snapshots.result(),
                images=images.result(),
            )
