"""Small builders for inventory records, so each test states only what matters to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trainctl.core import names, tags
from trainctl.core.resources import Attachment, BlockDevice, Image, Instance, RegionInventory, Snapshot, Volume

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=60)
MANAGED = {tags.MANAGED: "true"}


def volume(
    volume_id: str = "vol-1",
    *,
    attached_to: str | None = None,
    created: datetime = LONG_AGO,
    state: str | None = None,
    **tag_values: str,
) -> Volume:
    attachments = (Attachment(attached_to, delete_on_termination=False),) if attached_to else ()
    return Volume(
        resource_id=volume_id,
        region="us-east-1",
        state=state or ("in-use" if attached_to else "available"),
        size_gib=100,
        volume_type="gp3",
        create_time=created,
        availability_zone="us-east-1a",
        attachments=attachments,
        tags={**MANAGED, **_tags(tag_values)},
    )


def instance(
    instance_id: str = "i-1",
    *,
    state: str = "running",
    launched: datetime = LONG_AGO,
    stopped_since: datetime | None = None,
    devices: tuple[BlockDevice, ...] = (),
    profile: str = "",
    **tag_values: str,
) -> Instance:
    return Instance(
        resource_id=instance_id,
        region="us-east-1",
        state=state,
        instance_type="p4d.24xlarge",
        launch_time=launched,
        availability_zone="us-east-1a",
        stopped_since=stopped_since,
        block_devices=devices,
        tags={**MANAGED, **_tags(tag_values)},
        instance_store=False,  # whether a stop loses data is its own protection, tested on its own
        instance_profile_arn=profile,
    )


def snapshot(
    snapshot_id: str = "snap-1", *, started: datetime = LONG_AGO, description: str = "", **tag_values: str
) -> Snapshot:
    return Snapshot(
        resource_id=snapshot_id,
        region="us-east-1",
        state="completed",
        start_time=started,
        volume_id="vol-src",
        volume_size_gib=100,
        description=description,
        tags={**MANAGED, **_tags(tag_values)},
    )


def image(*snapshot_ids: str) -> Image:
    return Image(image_id="ami-1", region="us-east-1", state="disabled", snapshot_ids=frozenset(snapshot_ids))


def inventory(*resources: object, images: tuple[Image, ...] = ()) -> RegionInventory:
    return RegionInventory(
        region="us-east-1",
        instances=tuple(r for r in resources if isinstance(r, Instance)),
        volumes=tuple(r for r in resources if isinstance(r, Volume)),
        snapshots=tuple(r for r in resources if isinstance(r, Snapshot)),
        images=images,
    )


def _tags(values: dict[str, str]) -> dict[str, str]:
    """Keyword names use underscores; tag keys use trainctl:kebab-case."""
    mapping = {
        "persistent": tags.PERSISTENT,
        "managed": tags.MANAGED,
        "ttl": tags.TTL,
        "created_at": tags.CREATED_AT,
        "cleanup_after": tags.CLEANUP_AFTER,
        "role": tags.ROLE,
        "owner": tags.OWNER,
        "backup_source": tags.BACKUP_SOURCE,
        "dlm": "aws:dlm:lifecycle-policy-id",
    }
    return {mapping.get(key, key): value for key, value in values.items()}


# The pre-warm worker's instance profile, as the stack names it: what makes a worker a worker (never a tag).
WORKER_PROFILE = f"arn:aws:iam::123456789012:instance-profile/{names.PREWARM_PROFILE}"
