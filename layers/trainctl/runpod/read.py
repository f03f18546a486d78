"""RunPod's pods, network volumes and serverless endpoints read into the resource model, as REST API v2 documents
them.

A pod is an Instance (provider "runpod"): its status in EC2's words, createdAt as its first launch, startedAt as its
launch, its network volumes as block devices that never die with it. What the model has no field for (RunPod's own
status, cost per hour, `locked`, the GPUs' utilisation, the owner read from the name) travels beside it in `Pod`.

A network volume is a Volume with no creation time: RunPod does not say when one was made. Its `create_time` is
the instant of the read, so that it never looks old; its real age starts when trainctl first saw it, which the
sweep records in the ledger (`first_seen`, None until then).

An answer in a shape the documentation does not describe (a missing field, a status the enum lacks, a time out of
range) makes that one pod or volume `Unreadable`, named with its problem; the rest are read. While any pod is
unreadable nobody knows what it mounts, so no network volume may be judged unmounted (`mounts_known`).

A serverless endpoint is no resource trainctl sweeps: it is read only for the network volumes its workers mount
(`networkVolumes`, a list of volume ids). An endpoints answer that could not be read, or one endpoint in a shape
the documentation does not describe, leaves every volume's endpoint mounts unknown (`endpoint_problems`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from trainctl.core.resources import Attachment, BlockDevice, Instance, Volume
from trainctl.core.text import one_line
from trainctl.runpod.settings import RunpodSettings

PROVIDER = "runpod"
# The pod lifecycle as the v2 documentation lists it.
POD_STATUSES = ("PROVISIONING", "STARTING", "RUNNING", "EXITED", "ERROR", "TERMINATED")
# In EC2's words, which every rule speaks; ERROR keeps its own name: it may still bill and nobody knows its state.
STATE_OF_STATUS = {
    "PROVISIONING": "pending",
    "STARTING": "pending",
    "RUNNING": "running",
    "EXITED": "stopped",
    "ERROR": "error",
    "TERMINATED": "terminated",
}
NETWORK_DEVICE = "network"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# RunPod launched in 2022; a time before its era or in the future (beyond clock skew) is not a real one.
_EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
_SKEW = timedelta(minutes=10)


class ShapeProblem(ValueError):
    """One field of one answer is not what the documentation describes."""


@dataclass(frozen=True, slots=True)
class Pod:
    """A pod: the common Instance, and what RunPod says about it that the model has no field for."""

    instance: Instance
    name: str
    status: str  # RunPod's own, one of POD_STATUSES
    hourly_usd: float  # RunPod's `cost`: 0 while exited (the disk it keeps still bills, not counted here)
    locked: bool
    started_at: datetime | None
    uptime_s: int | None
    gpu_util: tuple[float, ...]  # per GPU, percent, at the moment of the read; empty unless running
    gpu_memory_util: tuple[float, ...]
    network_volume_ids: tuple[str, ...]
    owner: str | None  # from the name by TRAINCTL_RUNPOD_OWNER_PATTERN; None when unknown
    in_scope: bool

    @property
    def resource_id(self) -> str:
        return self.instance.resource_id


@dataclass(frozen=True, slots=True)
class NetworkVolume:
    """A network volume: the common Volume, its data centre and who mounts it; no creation time is known."""

    volume: Volume
    name: str
    data_center: str
    owner: str | None
    in_scope: bool
    # When trainctl first saw it (from the ledger); None until the sweep has recorded it.
    first_seen: datetime | None = None
    # The serverless endpoints whose workers mount it (they are no pods: the model's attachments hold pods only).
    endpoint_mounts: tuple[str, ...] = ()

    @property
    def resource_id(self) -> str:
        return self.volume.resource_id

    @property
    def mounted_by(self) -> tuple[str, ...]:
        return tuple(a.instance_id for a in self.volume.attachments)

    def seen_since(self, first_seen: datetime) -> NetworkVolume:
        """The same volume aged from when trainctl first saw it: the only creation signal RunPod allows."""
        return replace(self, first_seen=first_seen, volume=replace(self.volume, create_time=first_seen))


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A pod or volume whose answer trainctl cannot read: protected (`unreadable`) by name, with its problem."""

    resource_type: Literal["instance", "volume"]
    label: str  # its id, else its name, else its place in the answer
    problem: str


@dataclass(frozen=True, slots=True)
class RunpodInventory:
    """Everything read from one RunPod account at one moment."""

    read_at: datetime
    pods: tuple[Pod, ...] = ()
    volumes: tuple[NetworkVolume, ...] = ()
    unreadable: tuple[Unreadable, ...] = field(default=())
    # Why the serverless endpoints' mounts are not all known (the list unread, an endpoint unreadable); empty if known.
    endpoint_problems: tuple[str, ...] = ("the serverless endpoints were not read",)

    @property
    def mounts_known(self) -> bool:
        """Whether every pod was read: only then may a network volume be judged unmounted by pods."""
        return not any(u.resource_type == "instance" for u in self.unreadable)

    @property
    def endpoint_mounts_known(self) -> bool:
        """Whether every serverless endpoint was read: only then may a volume be judged mounted by none."""
        return not self.endpoint_problems


def in_scope(name: str, resource_id: str, settings: RunpodSettings) -> bool:
    """In scope by an explicit id, or by the name prefix; with neither set, nothing of RunPod is."""
    if resource_id in settings.runpod_ids:
        return True
    prefix = settings.runpod_name_prefix
    return bool(prefix) and name.startswith(prefix or "")


def owner_from_name(name: str, settings: RunpodSettings) -> str | None:
    """The owner the team's naming convention puts in the name, one printable line; None when it does not say."""
    if not settings.runpod_owner_pattern:
        return None
    match = re.search(settings.runpod_owner_pattern, name)
    owner = match.group("owner") if match else None
    return one_line(owner, 64) if owner else None


def _field(record: Mapping[str, Any], key: str) -> Any:
    if key not in record:
        raise ShapeProblem(f"no `{key}`")
    return record[key]


def _text(record: Mapping[str, Any], key: str) -> str:
    value = _field(record, key)
    if not isinstance(value, str):
        raise ShapeProblem(f"`{key}` is not text")
    return value


def _id(record: Mapping[str, Any], key: str = "id") -> str:
    value = _text(record, key)
    if not _ID.match(value):
        raise ShapeProblem(f"`{key}` {one_line(value, 64)!r} is not an id of letters, digits, _ and -")
    return value


def _number(value: Any, what: str, *, low: float = 0.0, high: float = math.inf) -> float:
    # JSON true/false are numbers to Python; not to the documentation.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ShapeProblem(f"`{what}` is not a number")
    if not low <= value <= high:
        raise ShapeProblem(f"`{what}` {value} is out of range")
    return float(value)


def _time(value: Any, what: str, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise ShapeProblem(f"`{what}` is not a time")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ShapeProblem(f"`{what}` {one_line(value, 40)!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ShapeProblem(f"`{what}` {one_line(value, 40)!r} has no time zone")
    try:
        when = when.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: off the calendar once moved to UTC
        raise ShapeProblem(f"`{what}` {one_line(value, 40)!r} is out of range") from None
    if not _EARLIEST <= when <= now + _SKEW:
        raise ShapeProblem(f"`{what}` {one_line(value, 40)} is out of range")
    return when


def _runtime(pod: Mapping[str, Any]) -> tuple[int | None, tuple[float, ...], tuple[float, ...]]:
    runtime = _field(pod, "runtime")
    if runtime is None:
        return None, (), ()
    if not isinstance(runtime, dict):
        raise ShapeProblem("`runtime` is neither an object nor null")
    uptime = runtime.get("uptime")
    uptime_s = None if uptime is None else int(_number(uptime, "runtime.uptime"))
    gpus = runtime.get("gpus") or []
    if not isinstance(gpus, list):
        raise ShapeProblem("`runtime.gpus` is not a list")
    util: list[float] = []
    memory: list[float] = []
    for gpu in gpus:
        if not isinstance(gpu, dict):
            raise ShapeProblem("`runtime.gpus[]` holds something other than objects")
        util.append(_number(_field(gpu, "util"), "runtime.gpus[].util", high=100))
        memory.append(_number(gpu.get("memoryUtil", 0), "runtime.gpus[].memoryUtil", high=100))
    return uptime_s, tuple(util), tuple(memory)


def _network_mounts(pod: Mapping[str, Any]) -> tuple[str, ...]:
    # `mounts` must be there: a pod whose mounts are unknown might mount any volume.
    mounts = _field(pod, "mounts")
    if not isinstance(mounts, dict):
        raise ShapeProblem("`mounts` is not an object")
    # A null or absent list says nothing of what the pod mounts: unknown, not "none".
    network = mounts.get("network")
    if not isinstance(network, list):
        raise ShapeProblem("`mounts.network` is not a list")
    ids = []
    for mount in network:
        if not isinstance(mount, dict):
            raise ShapeProblem("`mounts.network[]` holds something other than objects")
        ids.append(_id(mount, "volumeId"))
    return tuple(ids)


def read_pod(record: Any, settings: RunpodSettings, now: datetime) -> Pod:
    """One pod of GET /pods into the model; ShapeProblem when it is not in the documented shape."""
    if not isinstance(record, dict):
        raise ShapeProblem("a pod is not a JSON object")
    pod_id = _id(record)
    name = _text(record, "name")
    status = _text(record, "status")
    if status not in POD_STATUSES:
        raise ShapeProblem(f"status {one_line(status, 32)!r} is not one RunPod documents")
    hourly = _number(_field(record, "cost"), "cost")
    locked = _field(record, "locked")
    if not isinstance(locked, bool):
        raise ShapeProblem("`locked` is not true or false")
    created = _time(_field(record, "createdAt"), "createdAt", now)
    started_raw = _field(record, "startedAt")
    started = None if started_raw is None else _time(started_raw, "startedAt", now)
    uptime_s, util, memory = _runtime(record)
    volume_ids = _network_mounts(record)
    instance = Instance(
        resource_id=pod_id,
        region="",
        state=STATE_OF_STATUS[status],
        instance_type="",
        # A pod never started has been billing (or waiting) since it was made.
        launch_time=started or created,
        availability_zone="",
        first_launch_time=created,
        block_devices=tuple(BlockDevice(v, NETWORK_DEVICE, delete_on_termination=False) for v in volume_ids),
        tags={"Name": name},
        provider=PROVIDER,
    )
    return Pod(
        instance=instance,
        name=name,
        status=status,
        hourly_usd=hourly,
        locked=locked,
        started_at=started,
        uptime_s=uptime_s,
        gpu_util=util,
        gpu_memory_util=memory,
        network_volume_ids=volume_ids,
        owner=owner_from_name(name, settings),
        in_scope=in_scope(name, pod_id, settings),
    )


def read_network_volume(
    record: Any, mounted_by: Mapping[str, Sequence[str]], settings: RunpodSettings, now: datetime
) -> NetworkVolume:
    """One volume of GET /network-volumes into the model, attached to the pods that mount it."""
    if not isinstance(record, dict):
        raise ShapeProblem("a network volume is not a JSON object")
    volume_id = _id(record)
    name = _text(record, "name")
    size = _number(_field(record, "size"), "size", low=1)
    if size != int(size):
        raise ShapeProblem("`size` is not a whole number of GB")
    data_center = _text(record, "dataCenter")
    volume = Volume(
        resource_id=volume_id,
        region=one_line(data_center, 32),
        state="available",
        size_gib=int(size),  # RunPod sizes network volumes in GB; the model's field says GiB
        volume_type="runpod-network",
        create_time=now,
        availability_zone=one_line(data_center, 32),
        attachments=tuple(Attachment(pod_id, delete_on_termination=False) for pod_id in mounted_by.get(volume_id, ())),
        tags={"Name": name},
        provider=PROVIDER,
    )
    return NetworkVolume(
        volume=volume,
        name=name,
        data_center=data_center,
        owner=owner_from_name(name, settings),
        in_scope=in_scope(name, volume_id, settings),
    )


def read_endpoint_mounts(record: Any) -> tuple[str, tuple[str, ...]]:
    """One endpoint of GET /serverless: its id and the network volumes its workers mount (`networkVolumes`)."""
    if not isinstance(record, dict):
        raise ShapeProblem("an endpoint is not a JSON object")
    endpoint_id = _id(record)
    # `networkVolumes` must be a list (a null too is no list): an endpoint whose mounts are unknown might mount any.
    mounted = _field(record, "networkVolumes")
    if not isinstance(mounted, list):
        raise ShapeProblem("`networkVolumes` is not a list")
    volume_ids = []
    for volume_id in mounted:
        if not isinstance(volume_id, str) or not _ID.match(volume_id):
            raise ShapeProblem("`networkVolumes[]` holds something other than a volume id")
        volume_ids.append(volume_id)
    return endpoint_id, tuple(volume_ids)


def endpoint_mounts(endpoints: Sequence[Any]) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """Volume id -> the endpoints that mount it, and each unreadable endpoint's problem by name."""
    mounted_by: dict[str, list[str]] = {}
    problems: list[str] = []
    for place, record in enumerate(endpoints, start=1):
        try:
            endpoint_id, volume_ids = read_endpoint_mounts(record)
        except ShapeProblem as problem:
            problems.append(f"endpoint {_label(record, f'#{place}')}: {problem}")
            continue
        for volume_id in volume_ids:
            mounted_by.setdefault(volume_id, []).append(endpoint_id)
    return mounted_by, tuple(problems)


def _label(record: Any, place: str) -> str:
    """What to call a record that could not be read: its id, else its name, else where it stood."""
    if isinstance(record, dict):
        for key in ("id", "name"):
            value = record.get(key)
            if isinstance(value, str) and value:
                return one_line(value, 128)
    return place


def read_inventory(
    pods: Sequence[Any],
    volumes: Sequence[Any],
    settings: RunpodSettings,
    now: datetime,
    endpoints: Sequence[Any] | None = None,
    *,
    endpoints_unread: str = "the serverless endpoints were not read",
) -> RunpodInventory:
    """Every pod and network volume of the answers, with who mounts each; one unreadable record never stops the
    read of the rest. `endpoints` None means the endpoints list was not read (`endpoints_unread` says why)."""
    read_pods: list[Pod] = []
    unreadable: list[Unreadable] = []
    for place, record in enumerate(pods, start=1):
        try:
            read_pods.append(read_pod(record, settings, now))
        except ShapeProblem as problem:
            unreadable.append(Unreadable("instance", _label(record, f"pod #{place}"), str(problem)))
    mounted_by: dict[str, list[str]] = {}
    for pod in read_pods:
        if pod.status != "TERMINATED":
            for volume_id in pod.network_volume_ids:
                mounted_by.setdefault(volume_id, []).append(pod.resource_id)
    read_volumes: list[NetworkVolume] = []
    for place, record in enumerate(volumes, start=1):
        try:
            read_volumes.append(read_network_volume(record, mounted_by, settings, now))
        except ShapeProblem as problem:
            unreadable.append(Unreadable("volume", _label(record, f"network volume #{place}"), str(problem)))
    endpoint_problems: tuple[str, ...] = (endpoints_unread,)
    if endpoints is not None:
        by_endpoints, endpoint_problems = endpoint_mounts(endpoints)
        read_volumes = [replace(v, endpoint_mounts=tuple(by_endpoints.get(v.resource_id, ()))) for v in read_volumes]
    return RunpodInventory(
        read_at=now,
        pods=tuple(read_pods),
        volumes=tuple(read_volumes),
        unreadable=tuple(unreadable),
        endpoint_problems=endpoint_problems,
    )
