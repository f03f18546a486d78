"""A deterministic training fleet of any size, built in memory for the AWS-like endpoint (no API calls).

Per region, for N resources: 20 % instances, 50 % volumes, 30 % snapshots, all in scope
(`trainctl:managed=true`). A big account is mostly busy; about 2 % of it was forgotten:

- instances: 60 % running, 38 % stopped two days ago, 2 % stopped twenty days ago (candidates);
- volumes: 94 % attached, 4 % unattached (candidates), 2 % unattached with `trainctl:persistent=true`;
- snapshots: 96 % three days old, 4 % forty days old (candidates), one in four of these behind an AMI.

Ages are real timestamps in the past, so every tool judges them with its own clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.aws_like import Record, RegionFleet
from trainctl.core import tags

STOPPED_LONG_AGO = timedelta(days=20)
STOPPED_RECENTLY = timedelta(days=2)
OLD_SNAPSHOT = timedelta(days=40)
NEW_SNAPSHOT = timedelta(days=3)


@dataclass(frozen=True)
class FleetShape:
    instances: int
    volumes: int
    snapshots: int

    @classmethod
    def of(cls, resources: int) -> FleetShape:
        instances = resources // 5
        volumes = resources // 2
        return cls(instances, volumes, resources - instances - volumes)


@dataclass(frozen=True)
class Expected:
    """What an equivalent policy must find, by construction of the fleet."""

    stopped_long: int = 0
    unattached: int = 0
    old_snapshots: int = 0
    ami_snapshots: int = 0
    # What a sweep should act on: the above, less the old snapshots behind an AMI.
    candidate_ids: frozenset[str] = frozenset()

    def __add__(self, other: Expected) -> Expected:
        return Expected(
            self.stopped_long + other.stopped_long,
            self.unattached + other.unattached,
            self.old_snapshots + other.old_snapshots,
            self.ami_snapshots + other.ami_snapshots,
            self.candidate_ids | other.candidate_ids,
        )

    @property
    def actions(self) -> int:
        return len(self.candidate_ids)


def _tag_list(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in values.items()]


def _gmt(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S GMT")


def build_region(region: str, resources: int, now: datetime, *, seed: int = 0) -> tuple[RegionFleet, Expected]:
    shape = FleetShape.of(resources)
    fleet = RegionFleet()
    zone = f"{region}a"
    base = {tags.MANAGED: "true", tags.OWNER: "bench@example.com"}
    prefix = f"{seed:04x}"
    launched = now - timedelta(days=10)
    stopped_long = 0
    candidates: set[str] = set()
    instance_ids = []
    for n in range(shape.instances):
        instance_id = f"i-{prefix}{n:013x}"
        instance_ids.append(instance_id)
        bucket = n % 50
        if bucket == 0:
            state, reason = {"Code": 80, "Name": "stopped"}, f"User initiated ({_gmt(now - STOPPED_LONG_AGO)})"
            stopped_long += 1
            candidates.add(instance_id)
        elif bucket < 20:
            state, reason = {"Code": 80, "Name": "stopped"}, f"User initiated ({_gmt(now - STOPPED_RECENTLY)})"
        else:
            state, reason = {"Code": 16, "Name": "running"}, ""
        data: dict[str, Any] = {
            "InstanceId": instance_id,
            "ImageId": "ami-0abcdef1234567890",
            "State": state,
            "PrivateDnsName": "",
            "StateTransitionReason": reason,
            "InstanceType": "g5.xlarge" if n % 4 else "p4d.24xlarge",
            "LaunchTime": launched,
            "Placement": {"AvailabilityZone": zone, "Tenancy": "default"},
            "Monitoring": {"State": "disabled"},
            "Architecture": "x86_64",
            "RootDeviceType": "ebs",
            "RootDeviceName": "/dev/xvda",
            "VirtualizationType": "hvm",
            "BlockDeviceMappings": [],
            "Tags": _tag_list(base | {"Name": f"train-{n}"}),
        }
        if state["Name"] == "stopped":
            data["StateReason"] = {"Code": "Client.UserInitiatedShutdown", "Message": "User initiated shutdown"}
        fleet.instances[instance_id] = Record(data)
    unattached = 0
    for n in range(shape.volumes):
        volume_id = f"vol-{prefix}{n:013x}"
        bucket = n % 50
        values = dict(base)
        data = {
            "VolumeId": volume_id,
            "Size": 500,
            "VolumeType": "gp3",
            "Iops": 3000,
            "Throughput": 125,
            "Encrypted": True,
            "AvailabilityZone": zone,
            "CreateTime": launched,
            "MultiAttachEnabled": False,
        }
        if bucket >= 3 and instance_ids:
            instance_id = instance_ids[n % len(instance_ids)]
            data["State"] = "in-use"
            data["Attachments"] = [
                {
                    "AttachTime": launched,
                    "Device": f"/dev/sd{chr(ord('f') + n % 10)}",
                    "InstanceId": instance_id,
                    "State": "attached",
                    "VolumeId": volume_id,
                    "DeleteOnTermination": False,
                }
            ]
        else:
            data["State"] = "available"
            data["Attachments"] = []
            if bucket == 2:
                values[tags.PERSISTENT] = "true"
            else:
                unattached += 1
                candidates.add(volume_id)
        data["Tags"] = _tag_list(values)
        fleet.volumes[volume_id] = Record(data)
        for attachment in data["Attachments"]:
            mappings = fleet.instances[attachment["InstanceId"]].data["BlockDeviceMappings"]
            mappings.append(
                {
                    "DeviceName": "/dev/xvda" if not mappings else attachment["Device"],
                    "Ebs": {
                        "AttachTime": launched,
                        "DeleteOnTermination": False,
                        "Status": "attached",
                        "VolumeId": volume_id,
                    },
                }
            )
    old = behind_ami = 0
    for n in range(shape.snapshots):
        snapshot_id = f"snap-{prefix}{n:013x}"
        bucket = n % 25
        started = now - (OLD_SNAPSHOT if bucket == 0 else NEW_SNAPSHOT)
        fleet.snapshots[snapshot_id] = Record(
            {
                "SnapshotId": snapshot_id,
                "VolumeId": f"vol-{prefix}{n % max(1, shape.volumes):013x}",
                "State": "completed",
                "StartTime": started,
                "Progress": "100%",
                "OwnerId": "123456789012",
                "Description": "checkpoint",
                "VolumeSize": 500,
                "Encrypted": True,
                "StorageTier": "standard",
                "Tags": _tag_list(base),
            }
        )
        if bucket == 0:
            old += 1
            if (n // 25) % 4 != 0:
                candidates.add(snapshot_id)
            else:
                behind_ami += 1
                image_id = f"ami-{prefix}{n:013x}"
                fleet.images[image_id] = Record(
                    {
                        "ImageId": image_id,
                        "Name": f"train-image-{n}",
                        "State": "available",
                        "OwnerId": "123456789012",
                        "CreationDate": started.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        "Public": False,
                        "Architecture": "x86_64",
                        "ImageType": "machine",
                        "RootDeviceType": "ebs",
                        "RootDeviceName": "/dev/xvda",
                        "VirtualizationType": "hvm",
                        "BlockDeviceMappings": [
                            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id, "VolumeSize": 500}}
                        ],
                        "Tags": _tag_list(base),
                    }
                )
    return fleet, Expected(stopped_long, unattached, old, behind_ami, frozenset(candidates))


def build(
    resources: int, regions: tuple[str, ...], *, now: datetime | None = None
) -> tuple[dict[str, RegionFleet], Expected]:
    """`resources` in all, split evenly across `regions`."""
    at = now or datetime.now(UTC)
    fleets: dict[str, RegionFleet] = {}
    expected = Expected()
    for index, region in enumerate(regions):
        share = resources // len(regions) + (1 if index < resources % len(regions) else 0)
        fleets[region], found = build_region(region, share, at, seed=index)
        expected = expected + found
    return fleets, expected
