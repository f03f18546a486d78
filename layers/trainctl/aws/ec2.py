"""What exists: EC2 instances, EBS volumes, own snapshots and own AMIs, read in pages per region.

Beside each kind, the facts the sweep's protections need: who else runs an instance (the tags a controller
writes, a persistent spot request), whether its type has instance-store volumes, the snapshots launch templates
restore; and, for the few resources about to be acted on, termination and stop protection and snapshot sharing.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import zip_longest
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws.clients import access_error, error_code
from trainctl.core import tags
from trainctl.core.clock import ensure_utc
from trainctl.core.permissions import needs
from trainctl.core.resources import (
    LIVE_INSTANCE_STATES,
    LIVE_SPOT_REQUEST_STATES,
    Attachment,
    BlockDevice,
    Guards,
    Image,
    Instance,
    RegionInventory,
    Snapshot,
    Volume,
    controller_from_tags,
    stopped_since,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import InstanceAttributeNameType

PERMISSIONS = needs(
    # What exists, read in pages.
    "ec2:DescribeInstances",
    "ec2:DescribeVolumes",
    "ec2:DescribeSnapshots",
    "ec2:DescribeImages",
    # Facts beside them: spot requests, instance-store types, the snapshots launch templates restore.
    "ec2:DescribeSpotInstanceRequests",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplates",
    "ec2:DescribeLaunchTemplateVersions",
    # Auto Scaling's older launch configurations restore snapshots too.
    "autoscaling:DescribeLaunchConfigurations",
    # Guards of the few resources about to be acted on.
    "ec2:DescribeInstanceAttribute",
    "ec2:DescribeSnapshotAttribute",
)

# DescribeInstanceTypes takes at most 100 types a call; a refusal names the types it does not know.
_TYPE_NAME = re.compile(r"[\w.-]+\.[\w-]+")
_INSTANCE_TYPES_PER_CALL = 100
# Per-resource guard reads: a few at once; past the bucket's burst, EC2's refill rate (20 a second) sets the pace.
GUARD_WORKERS = 8
_TEMPLATE_WORKERS = 4


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class SpotRequest(NamedTuple):
    """A spot instance request: its id, whether it relaunches (persistent) and its state."""

    request_id: str
    type: str  # "one-time" or "persistent"
    state: str


# Never compared nor hashed: eq=False spares the cold start making __eq__ and __hash__.
@dataclass(frozen=True, slots=True, eq=False)
class SpotRequests:
    """A region's spot requests by instance and by id; `unreadable` says why they could not be read."""

    by_instance: dict[str, SpotRequest] = field(default_factory=dict)
    by_id: dict[str, SpotRequest] = field(default_factory=dict)
    unreadable: str | None = None

    def of(self, instance_id: str, request_id: str | None) -> SpotRequest | None:
        if request_id and request_id in self.by_id:
            return self.by_id[request_id]
        return self.by_instance.get(instance_id)


def _spot_facts(
    instance_id: str, raw: dict[str, Any], requests: SpotRequests | None
) -> tuple[str | None, str | None, str | None]:
    """(controller, request type, request id) of a spot instance; no controller for a one-time request."""
    request_id = str(raw["SpotInstanceRequestId"]) if raw.get("SpotInstanceRequestId") else None
    if requests is None:
        return None, None, request_id
    request = requests.of(instance_id, request_id)
    if request is not None:
        persistent = request.type == "persistent" and request.state in LIVE_SPOT_REQUEST_STATES
        controller = f"persistent spot request {request.request_id}" if persistent else None
        return controller, request.type, request.request_id
    if requests.unreadable is not None:
        # Unknown protects: the request may be persistent and relaunch what the sweep stops or terminates.
        named = request_id or "of unknown id"
        return f"spot request {named} (its type could not be read: {requests.unreadable})", None, request_id
    # Open, active and disabled requests are always listed: one not found relaunches nothing.
    return None, None, request_id


def first_launch_time(raw: dict[str, Any]) -> datetime | None:
    """When the instance was first launched: its primary network interface is attached then and never detached,
    while LaunchTime moves with every start. None when EC2 does not say."""
    for interface in raw.get("NetworkInterfaces", []):
        attachment = interface.get("Attachment", {})
        if attachment.get("DeviceIndex") == 0 and attachment.get("AttachTime"):
            return ensure_utc(attachment["AttachTime"])
    return None


def instance_from_api(
    region: str,
    raw: dict[str, Any],
    *,
    account: str = "",
    spot_requests: SpotRequests | None = None,
    instance_store: bool | None = None,
) -> Instance:
    """One instance from DescribeInstances; spot request facts only when the region's requests are given."""
    devices = tuple(
        BlockDevice(
            volume_id=str(mapping["Ebs"]["VolumeId"]),
            device_name=str(mapping.get("DeviceName", "")),
            delete_on_termination=bool(mapping["Ebs"].get("DeleteOnTermination", False)),
            attach_time=ensure_utc(mapping["Ebs"]["AttachTime"]) if mapping["Ebs"].get("AttachTime") else None,
        )
        for mapping in raw.get("BlockDeviceMappings", [])
        if "Ebs" in mapping and "VolumeId" in mapping["Ebs"]
    )
    state = str(raw["State"]["Name"])
    instance_id = str(raw["InstanceId"])
    lifecycle = str(raw.get("InstanceLifecycle", "on-demand"))
    tag_map = tags.tag_map(raw.get("Tags"))
    controller = controller_from_tags(tag_map)
    spot_controller, spot_type, spot_id = (
        _spot_facts(instance_id, raw, spot_requests) if lifecycle == "spot" else (None, None, None)
    )
    return Instance(
        resource_id=instance_id,
        region=region,
        state=state,
        instance_type=str(raw.get("InstanceType", "unknown")),
        launch_time=ensure_utc(raw["LaunchTime"]),
        availability_zone=str(raw.get("Placement", {}).get("AvailabilityZone", "")),
        lifecycle=lifecycle,
        first_launch_time=first_launch_time(raw),
        # No time in the state reason: unknown, never guessed from the launch time.
        stopped_since=stopped_since(raw.get("StateTransitionReason")) if state == "stopped" else None,
        block_devices=devices,
        tags=tag_map,
        root_device_name=str(raw.get("RootDeviceName", "")),
        state_reason=str(raw.get("StateReason", {}).get("Code", "")),
        controller=controller or spot_controller,
        spot_request_type=spot_type,
        spot_request_id=spot_id,
        instance_profile_arn=str(raw.get("IamInstanceProfile", {}).get("Arn", "")),
        hibernation_configured=bool(raw.get("HibernationOptions", {}).get("Configured", False)),
        instance_store=instance_store,
        account=account,
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
        account=str(raw.get("OwnerId", "")),
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
_MISSING_TEMPLATE = (
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateName.NotFoundException",
    "InvalidLaunchTemplateId.VersionNotFound",
)


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
            return instance_from_api(region, dict(raw), account=str(reservation.get("OwnerId", "")))
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
    """Reads one region through paginators and server-side filters; never one call per resource.

    Instance types are read once per distinct type and kept for the inventory's life (they do not change).
    """

    def __init__(self, ec2: EC2Client, region: str, autoscaling: Any = None) -> None:
        self._ec2 = ec2
        self._region = region
        # Without it, launch configurations are not read: only the command line's inventories go without.
        self._autoscaling = autoscaling
        self._instance_store: dict[str, bool | None] = {}
        self._types_lock = threading.Lock()

    def instances(self) -> Iterator[Instance]:
        pages = self._ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": list(LIVE_INSTANCE_STATES)}],
            PaginationConfig={"PageSize": 1000},
        )
        spot: SpotRequests | None = None
        for page in pages:
            found = [
                (str(reservation.get("OwnerId", "")), dict(raw))
                for reservation in page.get("Reservations", [])
                for raw in reservation.get("Instances", [])
            ]
            if spot is None and any(raw.get("InstanceLifecycle") == "spot" for _, raw in found):
                spot = self.spot_requests()  # once a read, and only where there are spot instances
            stores = self.instance_store({str(raw["InstanceType"]) for _, raw in found if raw.get("InstanceType")})
            for owner, raw in found:
                yield instance_from_api(
                    self._region,
                    raw,
                    account=owner,
                    spot_requests=spot,
                    instance_store=stores.get(str(raw.get("InstanceType", ""))),
                )

    def spot_requests(self) -> SpotRequests:
        """The region's spot requests in one paginated read; a refusal is remembered, not raised."""
        by_instance: dict[str, SpotRequest] = {}
        by_id: dict[str, SpotRequest] = {}
        try:
            pages = self._ec2.get_paginator("describe_spot_instance_requests").paginate(
                PaginationConfig={"PageSize": 1000}
            )
            for page in pages:
                for raw in page.get("SpotInstanceRequests", []):
                    request = SpotRequest(
                        request_id=str(raw.get("SpotInstanceRequestId", "")),
                        type=str(raw.get("Type", "")),
                        state=str(raw.get("State", "")),
                    )
                    by_id[request.request_id] = request
                    if raw.get("InstanceId"):
                        by_instance[str(raw["InstanceId"])] = request
        except ClientError as exc:
            return SpotRequests(unreadable=error_code(exc))
        return SpotRequests(by_instance=by_instance, by_id=by_id)

    def instance_store(self, instance_types: Iterable[str]) -> dict[str, bool | None]:
        """Whether each type has instance-store volumes; None where EC2 would not say."""
        wanted = set(instance_types)
        with self._types_lock:
            missing = sorted(t for t in wanted if t not in self._instance_store)
        for start in range(0, len(missing), _INSTANCE_TYPES_PER_CALL):
            read = self._read_instance_types(missing[start : start + _INSTANCE_TYPES_PER_CALL])
            with self._types_lock:
                self._instance_store.update(read)
        with self._types_lock:
            return {t: self._instance_store.get(t) for t in wanted}

    def _read_instance_types(self, instance_types: list[str]) -> dict[str, bool | None]:
        result: dict[str, bool | None] = dict.fromkeys(instance_types)
        try:
            pages = self._ec2.get_paginator("describe_instance_types").paginate(
                InstanceTypes=instance_types,  # type: ignore[arg-type]  # any type name an instance reports
            )
            for page in pages:
                for item in page.get("InstanceTypes", []):
                    supported = item.get("InstanceStorageSupported")
                    result[str(item.get("InstanceType"))] = None if supported is None else bool(supported)
        except ClientError as exc:
            if error_code(exc) == "InvalidInstanceType" and len(instance_types) > 1:
                # One name EC2 does not know refuses the whole call. EC2 names them ("...do not exist: [a, b]"):
                # ask again without those, or else for each type alone.
                named = set(_TYPE_NAME.findall(str(exc.response.get("Error", {}).get("Message", ""))))
                unknown = named & set(instance_types)
                rest = [t for t in instance_types if t not in unknown]
                for part in [rest] if unknown else [[t] for t in instance_types]:
                    if part:
                        result.update(self._read_instance_types(part))
            # Otherwise unknown, remembered as such: not asked again on every page.
        return result

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

    def launch_template_snapshots(self) -> frozenset[str]:
        """Every snapshot any version of any launch template restores.

        Never silently empty: a refusal raises AwsAccessError, so that a sweep stops rather than delete a
        snapshot a template still needs.
        """
        try:
            pages = self._ec2.get_paginator("describe_launch_templates").paginate(PaginationConfig={"PageSize": 200})
            template_ids = [str(t["LaunchTemplateId"]) for page in pages for t in page.get("LaunchTemplates", [])]
        except ClientError as exc:
            raise access_error("DescribeLaunchTemplates", exc) from exc
        configured = self._launch_configuration_snapshots()
        if not template_ids:
            return frozenset(configured)
        with ThreadPoolExecutor(max_workers=min(_TEMPLATE_WORKERS, len(template_ids))) as pool:
            return frozenset(configured).union(*pool.map(self._template_snapshots, template_ids))

    def _launch_configuration_snapshots(self) -> set[str]:
        if self._autoscaling is None:
            return set()
        found: set[str] = set()
        try:
            for page in self._autoscaling.get_paginator("describe_launch_configurations").paginate():
                for configuration in page.get("LaunchConfigurations", []):
                    for mapping in configuration.get("BlockDeviceMappings", []):
                        snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
                        if snapshot_id:
                            found.add(str(snapshot_id))
        except ClientError as exc:
            raise access_error("DescribeLaunchConfigurations", exc) from exc
        return found

    def _template_snapshots(self, template_id: str) -> set[str]:
        found: set[str] = set()
        try:
            # No Versions: every version, not only $Default and $Latest.
            pages = self._ec2.get_paginator("describe_launch_template_versions").paginate(
                LaunchTemplateId=template_id, PaginationConfig={"PageSize": 200}
            )
            for page in pages:
                for version in page.get("LaunchTemplateVersions", []):
                    for mapping in version.get("LaunchTemplateData", {}).get("BlockDeviceMappings", []):
                        snapshot_id = mapping.get("Ebs", {}).get("SnapshotId")
                        if snapshot_id:
                            found.add(str(snapshot_id))
        except ClientError as exc:
            if error_code(exc) in _MISSING_TEMPLATE:
                return found  # deleted since it was listed: it restores nothing any more
            raise access_error("DescribeLaunchTemplateVersions", exc) from exc
        return found

    def read(self) -> RegionInventory:
        # The kinds at once: each page's round trip overlaps with the parsing of the others' pages.
        with ThreadPoolExecutor(max_workers=5) as pool:
            instances = pool.submit(lambda: tuple(self.instances()))
            volumes = pool.submit(lambda: tuple(self.volumes()))
            snapshots = pool.submit(lambda: tuple(self.snapshots()))
            images = pool.submit(lambda: tuple(self.images()))
            templates = pool.submit(self.launch_template_snapshots)
            return RegionInventory(
                region=self._region,
                instances=instances.result(),
                volumes=volumes.result(),
                snapshots=snapshots.result(),
                images=images.result(),
                launch_template_snapshots=templates.result(),
            )


# Codes that mean EC2 does not know the attribute here (older endpoints, some emulators): unknown protects.
_UNSUPPORTED_ATTRIBUTE = frozenset(
    {"InvalidParameterValue", "InvalidParameter", "InvalidParameterCombination", "UnsupportedOperation"}
)


def _instance_attribute(ec2: EC2Client, instance_id: str, attribute: InstanceAttributeNameType) -> bool | str:
    """True or False as EC2 says; True when EC2 does not know the attribute; the reason when the read failed."""
    try:
        response = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=attribute)
    except ClientError as exc:
        if attribute == "disableApiStop" and error_code(exc) in _UNSUPPORTED_ATTRIBUTE:
            return True
        return f"{attribute} could not be read: {error_code(exc)}"
    except BotoCoreError as exc:
        return f"{attribute} could not be read: {type(exc).__name__}"  # a timeout protects, by name
    answer: dict[str, Any] = dict(response)
    value = (answer.get(attribute[0].upper() + attribute[1:]) or {}).get("Value")
    return True if value is None else bool(value)


def _shared(ec2: EC2Client, snapshot_id: str) -> bool | str:
    try:
        response = ec2.describe_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission")
    except ClientError as exc:
        return f"createVolumePermission could not be read: {error_code(exc)}"
    except BotoCoreError as exc:
        return f"createVolumePermission could not be read: {type(exc).__name__}"
    return bool(response.get("CreateVolumePermissions"))


def read_guards(
    ec2: EC2Client,
    instance_ids: Iterable[str],
    snapshot_ids: Iterable[str],
    *,
    max_workers: int = GUARD_WORKERS,
) -> Guards:
    """Termination and stop protection of instances and sharing of snapshots, one call per resource and attribute.

    Only for the few resources about to be acted on: EC2 has no batched read of these attributes.
    """
    instances = list(dict.fromkeys(instance_ids))
    snapshots = list(dict.fromkeys(snapshot_ids))
    instance_reads: list[tuple[str, str, Any]] = [
        *((i, "termination", lambda i=i: _instance_attribute(ec2, i, "disableApiTermination")) for i in instances),
        *((i, "stop", lambda i=i: _instance_attribute(ec2, i, "disableApiStop")) for i in instances),
    ]
    snapshot_reads: list[tuple[str, str, Any]] = [(s, "shared", lambda s=s: _shared(ec2, s)) for s in snapshots]
    # Taken in turn: EC2 throttles each API on its own, so both drain their own bucket at once.
    reads = [read for pair in zip_longest(instance_reads, snapshot_reads) for read in pair if read is not None]
    if not reads:
        return Guards()
    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(reads)))) as pool:
        answers = list(pool.map(lambda read: read[2](), reads))
    held: dict[str, set[str]] = {"termination": set(), "stop": set(), "shared": set()}
    unreadable: dict[str, str] = {}
    for (resource_id, kind, _), answer in zip(reads, answers, strict=True):
        if isinstance(answer, str):
            unreadable[resource_id] = f"{unreadable[resource_id]}; {answer}" if resource_id in unreadable else answer
        elif answer:
            held[kind].add(resource_id)
    return Guards(
        termination_protected=frozenset(held["termination"]),
        stop_protected=frozenset(held["stop"]),
        shared_snapshots=frozenset(held["shared"]),
        unreadable=unreadable,
    )
