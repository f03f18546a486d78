"""EBS pre-warm: the workflow's two Lambda tasks. The plan reads EC2 and S3 and asks the rules; nothing writes.

Each handler makes one call here: plan_task for prewarm_plan, report_task for prewarm_report. On the snapshot
path the report reads the volume and its snapshot from EC2: the measured time runs from the volume's own
CreateTime, not from anything the execution was given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import ClientFactory, error_code
from trainctl.aws.ec2 import find_instance
from trainctl.core import tags
from trainctl.core.clock import Clock, format_instant, system_clock
from trainctl.core.permissions import needs
from trainctl.core.resources import Instance
from trainctl.core.tags import tag_map
from trainctl.prewarm.plan import PrewarmPlan
from trainctl.prewarm.rules import (
    InitialisedReportRequest,
    InvalidRequest,
    PrewarmRequest,
    ReportRequest,
    Target,
    check_given_instance,
    check_keys,
    check_snapshot_claim,
    check_volume_claim,
    existing_volume,
    initialised_report,
    make_plan,
    new_volume,
    parse_request,
    report,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Where the Lambda runtime gives no region (it always does); the emulator's default.
FALLBACK_REGION = "us-east-1"

# The plan only reads: the data's size, the volume, its zone and snapshot (the instance through trainctl.aws.ec2).
PERMISSIONS = needs("s3:ListBucket", "ec2:DescribeVolumes", "ec2:DescribeAvailabilityZones", "ec2:DescribeSnapshots")


def plan_task(
    event: object, factory: ClientFactory, *, instance_profile_arn: str, scope_tag: str = tags.MANAGED
) -> PrewarmPlan:
    """The workflow's first task: the request checked against the account, or InvalidRequest; only reads."""
    request = parse_request(event)
    region = factory.default_region or FALLBACK_REGION
    return plan(
        request,
        factory.ec2(region),
        factory.client("s3", region),
        instance_profile_arn=instance_profile_arn,
        region=region,
        scope_tag=scope_tag,
    )


def report_task(event: object, factory: ClientFactory | None = None, *, clock: Clock = system_clock) -> dict[str, Any]:
    """The workflow's report task: the worker's output (or, restored from a snapshot, the volume as EC2 records
    it) read into the tags the workflow writes."""
    if isinstance(event, dict) and event.get("copies_from_s3") is False:
        if factory is None:
            raise ValueError("the snapshot path's report reads EC2: give it a client factory")
        return initialised_report_task(event, factory.ec2(factory.default_region or FALLBACK_REGION), clock=clock)
    request = ReportRequest.model_validate(event)
    return report(
        request.output,
        source=request.source,
        started_at=request.started_at,
        finished_at=format_instant(clock()),
        estimated_seconds=request.estimated_seconds,
        scope_tag=request.scope_tag,
    )


def initialised_report_task(event: object, ec2: EC2Client, *, clock: Clock = system_clock) -> dict[str, Any]:
    """Time and rate of a volume EBS initialised: its CreateTime, size and snapshot from EC2, the end from the clock."""
    request = InitialisedReportRequest.model_validate(event)
    volume = dict(ec2.describe_volumes(VolumeIds=[request.volume_id])["Volumes"][0])
    snapshot_bytes = None
    if volume.get("SnapshotId"):
        found = ec2.describe_snapshots(SnapshotIds=[str(volume["SnapshotId"])])["Snapshots"]
        if found and found[0].get("FullSnapshotSizeInBytes"):
            snapshot_bytes = int(found[0]["FullSnapshotSizeInBytes"])
    return initialised_report(
        volume,
        snapshot_bytes,
        request.initialization,
        finished_at=clock(),
        estimated_seconds=request.estimated_seconds,
    )


def plan(
    request: PrewarmRequest,
    ec2: EC2Client,
    s3: Any,
    *,
    instance_profile_arn: str,
    region: str,
    scope_tag: str = tags.MANAGED,
) -> PrewarmPlan:
    """Everything the workflow needs, or InvalidRequest naming the first problem; only reads."""
    if request.s3_uri is None:
        target, data_bytes = _restore_target(request, ec2, scope_tag)
        return make_plan(
            request,
            target,
            data_bytes=data_bytes,
            objects=0,
            region=region,
            instance_profile_arn="",
            scope_tag=scope_tag,
        )
    try:
        data_bytes, objects = s3_size(s3, request.s3_uri)
    except ClientError as exc:
        raise InvalidRequest(f"cannot read {request.s3_uri}: {error_code(exc)}") from None
    target = _target(request, ec2, data_bytes, scope_tag)
    if request.instance_id is not None:
        check_given_instance(_instance(ec2, region, request.instance_id), target.zone, scope_tag, request.owner)
    return make_plan(
        request,
        target,
        data_bytes=data_bytes,
        objects=objects,
        region=region,
        instance_profile_arn=instance_profile_arn,
        scope_tag=scope_tag,
    )


def s3_size(s3: Any, uri: str) -> tuple[int, int]:
    """(bytes, objects) under the S3 prefix, read in pages; InvalidRequest when a key would land outside."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    total = count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        items = page.get("Contents", [])
        check_keys(uri, [item["Key"] for item in items])
        for item in items:
            total += int(item["Size"])
            count += 1
    return total, count


def _restore_target(request: PrewarmRequest, ec2: EC2Client, scope_tag: str) -> tuple[Target, int]:
    """The snapshot path: a new volume at least the snapshot's size; its bytes are the snapshot's full size."""
    spec = request.volume
    assert spec is not None and spec.snapshot_id is not None  # the request's own validator
    _zone_exists(ec2, spec.zone)
    snapshot = _snapshot_claim(ec2, spec.snapshot_id, request.owner, scope_tag)
    gib = int(snapshot["VolumeSize"])
    data_bytes = int(snapshot.get("FullSnapshotSizeInBytes") or 0) or gib * 2**30
    return new_volume(request, spec, data_bytes, snapshot_gib=gib, scope_tag=scope_tag), data_bytes


def _target(request: PrewarmRequest, ec2: EC2Client, data_bytes: int, scope_tag: str) -> Target:
    if request.volume is not None:
        _zone_exists(ec2, request.volume.zone)
        gib = None
        if request.volume.snapshot_id:
            gib = int(_snapshot_claim(ec2, request.volume.snapshot_id, request.owner, scope_tag)["VolumeSize"])
        return new_volume(request, request.volume, data_bytes, snapshot_gib=gib, scope_tag=scope_tag)
    assert request.volume_id is not None  # the request's own validator: one or the other
    volume = _volume(ec2, request.volume_id)
    check_volume_claim(request.volume_id, tag_map(volume.get("Tags")), request, scope_tag)
    return existing_volume(request.volume_id, volume, s3_uri=request.source, data_bytes=data_bytes)


def _volume(ec2: EC2Client, volume_id: str) -> dict[str, Any]:
    try:
        found = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    except ClientError as exc:
        if error_code(exc).startswith("InvalidVolume"):
            raise InvalidRequest(f"volume {volume_id} does not exist") from None
        raise
    if not found:
        raise InvalidRequest(f"volume {volume_id} does not exist")
    return dict(found[0])


def _instance(ec2: EC2Client, region: str, instance_id: str) -> Instance:
    found = find_instance(ec2, region, instance_id)
    if found is None:
        raise InvalidRequest(f"instance {instance_id} does not exist")
    return found


def _zone_exists(ec2: EC2Client, zone: str) -> None:
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    if zone not in zones:
        raise InvalidRequest(f"zone {zone} is not in this region ({', '.join(zones)})")


def _snapshot_claim(ec2: EC2Client, snapshot_id: str, owner: str | None, scope_tag: str) -> dict[str, Any]:
    """The snapshot exists, and if this account owns it, it is in scope and the caller's or nobody's; as EC2
    describes it."""
    try:
        # This account's own first; otherwise one shared with it (or public), which was given to read.
        own = ec2.describe_snapshots(SnapshotIds=[snapshot_id], OwnerIds=["self"])["Snapshots"]
        found = own or ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    except ClientError as exc:
        if error_code(exc).startswith("InvalidSnapshot"):
            raise InvalidRequest(f"snapshot {snapshot_id} does not exist") from None
        raise
    if not found:
        raise InvalidRequest(f"snapshot {snapshot_id} does not exist")
    check_snapshot_claim(snapshot_id, tag_map(found[0].get("Tags")), owner, own=bool(own), scope_tag=scope_tag)
    if found[0].get("State") == "error":
        raise InvalidRequest(f"snapshot {snapshot_id} is in error: nothing can be restored from it")
    return dict(found[0])
