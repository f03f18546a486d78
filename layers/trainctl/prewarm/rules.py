"""EBS pre-warm, pure: validate the request, decide the volume and the worker, size them, read the report.

Two paths: from S3, a worker copies the data onto the volume; from a snapshot, EBS initialises a new volume at a
provisioned rate (CreateVolume's VolumeInitializationRate) and no worker is launched.

No AWS here: trainctl.prewarm.run reads what these rules decide on. Everything else is the state machine's own
SDK calls (infra/prewarm_workflow.py). Validation happens before anything is launched: a refused request
changes nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.paths import MOUNT_POINT, S3_URI, escaping_keys
from trainctl.core.protections import in_scope, is_persistent
from trainctl.core.resources import Instance
from trainctl.core.text import one_line
from trainctl.core.volume_spec import initialization_rate_problem, volume_problem
from trainctl.prewarm.plan import CreateVolumeParameters, PrewarmPlan

# EC2's ids: 8 (older) or 17 lowercase hexadecimal characters after the prefix.
VOLUME_ID = r"^vol-(?:[0-9a-f]{8}|[0-9a-f]{17})$"
INSTANCE_ID = r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$"
SNAPSHOT_ID = r"^snap-(?:[0-9a-f]{8}|[0-9a-f]{17})$"
# A zone of a region (us-east-1a) or a Local Zone (us-west-2-lax-1a).
ZONE = r"^[a-z]{2}(-[a-z0-9]+)+-\d[a-z]$"
DEVICE = "/dev/sdf"
# Aim to finish the copy within this; a bigger worker is chosen when a smaller one would take longer.
TARGET_DURATION = timedelta(hours=1)
# The workflow waits on an initialisation at most this long (its polls, within the execution's 14 hours).
LONGEST_INITIALISATION = timedelta(hours=12)
DEFAULT_THROUGHPUT_MIBPS = {"gp3": 125, "gp2": 250, "io1": 500, "io2": 1000, "st1": 500, "sc1": 250, "standard": 90}


class InvalidRequest(ValueError):
    """The pre-warm request cannot be run; nothing was launched."""


class VolumeSpec(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    # None: the snapshot's own size (a volume restored from a snapshot is at least that big).
    size_gib: int | None = Field(default=None, ge=1, le=65536)
    volume_type: Literal["gp3", "gp2", "io1", "io2", "st1", "sc1"] = "gp3"
    zone: str = Field(pattern=ZONE)
    snapshot_id: str | None = Field(default=None, pattern=SNAPSHOT_ID)
    # MiB/s of provisioned-rate initialisation (CreateVolume's VolumeInitializationRate), for a snapshot restore.
    initialization_rate: int | None = Field(default=None, ge=100, le=300)
    iops: int | None = Field(default=None, ge=100, le=256000)
    throughput_mibps: int | None = Field(default=None, ge=125, le=2000)

    @model_validator(mode="after")
    def _rate_needs_a_snapshot(self) -> VolumeSpec:
        if self.initialization_rate is not None and self.snapshot_id is None:
            raise ValueError("initialization_rate applies only to a volume restored from a snapshot")
        if self.size_gib is None and self.snapshot_id is None:
            raise ValueError("size_gib is needed for a volume not restored from a snapshot")
        # The command line's own rules for what CreateVolume accepts of each type (a restore's size waits for
        # its snapshot: new_volume checks it again then).
        problem = volume_problem(
            self.volume_type, self.size_gib, self.iops, self.throughput_mibps
        ) or initialization_rate_problem(self.initialization_rate)
        if problem is not None:
            raise ValueError(problem)
        return self


class PrewarmRequest(BaseModel):
    """The workflow's input, checked before anything is launched."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    volume_id: str | None = Field(default=None, pattern=VOLUME_ID)
    volume: VolumeSpec | None = None
    # None: the snapshot path, where EBS fills the volume from its snapshot and no worker copies anything.
    s3_uri: str | None = Field(default=None, pattern=S3_URI, max_length=1100)
    mount_point: str = Field(default="/mnt/prewarm", pattern=MOUNT_POINT)
    instance_id: str | None = Field(default=None, pattern=INSTANCE_ID)
    snapshot: bool = False
    # Who asks: the `trainctl:owner` the caller goes by (the command line sends TRAINCTL_OWNER, else $USER).
    # An existing volume that names an owner is filled only for that owner.
    owner: str | None = Field(default=None, min_length=1, max_length=256)
    # A persistent volume is filled only when the request says so.
    force: bool = False

    @model_validator(mode="after")
    def _one_volume(self) -> PrewarmRequest:
        if (self.volume_id is None) == (self.volume is None):
            raise ValueError("give either volume_id or a volume spec to create one, not both or neither")
        if self.s3_uri is None:
            self._check_snapshot_path()
        return self

    def _check_snapshot_path(self) -> None:
        """Without an S3 source the volume is a new one, restored from a snapshot at a rate; nothing runs on it."""
        spec = self.volume
        if spec is None or spec.snapshot_id is None:
            raise ValueError("give s3_uri to copy from S3, or a volume spec with a snapshot_id to restore")
        if spec.initialization_rate is None:
            raise ValueError("a volume restored without s3_uri needs an initialization_rate (100 to 300 MiB/s)")
        if self.instance_id is not None:
            raise ValueError("instance_id is for copying from S3; a snapshot restore runs on no instance")
        if self.snapshot:
            raise ValueError("snapshot (after) is for copying from S3; a snapshot restore already has its snapshot")

    @property
    def source(self) -> str:
        """What the volume is pre-warmed from: the S3 prefix, else the snapshot (the validator sees to one)."""
        if self.s3_uri is not None:
            return self.s3_uri
        assert self.volume is not None and self.volume.snapshot_id is not None
        return self.volume.snapshot_id


@dataclass(frozen=True)
class WorkerType:
    name: str
    network_gbps: float  # sustained baseline, not the "up to" burst
    ebs_mbps: float  # EBS baseline throughput, MB/s

    @property
    def sustained_mib_per_second(self) -> float:
        return min(self.network_gbps * 1000 / 8, self.ebs_mbps) * 1_000_000 / 2**20


# AWS's documented baselines (EC2 instance type specifications: baseline network bandwidth, baseline EBS
# throughput). A t3.micro would sustain 0.064 Gbps: eight hours for a 200 GiB dataset.
WORKER_TYPES = (
    WorkerType("m6i.large", 0.781, 81.25),
    WorkerType("m6i.xlarge", 1.562, 156.25),
    WorkerType("m6i.2xlarge", 3.125, 312.5),
    WorkerType("m6i.4xlarge", 6.25, 625.0),
    WorkerType("m6i.8xlarge", 12.5, 1250.0),
)


def choose_worker(volume_throughput_mibps: float, data_bytes: int) -> tuple[WorkerType, str]:
    """The smallest worker that keeps up with the volume, or finishes the data within the target."""
    needed_for_time = data_bytes / 2**20 / TARGET_DURATION.total_seconds()
    needed = min(volume_throughput_mibps, max(needed_for_time, 1.0))
    for worker in WORKER_TYPES:
        if worker.sustained_mib_per_second >= needed:
            return worker, f"sustains {worker.sustained_mib_per_second:.0f} MiB/s, needs {needed:.0f} MiB/s"
    biggest = WORKER_TYPES[-1]
    return biggest, f"the largest worker sustains {biggest.sustained_mib_per_second:.0f} MiB/s of {needed:.0f}"


def volume_throughput(volume: Mapping[str, Any]) -> float:
    explicit = volume.get("Throughput")
    if explicit:
        return float(explicit)
    return float(DEFAULT_THROUGHPUT_MIBPS.get(str(volume.get("VolumeType", "gp3")), 125))


def parse_request(event: object) -> PrewarmRequest:
    try:
        return PrewarmRequest.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise InvalidRequest(f"pre-warm request refused: {problems}") from None


@dataclass(frozen=True)
class Target:
    """The volume to fill: the given one, or the one the workflow creates first."""

    volume_id: str | None
    create_volume: CreateVolumeParameters | None
    zone: str
    throughput_mibps: float
    read_all_blocks: bool


def new_volume(
    request: PrewarmRequest,
    spec: VolumeSpec,
    data_bytes: int,
    *,
    snapshot_gib: int | None = None,
    scope_tag: str = tags.MANAGED,
) -> Target:
    """A volume to create from the spec (its zone and snapshot known to exist), big enough for the data.

    `snapshot_gib`: the size of the snapshot it is restored from, which the volume must hold."""
    size = spec.size_gib or snapshot_gib
    if size is None:
        raise InvalidRequest("give size_gib for the new volume")
    if snapshot_gib is not None and size < snapshot_gib:
        raise InvalidRequest(f"snapshot {spec.snapshot_id} holds {snapshot_gib} GiB: a {size} GiB volume is too small")
    if size * 2**30 < data_bytes:
        raise InvalidRequest(f"{data_bytes} bytes from {request.source} do not fit {size} GiB")
    said = None if spec.size_gib else f"the snapshot's {size:,} GiB"
    problem = volume_problem(spec.volume_type, size, spec.iops, spec.throughput_mibps, size_said=said)
    if problem is not None:
        raise InvalidRequest(f"EBS would refuse the new volume: {problem}")
    create = CreateVolumeParameters(
        availability_zone=spec.zone,
        size=size,
        volume_type=spec.volume_type,
        snapshot_id=spec.snapshot_id or None,
        volume_initialization_rate=spec.initialization_rate or None,
        iops=spec.iops or None,
        throughput=spec.throughput_mibps or None,
        tag_specifications=[{"ResourceType": "volume", "Tags": creation_tags(request, scope_tag)}],
    )
    return Target(
        volume_id=None,
        create_volume=create,
        zone=spec.zone,
        throughput_mibps=float(spec.throughput_mibps or DEFAULT_THROUGHPUT_MIBPS[spec.volume_type]),
        read_all_blocks=spec.snapshot_id is not None and spec.initialization_rate is None,
    )


def creation_tags(request: PrewarmRequest, scope_tag: str) -> list[dict[str, str]]:
    """What a volume the workflow creates carries from its CreateVolume call.

    In scope from its first second, as trainctl's own, on either path: the sweep sees it if the execution fails
    (compensation never deletes a volume). Its owner is age_guard's to stamp, not the request's word. A restore
    also says it is one (trainctl:role=prewarmed-volume), which the sweep keeps while EBS initialises it."""
    marks = [{"Key": tags.PREWARMED_FROM, "Value": request.source}, {"Key": scope_tag, "Value": "true"}]
    if request.s3_uri is not None:
        return marks
    return [*marks, {"Key": tags.ROLE, "Value": tags.PREWARMED_VOLUME_ROLE}]


def existing_volume(volume_id: str, volume: Mapping[str, Any], *, s3_uri: str, data_bytes: int) -> Target:
    """The given volume (as DescribeVolumes shows it): available, and big enough for the data."""
    if volume["State"] != "available":
        raise InvalidRequest(f"volume {volume_id} is {volume['State']}, not available")
    if int(volume["Size"]) * 2**30 < data_bytes:
        raise InvalidRequest(f"{data_bytes} bytes under {s3_uri} do not fit {volume['Size']} GiB")
    return Target(
        volume_id=volume_id,
        create_volume=None,
        zone=str(volume["AvailabilityZone"]),
        throughput_mibps=volume_throughput(volume),
        # A restore reads slowly until every block was touched, unless it was created at a provisioned rate.
        read_all_blocks=bool(volume.get("SnapshotId")) and not volume.get("VolumeInitializationRate"),
    )


def check_volume_claim(volume_id: str, labels: Mapping[str, str], request: PrewarmRequest, scope_tag: str) -> None:
    """May this request fill the volume? In scope, the caller's (or nobody's yet), and persistent only if forced.

    The worker mounts the volume as root and syncs S3 onto it: only a volume trainctl may touch at all (the scope
    tag), that no one else owns, and that no one asked to keep as it is. A volume without `trainctl:owner` has
    not been claimed yet (age_guard stamps the owner minutes after a volume is created): it counts as new.
    Raises InvalidRequest naming the first problem.
    """
    if not tags.opts_in(labels.get(scope_tag)):
        raise InvalidRequest(f"volume {volume_id} is out of scope: no {scope_tag}=true")
    _claimed_by_caller("volume", volume_id, labels, request.owner)
    if is_persistent(labels) and not request.force:
        raise InvalidRequest(f"volume {volume_id} is tagged {tags.PERSISTENT}: pre-warm it only with force")


def check_given_instance(instance: Instance, zone: str, scope_tag: str, owner: str | None = None) -> None:
    """The caller's instance may do the work: in the volume's zone, running, in scope, and not someone else's."""
    if instance.availability_zone != zone:
        raise InvalidRequest(
            f"instance {instance.resource_id} is in {instance.availability_zone}, the volume in {zone}"
        )
    if instance.state != "running":
        raise InvalidRequest(f"instance {instance.resource_id} is {instance.state}, not running")
    if not in_scope(instance, scope_tag):
        # The pre-warm document runs as root; trainctl runs commands only where it was let in.
        raise InvalidRequest(f"instance {instance.resource_id} is out of scope: no {scope_tag}=true")
    _claimed_by_caller("instance", instance.resource_id, instance.tags, owner)


def check_snapshot_claim(
    snapshot_id: str, labels: Mapping[str, str], owner: str | None, *, own: bool, scope_tag: str
) -> None:
    """May this request copy a snapshot of this account into a new volume? In scope, and the caller's (or nobody's).

    The hand commands' rule with no waiver given (handwork/ownership.py): out of scope or another's, a person
    would need --allow-out-of-scope or --allow-other-owner, and a workflow takes neither. A snapshot's data is
    someone's. A snapshot another account shared or made public was given to read."""
    if not own:
        return
    if not tags.opts_in(labels.get(scope_tag)):
        raise InvalidRequest(f"snapshot {snapshot_id} is out of scope: no {scope_tag}=true")
    _claimed_by_caller("snapshot", snapshot_id, labels, owner)


def check_keys(s3_uri: str, keys: Sequence[str]) -> None:
    """The document syncs the prefix as root: a key that would land outside the mount point refuses the request."""
    prefix = s3_uri.removeprefix("s3://").partition("/")[2]
    escaping = escaping_keys(keys, prefix)
    if escaping:
        raise InvalidRequest(
            f"{len(escaping)} key(s) under {s3_uri} would be written outside the mount point, "
            f"for example {one_line(escaping[0], 80)}"
        )


def _claimed_by_caller(kind: str, resource_id: str, labels: Mapping[str, str], owner: str | None) -> None:
    holder = labels.get(tags.OWNER)
    if holder is not None and holder != owner:
        asked = f"the request's owner {one_line(owner, 64)}" if owner else "a request that names none"
        raise InvalidRequest(f"{kind} {resource_id} is owned by {one_line(holder, 64)}, not by {asked}")


def make_plan(
    request: PrewarmRequest,
    target: Target,
    *,
    data_bytes: int,
    objects: int,
    region: str,
    instance_profile_arn: str,
    scope_tag: str = tags.MANAGED,
) -> PrewarmPlan:
    """The plan for a checked request: the worker sized to the volume and the data, and the time it should take.

    From a snapshot there is no worker: the time is the snapshot's bytes at the provisioned rate."""
    if request.s3_uri is None:
        return _restore_plan(request, target, data_bytes=data_bytes, region=region, scope_tag=scope_tag)
    worker, why = choose_worker(target.throughput_mibps, data_bytes)
    rate = min(target.throughput_mibps, worker.sustained_mib_per_second)
    estimate = math.ceil(data_bytes / 2**20 / rate) if data_bytes else 0
    return PrewarmPlan(
        source=request.s3_uri,
        copies_from_s3=True,
        volume_id=target.volume_id,
        create_volume=target.create_volume,
        zone=target.zone,
        region=region,
        instance_id=request.instance_id,
        launch_worker=request.instance_id is None,
        instance_type=worker.name,
        sizing=why,
        instance_profile_arn=instance_profile_arn,
        device=DEVICE,
        s3_uri=request.s3_uri,
        mount_point=request.mount_point,
        read_all_blocks="true" if target.read_all_blocks else "false",
        snapshot=request.snapshot,
        data_bytes=data_bytes,
        objects=objects,
        estimated_seconds=estimate,
        scope_tag=scope_tag,
    )


def _restore_plan(
    request: PrewarmRequest, target: Target, *, data_bytes: int, region: str, scope_tag: str
) -> PrewarmPlan:
    spec = request.volume
    assert spec is not None and spec.initialization_rate is not None  # the request's own validator
    estimate = math.ceil(data_bytes / 2**20 / spec.initialization_rate)
    if estimate > LONGEST_INITIALISATION.total_seconds():
        raise InvalidRequest(
            f"{data_bytes} bytes of {spec.snapshot_id} at {spec.initialization_rate} MiB/s "
            f"take {estimate / 3600:.1f} h, "
            f"longer than the workflow waits ({LONGEST_INITIALISATION.total_seconds() / 3600:.0f} h): "
            "restore it with a higher rate, or without waiting (trainctl ebs restore --initialization-rate)"
        )
    return PrewarmPlan(
        source=request.source,
        copies_from_s3=False,
        volume_id=None,
        create_volume=target.create_volume,
        zone=target.zone,
        region=region,
        instance_id=None,
        launch_worker=False,
        instance_type=None,
        sizing=f"no worker: EBS initialises the volume at {spec.initialization_rate} MiB/s",
        instance_profile_arn="",
        device=DEVICE,
        s3_uri=None,
        mount_point=request.mount_point,
        read_all_blocks="false",
        snapshot=False,
        data_bytes=data_bytes,
        objects=0,
        estimated_seconds=estimate,
        scope_tag=scope_tag,
    )


class ReportRequest(BaseModel):
    """The report task's input, from the workflow: the command's output and what the plan said."""

    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

    output: str = Field(default="", max_length=48_000)  # GetCommandInvocation returns at most 24,000 characters
    source: str = Field(max_length=1024)
    started_at: str = Field(max_length=64)
    estimated_seconds: int = Field(default=0, ge=0)
    # The plan's scope tag key, which the snapshot taken after the copy carries.
    scope_tag: str | None = Field(default=None, min_length=1, max_length=128)


def report(
    output: str,
    *,
    source: str,
    started_at: str,
    finished_at: str,
    estimated_seconds: int,
    scope_tag: str | None = None,
) -> dict[str, Any]:
    """Tags for the volume from the document's JSON line; an empty or odd output is said, not guessed.

    The snapshot's tags add the scope tag: a pre-warm restores only an in-scope snapshot of this account, and the
    snapshot is taken so that the next volume is restored from it."""
    summary: dict[str, Any] = {}
    for line in reversed(output.strip().splitlines()):
        try:
            candidate = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(candidate, dict) and "bytes" in candidate:
            summary = candidate
            break
    figures: list[dict[str, str]] = []
    if summary:
        detail = f"{int(summary['bytes'])} bytes in {int(summary['seconds'])} s"
        figures = figure_tags(int(summary["bytes"]), float(summary["seconds"]))
    else:
        detail = "the worker reported no figures"
    # The tag values the workflow writes: where from, when, and how much in how long.
    recorded = [
        {"Key": tags.PREWARMED_FROM, "Value": source[:256]},
        {"Key": tags.PREWARMED_AT, "Value": f"{finished_at}; {detail}"[:256]},
        *figures,
    ]
    return {
        "tags": recorded,
        "snapshot_tags": [*recorded, {"Key": scope_tag, "Value": "true"}] if scope_tag else recorded,
        "detail": detail,
        "summary": summary,
        "started_at": started_at,
        "estimated_seconds": estimated_seconds,
    }


def figure_tags(data_bytes: int, seconds: float) -> list[dict[str, str]]:
    """Size, time and rate as tags of their own, plain numbers that a later plan reads back.

    Bytes, whole seconds, MiB/s to one decimal; no rate when the time rounds to nothing (a rate is not guessed).
    """
    whole = round(seconds)
    figures = [
        {"Key": tags.PREWARMED_BYTES, "Value": str(data_bytes)},
        {"Key": tags.PREWARMED_SECONDS, "Value": str(whole)},
    ]
    if whole > 0:
        figures.append({"Key": tags.PREWARMED_RATE, "Value": f"{data_bytes / 2**20 / seconds:.1f}"})
    return figures


class InitialisedReportRequest(BaseModel):
    """The snapshot path's report task input, from the workflow: which volume, and what EBS said last."""

    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True)

    volume_id: str = Field(pattern=VOLUME_ID)
    estimated_seconds: int = Field(default=0, ge=0)
    # DescribeVolumeStatus's InitializationStatusDetails, as the workflow's last poll saw it.
    initialization: dict[str, Any] = Field(default_factory=dict)

    @field_validator("initialization", mode="before")
    @classmethod
    def _one_status(cls, value: Any) -> Any:
        # A JSONPath through `[0]` gives the object, or a one-element list of it on some interpreters.
        if isinstance(value, list):
            return value[0] if value else {}
        return value


def initialised_report(
    volume: Mapping[str, Any],
    snapshot_bytes: int | None,
    initialization: Mapping[str, Any],
    *,
    finished_at: datetime,
    estimated_seconds: int,
) -> dict[str, Any]:
    """Tags for a volume EBS initialised from its snapshot: measured from its CreateTime to now (the poll that
    saw 100 %), over the snapshot's full size (the blocks EBS downloads), else the volume's size."""
    created = volume["CreateTime"]
    seconds = max((finished_at - created).total_seconds(), 0.0)
    data_bytes = snapshot_bytes if snapshot_bytes else int(volume["Size"]) * 2**30
    source = str(volume.get("SnapshotId") or "")
    figures = figure_tags(data_bytes, seconds)
    rate = {t["Key"]: t["Value"] for t in figures}.get(tags.PREWARMED_RATE)
    provisioned = volume.get("VolumeInitializationRate")
    detail = f"{data_bytes} bytes in {round(seconds)} s" + (f" at {rate} MiB/s" if rate else "")
    if provisioned:
        detail += f" (provisioned {provisioned} MiB/s)"
    return {
        "tags": [
            {"Key": tags.PREWARMED_FROM, "Value": source[:256]},
            {"Key": tags.PREWARMED_AT, "Value": f"{format_instant(finished_at)}; {detail}"[:256]},
            *figures,
        ],
        "detail": detail,
        "summary": {
            "bytes": data_bytes,
            "seconds": round(seconds, 1),
            "rate_mibps": float(rate) if rate else None,
            "provisioned_rate_mibps": provisioned,
            "initialization_type": initialization.get("InitializationType"),
            "progress": initialization.get("Progress"),
        },
        "started_at": format_instant(created),
        "estimated_seconds": estimated_seconds,
    }
