"""Emulated EBS volume initialisation (DescribeVolumeStatus), for the emulator, the sandbox and the tests.

moto keeps no VolumeInitializationRate and has no DescribeVolumeStatus, so the pre-warm workflow's snapshot path
(restore at a provisioned rate, poll until EBS reports 100 %) could not run on it. `emulated_initialisation`
makes moto remember the rate CreateVolume was given (DescribeVolumes then shows it, as EBS does) and answers
DescribeVolumeStatus from moto's own volumes, in the account and region of the request, in the shape the EC2 API
reference documents:

- a volume restored from a snapshot with a rate initialises at that rate from its CreateTime: type
  `provisioned-rate`, Progress = the share of the snapshot's bytes read so far (100 only when all are),
  EstimatedTimeToCompleteInSeconds = what is left at the rate;
- a volume restored from a snapshot without a rate: type `default`, no estimate (AWS gives one only for a
  provisioned rate), progressing at EMULATED_DEFAULT_MIBPS, an assumption of this emulation (below);
- an empty volume: no InitializationStatusDetails (AWS: not available for empty volumes).

CreateTime is moto's, on the system clock, so a test that travels in time (time-machine) sees progress rise.
What this emulation does not do: EBS may take up to 5 minutes to report initialisation details at all (the API
reference says so), events and actions (it has none), fast snapshot restore (moto keeps none).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MIB = 2**20
GIB = 2**30
# An emulation assumption, not AWS's figure: EBS publishes no pace for default (lazy-load) initialisation, only
# that it fluctuates. The lowest provisioned rate, so a restore without a rate is never emulated as faster than one
# that pays for a rate.
EMULATED_DEFAULT_MIBPS = 100
# A volume whose status checks pass: EBS reports `ok` with the I/O check `passed` (the filters the API reference
# documents name these values).
HEALTHY_STATUS = "ok"
HEALTHY_DETAILS: tuple[Mapping[str, str], ...] = ({"Name": "io-enabled", "Status": "passed"},)


@dataclass(frozen=True, slots=True)
class Restore:
    """What initialisation a volume needs: from which snapshot, how many bytes, at which provisioned rate."""

    snapshot_bytes: int
    rate_mibps: int | None  # CreateVolume's VolumeInitializationRate; None: default initialisation


def initialisation_details(restore: Restore | None, elapsed_seconds: float) -> dict[str, Any] | None:
    """DescribeVolumeStatus's InitializationStatusDetails `elapsed_seconds` after the volume's creation; None for
    an empty volume, which needs no initialisation."""
    if restore is None:
        return None
    rate = restore.rate_mibps or EMULATED_DEFAULT_MIBPS
    read = max(elapsed_seconds, 0.0) * rate * MIB
    total = max(restore.snapshot_bytes, 1)
    done = read >= total
    # Whole percent, rounded down: 100 means every block is there, as AWS's "100 when completed" does.
    progress = 100 if done else min(math.floor(read * 100 / total), 99)
    if restore.rate_mibps is None:
        return {"InitializationType": "default", "Progress": progress}
    remaining = 0 if done else math.ceil((total - read) / (rate * MIB))
    return {
        "InitializationType": "provisioned-rate",
        "Progress": progress,
        "EstimatedTimeToCompleteInSeconds": remaining,
    }


def volume_status_item(volume_id: str, zone: str, restore: Restore | None, elapsed_seconds: float) -> dict[str, Any]:
    """One VolumeStatusItem: a healthy volume with no events or actions, and its initialisation if it has one."""
    item: dict[str, Any] = {
        "VolumeId": volume_id,
        "AvailabilityZone": zone,
        "VolumeStatus": {"Status": HEALTHY_STATUS, "Details": [dict(d) for d in HEALTHY_DETAILS]},
        "Events": [],
        "Actions": [],
    }
    details = initialisation_details(restore, elapsed_seconds)
    if details is not None:
        item["InitializationStatusDetails"] = details
    return item


class UnknownFilter(ValueError):
    """A filter name DescribeVolumeStatus does not document."""


# The filters the API reference documents. Events and actions: the emulation has none, so those match nothing.
_EVENT_FILTERS = frozenset(
    {
        "action.code",
        "action.description",
        "action.event-id",
        "event.description",
        "event.event-id",
        "event.event-type",
        "event.not-after",
        "event.not-before",
    }
)


def matches(item: Mapping[str, Any], filters: Mapping[str, Sequence[str]]) -> bool:
    """Whether a status item passes every filter (values of one filter are ORed, filters ANDed, as EC2 does)."""
    for name, values in filters.items():
        if name == "availability-zone":
            found = {item["AvailabilityZone"]}
        elif name == "volume-status.status":
            found = {item["VolumeStatus"]["Status"]}
        elif name == "volume-status.details-name":
            found = {d["Name"] for d in item["VolumeStatus"]["Details"]}
        elif name == "volume-status.details-status":
            found = {d["Status"] for d in item["VolumeStatus"]["Details"]}
        elif name in _EVENT_FILTERS:
            found = set()
        else:
            raise UnknownFilter(name)
        if not found & set(values):
            return False
    return True


def page(
    items: list[dict[str, Any]], max_results: int | None, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of items in volume id order, after the volume the token names; the next page's token or None."""
    ordered = sorted(items, key=lambda item: str(item["VolumeId"]))
    if token:
        ordered = [item for item in ordered if str(item["VolumeId"]) > token]
    if not max_results or len(ordered) <= max_results:
        return ordered, None
    shown = ordered[:max_results]
    return shown, str(shown[-1]["VolumeId"])


def restore_of(volume: Any, snapshots: Mapping[str, Any]) -> Restore | None:
    """What a moto volume needs to initialise: nothing when it is empty."""
    snapshot_id = getattr(volume, "snapshot_id", None)
    if not snapshot_id:
        return None
    snapshot = snapshots.get(snapshot_id)
    # moto keeps no FullSnapshotSizeInBytes: the snapshot's volume size, as the pre-warm report reads it; a
    # snapshot deleted since the restore leaves the restored volume's own size.
    size_gib = int(snapshot.volume_size) if snapshot is not None else int(volume.size)
    rate = getattr(volume, "volume_initialization_rate", None)
    return Restore(size_gib * GIB, int(rate) if rate else None)


def describe_volume_status(
    volumes: list[Any],
    snapshots: Mapping[str, Any],
    now: datetime,
    *,
    filters: Mapping[str, Sequence[str]],
    max_results: int | None,
    token: str | None,
) -> dict[str, Any]:
    """DescribeVolumeStatus's answer over moto's volumes (naive UTC CreateTime, as `now`)."""
    items = [
        volume_status_item(
            str(volume.id),
            str(volume.zone.name if volume.zone else ""),
            restore_of(volume, snapshots),
            (now - volume.create_time).total_seconds(),
        )
        for volume in volumes
    ]
    shown, next_token = page([item for item in items if matches(item, filters)], max_results, token)
    answer: dict[str, Any] = {"VolumeStatuses": shown}
    if next_token is not None:
        answer["NextToken"] = next_token
    return answer


@contextmanager
def emulated_initialisation() -> Iterator[None]:
    """moto remembers CreateVolume's VolumeInitializationRate and answers DescribeVolumeStatus, in this process
    (in-process mocks and moto servers alike); moto's own handlers are put back on exit."""
    # Cold start: only the emulator, the sandbox and the tests load moto's EC2 responses.
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.ec2.exceptions import InvalidFilter, InvalidParameterValue
    from moto.ec2.responses.elastic_block_store import ElasticBlockStore

    responses_class: Any = ElasticBlockStore
    original_create = responses_class.create_volume
    original_status = responses_class.describe_volume_status

    def remembering_create_volume(self: Any) -> Any:
        rate = self._get_int_param("VolumeInitializationRate")
        result = original_create(self)
        if rate:
            # On moto's own volume: DescribeVolumes and CreateVolume's answer show it as EBS does.
            result.result.volume_initialization_rate = rate
        return result

    def answering_describe_volume_status(self: Any) -> Any:
        max_results = self._get_int_param("MaxResults")
        if max_results is not None and max_results < 1:
            raise InvalidParameterValue("MaxResults must be a positive number")
        backend = self.ec2_backend  # the request's account and region
        # Named volumes that do not exist are refused as DescribeVolumes refuses them (InvalidVolume.NotFound).
        volumes = backend.describe_volumes(volume_ids=self._get_param("VolumeIds", []) or None)
        try:
            answer = describe_volume_status(
                list(volumes),
                backend.snapshots,
                utcnow(),
                filters=self._filters_from_querystring(),
                max_results=max_results,
                token=self._get_param("NextToken"),
            )
        except UnknownFilter as unknown:
            raise InvalidFilter(str(unknown)) from None
        return ActionResult(answer)

    responses_class.create_volume = remembering_create_volume
    responses_class.describe_volume_status = answering_describe_volume_status
    try:
        yield
    finally:
        responses_class.create_volume = original_create
        responses_class.describe_volume_status = original_status
