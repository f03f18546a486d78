"""The resource model every capability shares: instances, volumes, snapshots, images and attachments.

A resource carries its account and its provider so that one model serves every account and provider trainctl
watches; today that is the account the code runs in, on AWS.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal, NamedTuple

from trainctl.core.clock import ensure_utc

ResourceType = Literal["instance", "volume", "snapshot"]

# Tags another controller writes on the instances it runs, most specific first: an EKS managed node group's
# instances also carry their Auto Scaling group's tag, and the owner should scale the node group.
CONTROLLER_TAGS: tuple[tuple[str, str], ...] = (
    ("eks:nodegroup-name", "EKS node group"),
    ("karpenter.sh/nodepool", "Karpenter node pool"),
    ("karpenter.sh/provisioner-name", "Karpenter provisioner"),
    ("aws:batch:compute-environment", "AWS Batch compute environment"),
    ("aws:elasticmapreduce:job-flow-id", "EMR cluster"),
    ("aws:autoscaling:groupName", "Auto Scaling group"),
    ("aws:ec2:fleet-id", "EC2 fleet"),
    ("aws:ec2spot:fleet-request-id", "Spot Fleet"),
)
# A spot request in these states still launches (or relaunches) instances; closed and cancelled ones do not.
LIVE_SPOT_REQUEST_STATES = ("open", "active", "disabled")

# EC2 writes the stop time into the transition reason, e.g. "User initiated (2026-11-20 10:00:00 GMT)".
_TRANSITION_TIME = re.compile(r"\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (?:GMT|UTC)\)")


# A NamedTuple for the cold start, as Attachment.
class BlockDevice(NamedTuple):
    """A volume as its instance lists it: the device it is attached at, and whether it dies with the instance."""

    volume_id: str
    device_name: str
    delete_on_termination: bool
    # When EC2 attached it: at the instance's first launch for a volume the launch itself created; None if unknown.
    attach_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class Instance:
    """An EC2 instance as trainctl reads it: state, type, times, volumes, tags and who else runs it."""

    resource_id: str
    region: str
    state: str
    instance_type: str
    launch_time: datetime
    availability_zone: str
    lifecycle: str = "on-demand"
    # LaunchTime moves with every start; the primary network interface stays attached since the first launch.
    first_launch_time: datetime | None = None
    stopped_since: datetime | None = None
    block_devices: tuple[BlockDevice, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    resource_type: ResourceType = "instance"
    root_device_name: str = ""
    state_reason: str = ""  # EC2's StateReason code, e.g. Server.SpotInstanceTermination
    # Who else runs this instance, in words with its id ("Auto Scaling group gpu-pool", "persistent spot request
    # sir-abcd1234"); None when nothing else does. A spot instance whose request could not be read names it
    # as unreadable here: unknown protects.
    controller: str | None = None
    # A spot instance's request: "one-time" or "persistent"; None when not spot or when the request is not known.
    spot_request_type: str | None = None
    spot_request_id: str | None = None
    instance_profile_arn: str = ""
    hibernation_configured: bool = False
    # Whether the instance type has instance-store volumes (lost on stop); None when it could not be read.
    instance_store: bool | None = None
    account: str = ""
    provider: str = "aws"

    @property
    def created(self) -> datetime:
        return self.launch_time


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class Attachment(NamedTuple):
    """A volume's attachment to an instance, as the volume lists it."""

    instance_id: str
    delete_on_termination: bool


@dataclass(frozen=True, slots=True)
class Volume:
    """An EBS volume as trainctl reads it: size, type, performance, attachments and tags."""

    resource_id: str
    region: str
    state: str
    size_gib: int
    volume_type: str
    create_time: datetime
    availability_zone: str
    attachments: tuple[Attachment, ...] = ()
    snapshot_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    resource_type: ResourceType = "volume"
    # Provisioned performance: gp3 pays above 3,000 IOPS and 125 MiB/s, io1/io2 for every IOPS.
    iops: int | None = None
    throughput_mibps: int | None = None
    account: str = ""  # EC2 does not say which account owns a volume: "" unless known
    provider: str = "aws"

    @property
    def created(self) -> datetime:
        return self.create_time


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An EBS snapshot as trainctl reads it: the volume it came from, its size and tags."""

    resource_id: str
    region: str
    state: str
    start_time: datetime
    volume_id: str | None
    volume_size_gib: int
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    resource_type: ResourceType = "snapshot"
    account: str = ""
    provider: str = "aws"

    @property
    def created(self) -> datetime:
        return self.start_time


class Image(NamedTuple):
    """An AMI and the snapshots it is made of: those snapshots must live while it does."""

    image_id: str
    region: str
    state: str
    snapshot_ids: frozenset[str]


Resource = Instance | Volume | Snapshot


# A NamedTuple for the cold start, as Attachment.
class RegionInventory(NamedTuple):
    """Everything trainctl read in one region, at one moment."""

    region: str
    instances: tuple[Instance, ...] = ()
    volumes: tuple[Volume, ...] = ()
    snapshots: tuple[Snapshot, ...] = ()
    images: tuple[Image, ...] = ()
    # Every snapshot any version of any launch template in the region restores.
    launch_template_snapshots: frozenset[str] = frozenset()

    def resources(self) -> Iterator[Resource]:
        yield from self.instances
        yield from self.volumes
        yield from self.snapshots

    @property
    def size(self) -> int:
        return len(self.instances) + len(self.volumes) + len(self.snapshots)


# A NamedTuple for the cold start, as Attachment.
class Guards(NamedTuple):
    """Protections read per resource, only for the few about to be acted on.

    `unreadable` maps a resource id to why a read failed: the caller counts such a resource as protected.
    An attribute EC2 would not answer (stop protection where it is not supported) counts as set: unknown protects.
    """

    termination_protected: frozenset[str] = frozenset()
    stop_protected: frozenset[str] = frozenset()
    shared_snapshots: frozenset[str] = frozenset()
    unreadable: Mapping[str, str] = MappingProxyType({})


def controller_from_tags(tags: dict[str, str]) -> str | None:
    """The controller that runs an instance, from the tags it writes on it; None when none does."""
    for key, label in CONTROLLER_TAGS:
        if key in tags:
            return f"{label} {tags[key]}".rstrip()
    return None


# Instances in these states can still cost money or hold data; terminated ones are history.
LIVE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")


def stopped_since(reason: str | None) -> datetime | None:
    if not reason:
        return None
    match = _TRANSITION_TIME.search(reason)
    if match is None:
        return None
    return ensure_utc(datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
