"""`trainctl ebs`, `instances`, `resources` and `transfer`: work by hand, through the automation's protections.

A destructive command shows what it will do and asks on a terminal (`--yes` answers for scripts). A resource
outside trainctl's scope, or someone else's, also needs the override that names it (`--allow-out-of-scope`,
`--allow-other-owner`): each override says what it overrides.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

import typer
from botocore.exceptions import NoRegionError
from rich.text import Text
from rich.tree import Tree

from trainctl.aws.clients import ClientFactory
from trainctl.aws.ec2 import Ec2Inventory
from trainctl.aws.training_check import SsmTrainingCheck
from trainctl.cli import automation
from trainctl.cli.environment import person
from trainctl.cli.errors import one_line_errors
from trainctl.cli.output import (
    EXIT_FAILED,
    EXIT_USAGE,
    AsJson,
    Output,
    OutputFormat,
    confirm,
    console,
    emit,
    err_console,
    fail,
    note,
    output_format,
    state_of,
    warn,
)
from trainctl.cli.render import ESSENTIAL, Col, print_table
from trainctl.cli.session import check_regions, factory_of
from trainctl.core import names, tags, volume_spec
from trainctl.core.clock import format_instant, system_clock
from trainctl.core.durations import format_duration
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.protections import in_scope, is_persistent
from trainctl.core.resources import Instance, RegionInventory, Resource
from trainctl.core.settings import CostSettings, SweepSettings
from trainctl.core.text import one_line
from trainctl.cost.left_behind import left_behind_words
from trainctl.cost.run import has_price_list_api, price_book_for, price_inventories
from trainctl.handwork import graph as hand_graph
from trainctl.handwork import instances as hand_instances
from trainctl.handwork import volumes as hand_volumes
from trainctl.handwork.ownership import Problem, Waivers, ownership
from trainctl.handwork.refusals import Refused
from trainctl.handwork.transfer import (
    BadEndpoint,
    CacheResult,
    Consent,
    check_cache_endpoints,
    fill_cache,
    parse_endpoint,
    transfer,
)

__all__ = ["ebs", "instances", "one_line_errors", "resources", "transfer_command"]

Region = Annotated[
    list[str] | None, typer.Option("--region", help="Region (default: AWS_REGION, AWS_DEFAULT_REGION, the profile's).")
]
Regions = Annotated[
    list[str] | None, typer.Option("--region", help="Region; repeat for more (default: AWS_REGION, the profile's).")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask: the answer is yes (for scripts).")]
AllowOutOfScope = Annotated[
    bool,
    typer.Option("--allow-out-of-scope", help="Allow a resource outside trainctl's scope (it still asks)."),
]
AllowOtherOwner = Annotated[
    bool, typer.Option("--allow-other-owner", help="Allow a resource another owner's tag names (it still asks).")
]

ebs = typer.Typer(help="EBS volumes and snapshots: create, list, attach, detach, delete, snapshot, restore, pre-warm.")
snapshots = typer.Typer(help="EBS snapshots: create one, or list them with what depends on them.")
ebs.add_typer(snapshots, name="snapshot")
instances = typer.Typer(help="EC2 instances: list them, or terminate one under the safety model.")
resources = typer.Typer(help="Everything at once: a summary with costs, the cleanup sweep, the dependency graph.")


ID_FORMS = {
    "volume": (re.compile(r"^vol-[0-9a-f]{8}(?:[0-9a-f]{9})?$"), "vol-0123456789abcdef0"),
    "instance": (re.compile(r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$"), "i-0123456789abcdef0"),
    "snapshot": (re.compile(r"^snap-[0-9a-f]{8}(?:[0-9a-f]{9})?$"), "snap-0123456789abcdef0"),
}


def check_id(kind: str, value: str) -> None:
    """Checked before any call: a malformed id is wrong usage, not an AWS error after a round trip."""
    shape, example = ID_FORMS[kind]
    if not shape.match(value):
        article = "an" if kind[0] in "aeiou" else "a"
        raise fail(f"{value}: not {article} {kind} id such as {example}", EXIT_USAGE)


def context(ctx: typer.Context, region: list[str] | None, command: str = "") -> tuple[ClientFactory, str]:
    """The factory and the one region a command works in."""
    chosen = check_regions(region, command=command, single=True)
    factory = factory_of(ctx, chosen[0] if chosen else None)
    home = chosen[0] if chosen else factory.default_region
    if not home:
        raise NoRegionError()
    return factory, home


def contexts(ctx: typer.Context, region: list[str] | None) -> tuple[ClientFactory, tuple[str, ...]]:
    """The factory and every region a listing covers (--region repeated, else the home region)."""
    chosen = check_regions(region)
    factory = factory_of(ctx, chosen[0] if chosen else None)
    if chosen:
        return factory, chosen
    if not factory.default_region:
        raise NoRegionError()
    return factory, (factory.default_region,)


def owner() -> str | None:
    return person(os.environ)


def scope_tag() -> str:
    return SweepSettings.from_env(os.environ).scope_tag


def hourly_costs(factory: ClientFactory, inventory: RegionInventory) -> dict[str, float | None]:
    """USD per hour per volume and instance, through the price chain (no table, no alerts)."""
    settings = CostSettings(regions=(inventory.region,))
    book = price_book_for(factory, settings, system_clock, use_table=False, use_api=has_price_list_api(os.environ))
    return {c.resource_id: c.hourly_usd for c in price_inventories([inventory], book, {}, system_clock())}


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:,.4f}"


def _hours(value: float) -> str:
    return f"{value:,.1f}h" if value < 48 else f"{value / 24:,.1f}d"


def ownership_problems(
    resource: Resource, *, allow_out_of_scope: bool, allow_other_owner: bool, scope: str
) -> list[str]:
    """What a destructive hand command needs an override for: a resource outside the scope, or another's."""
    waivers = Waivers.of(allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner)
    return [str(p) for p in waivers.unwaived(ownership(resource, me=owner(), scope_tag=scope))]


def describe_owner(resource: Resource, scope: str) -> str:
    holder = resource.tags.get(tags.OWNER)
    parts = [f"owner {one_line(holder, 64)}" if holder else "no owner tag"]
    parts.append("in scope" if in_scope(resource, scope) else f"outside the scope (no {scope}=true)")
    if is_persistent(resource.tags):
        parts.append(f"tagged {tags.PERSISTENT}")
    return ", ".join(parts)


# ----------------------------------------------------------------------------------------------------- ebs


def _refuse(problem: str | None) -> None:
    """A problem found before anything is made (trainctl.core.volume_spec) is wrong usage, in its words."""
    if problem is not None:
        raise fail(problem, EXIT_USAGE)


def _owner_for_new_volume() -> str | None:
    """Who the new volume belongs to; nobody is allowed, and said, with how to put it right."""
    me = (owner() or "").strip() or None
    if me is None:
        warn(
            f"the new volume gets no {tags.OWNER} tag (TRAINCTL_OWNER and $USER are empty): set TRAINCTL_OWNER to "
            "your name so that its notices and the other-owner protections know it is yours"
        )
    return me


@ebs.command("create")
def ebs_create(
    ctx: typer.Context,
    size: Annotated[int, typer.Option(help="Size in GiB.", min=1, max=65536)] = 100,
    volume_type: Annotated[str, typer.Option("--type", help="gp3, gp2, io1, io2, st1 or sc1.")] = "gp3",
    iops: Annotated[
        int | None, typer.Option(help="Provisioned IOPS: required for io1 and io2, optional for gp3.", min=100)
    ] = None,
    throughput: Annotated[
        int | None, typer.Option(help="Provisioned throughput in MiB/s, gp3 only (125 and up).", min=125, max=2000)
    ] = None,
    zone: Annotated[str | None, typer.Option(help="Availability zone (default: the region's first).")] = None,
    persistent: Annotated[bool, typer.Option(help=f"Tag it {tags.PERSISTENT}: nothing automatic deletes it.")] = False,
    pre_warm: Annotated[
        str | None, typer.Option("--pre-warm", help="Fill it from this s3:// URI once created.")
    ] = None,
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Create a data volume (in scope, owned by you), optionally persistent and pre-warmed from S3."""
    fmt = output_format(ctx, output, as_json)
    _refuse(volume_spec.volume_problem(volume_type, size, iops, throughput))
    if pre_warm is not None:
        automation.check_prewarm_source(pre_warm)
    factory, chosen = context(ctx, region, "ebs create")
    if zone is not None:
        _refuse(volume_spec.zone_problem(zone, chosen))
    ec2 = factory.ec2(chosen)
    if zone is not None:
        _refuse(hand_volumes.unknown_zone(ec2, chosen, zone))
    target = zone or hand_volumes.default_zone(ec2, chosen)
    volume_id = hand_volumes.create_volume(
        ec2,
        size_gib=size,
        volume_type=volume_type,
        zone=target,
        persistent=persistent,
        owner=_owner_for_new_volume(),
        scope_tag=scope_tag(),
        iops=iops,
        throughput_mibps=throughput,
    )
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    result: dict[str, Any] = {
        "volume_id": volume_id,
        "zone": target,
        "size_gib": size,
        "type": volume_type,
        "iops": iops,
        "throughput_mibps": throughput,
        "persistent": persistent,
    }
    if not pre_warm:
        emit(fmt, result, lambda: console.print(Text(f"created {volume_id} ({size} GiB {volume_type}) in {target}")))
        return
    if fmt == "table":
        console.print(Text(f"created {volume_id} ({size} GiB {volume_type}) in {target}"))
    # A volume just made persistent and asked to be filled: filling it is what was asked.
    automation.prewarm(
        ctx, volume_id, pre_warm, allow_persistent=persistent, region=[chosen], as_json=fmt == "json", output=fmt
    )


def _volume_rows(factory: ClientFactory, regions: tuple[str, ...]) -> list[dict[str, Any]]:
    now = system_clock()
    rows: list[dict[str, Any]] = []
    for region in regions:
        inventory = RegionInventory(region=region, volumes=tuple(Ec2Inventory(factory.ec2(region), region).volumes()))
        costs = hourly_costs(factory, inventory)
        rows += [
            {
                "volume_id": v.resource_id,
                "region": region,
                "persistent": is_persistent(v.tags),
                "state": v.state,
                "attached_to": v.attachments[0].instance_id if v.attachments else None,
                "zone": v.availability_zone,
                "type": v.volume_type,
                "size_gib": v.size_gib,
                "age_hours": round((now - v.create_time).total_seconds() / 3600, 1),
                "hourly_usd": costs.get(v.resource_id),
                "owner": v.tags.get(tags.OWNER),
            }
            for v in sorted(inventory.volumes, key=lambda v: v.resource_id)
        ]
    return rows


VOLUME_COLUMNS = (
    Col("volume", ESSENTIAL, whole=True),
    Col("P", 95, whole=True),
    Col("size", 90, whole=True, justify="right"),
    Col("per hour", ESSENTIAL, whole=True, justify="right"),
    Col("attached to", 85, whole=True),
    Col("state", 70, whole=True),
    Col("owner", 60, min_width=8),
    Col("age", 55, whole=True, justify="right"),
    Col("type", 50, whole=True),
    Col("zone", 40, whole=True),
    Col("region", 30, whole=True),
)


@ebs.command("list")
def ebs_list(ctx: typer.Context, region: Regions = None, as_json: AsJson = False, output: Output = None) -> None:
    """Volumes: persistent marker, attachment, zone, age and cost per hour."""
    fmt = output_format(ctx, output, as_json)
    factory, regions = contexts(ctx, region)
    rows = _volume_rows(factory, regions)

    def show() -> None:
        print_table(
            console,
            f"EBS volumes in {', '.join(regions)}",
            VOLUME_COLUMNS,
            [
                [
                    r["volume_id"],
                    "P" if r["persistent"] else "",
                    f"{r['size_gib']} GiB",
                    _usd(r["hourly_usd"]),
                    r["attached_to"] or "-",
                    r["state"],
                    r["owner"] or "-",
                    _hours(r["age_hours"]),
                    r["type"],
                    r["zone"],
                    r["region"],
                ]
                for r in rows
            ],
        )
        console.print(Text(f"P: {tags.PERSISTENT}", style="dim"))

    emit(fmt, rows, show)


@ebs.command("attach")
def ebs_attach(
    ctx: typer.Context,
    volume_id: str,
    instance_id: str,
    device: Annotated[str, typer.Option(help="Device name on the instance.")] = "/dev/sdf",
    allow_other_owner: AllowOtherOwner = False,
    yes: Yes = False,
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Attach a volume to an instance in the same zone. Another owner's instance or volume needs
    --allow-other-owner, and then it asks."""
    fmt = output_format(ctx, output, as_json)
    check_id("volume", volume_id)
    check_id("instance", instance_id)
    factory, chosen = context(ctx, region, "ebs attach")
    ec2 = factory.ec2(chosen)
    waivers = Waivers.of(allow_other_owner=allow_other_owner)
    check = hand_volumes.check_attach(ec2, chosen, volume_id, instance_id, me=owner(), waivers=waivers)
    if check.refusals:
        raise Refused(f"{volume_id} not attached: {'; '.join(map(str, check.refusals))}")
    if check.waived:
        plan = [f"attach {volume_id} to {instance_id} as {device}", *(f"waived: {p.text}" for p in check.waived)]
        confirm(ctx, plan, f"Attach {volume_id}?", yes=yes)
    hand_volumes.attach(ec2, check, device)
    emit(
        fmt,
        {"volume_id": volume_id, "instance_id": instance_id, "device": device},
        lambda: console.print(Text(f"attached {volume_id} to {instance_id} as {device}")),
    )


@ebs.command("detach")
def ebs_detach(
    ctx: typer.Context,
    volume_id: str,
    force_detach: Annotated[
        bool,
        typer.Option(
            "--force-detach", help="Detach even if the instance does not answer: writes in flight are lost (asks)."
        ),
    ] = False,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    force: Annotated[bool, typer.Option("--force", hidden=True, help="Deprecated: --force-detach.")] = False,
    yes: Yes = False,
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Detach a volume from its instance (unmount it there first): shows what it does and asks. Refuses the root
    volume of an instance that is not stopped; one outside the scope or someone else's needs the override."""
    fmt = output_format(ctx, output, as_json)
    check_id("volume", volume_id)
    if force:
        warn("--force is deprecated here: it means --force-detach")
        force_detach = True
    factory, chosen = context(ctx, region, "ebs detach")
    ec2 = factory.ec2(chosen)
    scope = scope_tag()
    waivers = Waivers.of(allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner)
    check = hand_volumes.check_detach(ec2, chosen, volume_id, me=owner(), scope_tag=scope, waivers=waivers)
    if check.refusals:
        raise Refused(f"{volume_id} not detached: {'; '.join(map(str, check.refusals))}")
    disk, holder = check.volume, check.instance
    plan = [
        f"detach {volume_id} ({disk.size_gib} GiB {disk.volume_type}, {describe_owner(disk, scope)}) from "
        f"{holder.resource_id} ({holder.state}, {describe_owner(holder, scope)})",
        *(f"waived: {p.text}" for p in check.waived),
    ]
    if force_detach:
        plan.append("forced: writes the instance has not flushed are lost")
    elif holder.state == "running":
        plan.append(f"unmount it on {holder.resource_id} first: a process still writing to it fails")
    confirm(ctx, plan, f"{'Force-detach' if force_detach else 'Detach'} {volume_id}?", yes=yes)
    hand_volumes.detach(ec2, check, force=force_detach)
    emit(
        fmt,
        {"volume_id": volume_id, "instance_id": holder.resource_id, "forced": force_detach},
        lambda: console.print(Text(f"detaching {volume_id} from {holder.resource_id}")),
    )


@ebs.command("delete")
def ebs_delete(
    ctx: typer.Context,
    volume_id: str,
    allow_persistent: Annotated[
        bool, typer.Option("--allow-persistent", help=f"Allow deleting a volume tagged {tags.PERSISTENT} (it asks).")
    ] = False,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    force: Annotated[bool, typer.Option("--force", hidden=True, help="Deprecated: --allow-persistent.")] = False,
    yes: Yes = False,
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Delete a volume: shows what goes and asks. Refuses an attached one; a persistent one, one outside the
    scope or someone else's needs the override that names it."""
    fmt = output_format(ctx, output, as_json)
    check_id("volume", volume_id)
    if force:
        warn("--force is deprecated here: it means --allow-persistent")
        allow_persistent = True
    factory, chosen = context(ctx, region, "ebs delete")
    ec2 = factory.ec2(chosen)
    disk = hand_volumes.volume(ec2, chosen, volume_id)
    if disk.attachments:
        raise Refused(f"{volume_id} is attached to {disk.attachments[0].instance_id}: detach it first")
    scope = scope_tag()
    problems = ownership_problems(
        disk, allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner, scope=scope
    )
    if is_persistent(disk.tags) and not allow_persistent:
        problems.insert(0, f"it is tagged {tags.PERSISTENT}: --allow-persistent to go ahead")
    if problems:
        raise Refused(f"{volume_id} not deleted: {'; '.join(problems)}")
    confirm(
        ctx,
        [
            f"delete {volume_id}: {disk.size_gib} GiB {disk.volume_type} in {disk.availability_zone}, "
            f"made {format_instant(disk.create_time)}, {describe_owner(disk, scope)}",
            f"its data is gone for good (a snapshot keeps it: trainctl ebs snapshot create {volume_id})",
        ],
        f"Delete {volume_id}?",
        yes=yes,
    )
    hand_volumes.delete_volume(ec2, chosen, volume_id, force=allow_persistent)
    emit(fmt, {"volume_id": volume_id, "deleted": True}, lambda: console.print(Text(f"deleted {volume_id}")))


@snapshots.command("create")
def snapshot_create(
    ctx: typer.Context,
    volume_id: str,
    description: Annotated[str, typer.Option(help="Snapshot description.")] = "trainctl snapshot",
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Snapshot a volume (its owner, scope and persistence tags come along)."""
    fmt = output_format(ctx, output, as_json)
    check_id("volume", volume_id)
    factory, chosen = context(ctx, region, "ebs snapshot create")
    snapshot_id = hand_volumes.snapshot(factory.ec2(chosen), chosen, volume_id, description[:255])
    emit(
        fmt,
        {"snapshot_id": snapshot_id, "volume_id": volume_id},
        lambda: console.print(Text(f"snapshot {snapshot_id} of {volume_id} started")),
    )


SNAPSHOT_COLUMNS = (
    Col("snapshot", ESSENTIAL, whole=True),
    Col("of volume", 80, whole=True),
    Col("size", 90, whole=True, justify="right"),
    Col("started", 60, whole=True),
    Col("P", 95, whole=True),
    Col("depends on it", 85, min_width=16),
    Col("region", 30, whole=True),
)


@snapshots.command("list")
def snapshot_list(ctx: typer.Context, region: Regions = None, as_json: AsJson = False, output: Output = None) -> None:
    """Own snapshots, warning where an AMI uses one or a volume was restored from it."""
    fmt = output_format(ctx, output, as_json)
    factory, regions = contexts(ctx, region)
    rows: list[dict[str, Any]] = []
    for chosen in regions:
        inventory = Ec2Inventory(factory.ec2(chosen), chosen).read()
        dependencies = hand_volumes.snapshot_dependencies(inventory)
        rows += [
            {
                "snapshot_id": s.resource_id,
                "region": chosen,
                "volume_id": s.volume_id,
                "size_gib": s.volume_size_gib,
                "started": format_instant(s.start_time),
                "persistent": is_persistent(s.tags),
                "warnings": dependencies[s.resource_id].warnings() if s.resource_id in dependencies else [],
            }
            for s in sorted(inventory.snapshots, key=lambda s: s.resource_id)
        ]

    def show() -> None:
        print_table(
            console,
            f"snapshots in {', '.join(regions)}",
            SNAPSHOT_COLUMNS,
            [
                [
                    r["snapshot_id"],
                    r["volume_id"] or "-",
                    f"{r['size_gib']} GiB",
                    r["started"],
                    "P" if r["persistent"] else "",
                    Text("; ".join(r["warnings"]), style="yellow") if r["warnings"] else "-",
                    r["region"],
                ]
                for r in rows
            ],
        )

    emit(fmt, rows, show)


@ebs.command("restore")
def ebs_restore(
    ctx: typer.Context,
    snapshot_id: str,
    zone: Annotated[str, typer.Option(help="Availability zone of the new volume.")],
    volume_type: Annotated[str, typer.Option("--type", help="gp3, gp2, io1, io2, st1 or sc1.")] = "gp3",
    iops: Annotated[
        int | None, typer.Option(help="Provisioned IOPS: required for io1 and io2, optional for gp3.", min=100)
    ] = None,
    throughput: Annotated[
        int | None, typer.Option(help="Provisioned throughput in MiB/s, gp3 only (125 and up).", min=125, max=2000)
    ] = None,
    initialization_rate: Annotated[
        int | None, typer.Option(help="Provisioned initialisation rate in MiB/s (100-300): no pre-warm read needed.")
    ] = None,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    yes: Yes = False,
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Restore a volume from a snapshot in a chosen zone. The copy is yours: a snapshot outside the scope or
    someone else's needs the override, and then it asks."""
    fmt = output_format(ctx, output, as_json)
    check_id("snapshot", snapshot_id)
    _refuse(volume_spec.volume_problem(volume_type, None, iops, throughput))
    _refuse(volume_spec.initialization_rate_problem(initialization_rate))
    factory, chosen = context(ctx, region, "ebs restore")
    _refuse(volume_spec.zone_problem(zone, chosen))
    ec2 = factory.ec2(chosen)
    source = hand_volumes.find_snapshot(ec2, chosen, snapshot_id)
    size = max(1, source.volume_size_gib)
    _refuse(
        volume_spec.volume_problem(volume_type, size, iops, throughput, size_said=f"{snapshot_id} holds {size} GiB")
    )
    _refuse(hand_volumes.unknown_zone(ec2, chosen, zone))
    # A restore copies the snapshot's data into a volume tagged the asker's: another's data, or data outside the
    # scope, is copied only with the override that names it, and after a yes.
    scope = scope_tag()
    problems = ownership_problems(
        source, allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner, scope=scope
    )
    if problems:
        raise Refused(f"{snapshot_id} not restored: {'; '.join(problems)}")
    waivers = Waivers.of(allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner)
    waived = waivers.waived(ownership(source, me=owner(), scope_tag=scope))
    if waived:
        plan = [
            f"restore {snapshot_id} ({size} GiB, {describe_owner(source, scope)}) as a new {volume_type} volume in "
            f"{zone}, tagged as yours",
            *(f"waived: {p.text}" for p in waived),
        ]
        confirm(ctx, plan, f"Restore {snapshot_id}?", yes=yes)
    volume_id = hand_volumes.restore(
        ec2,
        snapshot_id,
        size_gib=size,
        zone=zone,
        volume_type=volume_type,
        owner=_owner_for_new_volume(),
        scope_tag=scope_tag(),
        initialization_rate=initialization_rate,
        iops=iops,
        throughput_mibps=throughput,
    )
    result = {
        "volume_id": volume_id,
        "snapshot_id": snapshot_id,
        "zone": zone,
        "size_gib": size,
        "type": volume_type,
        "iops": iops,
        "throughput_mibps": throughput,
        "initialization_rate_mibps": initialization_rate,
    }
    emit(fmt, result, lambda: console.print(Text(f"restoring {snapshot_id} as {volume_id} in {zone}")))
    if initialization_rate is not None:
        # EC2 updates a volume's initialisation status within about 5 minutes (DescribeVolumeStatus): nothing to
        # wait for here.
        note(
            ctx,
            f"initialisation at {initialization_rate} MiB/s requested; follow it with `aws ec2 describe-volume-status "
            f"--volume-ids {volume_id}` (InitializationStatusDetails: progress in percent, estimated seconds left)",
        )


@ebs.command("pre-warm")
def ebs_pre_warm(
    ctx: typer.Context,
    volume_id: str,
    s3_uri: str,
    mount_point: Annotated[str, typer.Option(help="Where the worker mounts it.")] = "/mnt/prewarm",
    instance_id: Annotated[str | None, typer.Option(help="Use this instance instead of a worker.")] = None,
    snapshot_after: Annotated[
        bool, typer.Option("--snapshot-after", help="Snapshot the volume once it is filled, to restore it next time.")
    ] = False,
    allow_persistent: Annotated[
        bool, typer.Option("--allow-persistent", help="Fill a volume tagged trainctl:persistent (it is overwritten).")
    ] = False,
    timeout: Annotated[str, typer.Option(help="Stop following after this long, e.g. 30m or 6h.")] = "6h",
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Fill a volume from S3 with the pre-warm workflow (the same as `trainctl prewarm`)."""
    automation.prewarm(
        ctx,
        volume_id,
        s3_uri,
        mount_point=mount_point,
        instance_id=instance_id,
        snapshot_after=snapshot_after,
        allow_persistent=allow_persistent,
        timeout=timeout,
        region=region,
        as_json=as_json,
        output=output,
    )


# ------------------------------------------------------------------------------------------------ instances

INSTANCE_COLUMNS = (
    Col("instance", ESSENTIAL, whole=True),
    Col("type", 90, whole=True),
    Col("state", 85, whole=True),
    Col("per hour", ESSENTIAL, whole=True, justify="right"),
    Col("owner", 70, min_width=8),
    Col("up", 60, whole=True, justify="right"),
    Col("volumes", 55, min_width=22),
    Col("lifecycle", 50, whole=True),
    Col("zone", 40, whole=True),
    Col("region", 30, whole=True),
)


@instances.command("list")
def instances_list(ctx: typer.Context, region: Regions = None, as_json: AsJson = False, output: Output = None) -> None:
    """Instances: type, state, lifecycle, zone, owner, age, cost per hour and attached volumes."""
    fmt = output_format(ctx, output, as_json)
    factory, regions = contexts(ctx, region)
    now = system_clock()
    rows: list[dict[str, Any]] = []
    for chosen in regions:
        reader = Ec2Inventory(factory.ec2(chosen), chosen)
        inventory = RegionInventory(region=chosen, instances=tuple(reader.instances()), volumes=tuple(reader.volumes()))
        costs = hourly_costs(factory, inventory)
        persistent = {v.resource_id for v in inventory.volumes if is_persistent(v.tags)}
        rows += [
            {
                "instance_id": i.resource_id,
                "region": chosen,
                "type": i.instance_type,
                "state": i.state,
                "lifecycle": i.lifecycle,
                "zone": i.availability_zone,
                "owner": i.tags.get(tags.OWNER),
                "age_hours": round((now - i.launch_time).total_seconds() / 3600, 1),
                "hourly_usd": costs.get(i.resource_id),
                "volumes": [
                    d.volume_id + (" (persistent)" if d.volume_id in persistent else "") for d in i.block_devices
                ],
            }
            for i in sorted(inventory.instances, key=lambda i: i.resource_id)
        ]

    def show() -> None:
        print_table(
            console,
            f"instances in {', '.join(regions)}",
            INSTANCE_COLUMNS,
            [
                [
                    r["instance_id"],
                    r["type"],
                    r["state"],
                    _usd(r["hourly_usd"]),
                    r["owner"] or "-",
                    _hours(r["age_hours"]),
                    "\n".join(r["volumes"]) or "-",
                    r["lifecycle"],
                    r["zone"],
                    r["region"],
                ]
                for r in rows
            ],
        )

    emit(fmt, rows, show)


def _training_words(training: TrainingCheck) -> str:
    generic = "the training check gave no verdict"
    if training.detail and training.detail != generic and generic not in training.detail:
        return f"{generic} ({training.detail})"
    return training.detail or generic


@instances.command("terminate")
def instances_terminate(
    ctx: typer.Context,
    instance_id: str,
    ignore_min_age: Annotated[
        bool, typer.Option("--ignore-min-age", help="Allow an instance younger than TRAINCTL_MIN_AGE (it asks).")
    ] = False,
    ignore_unknown_training: Annotated[
        bool,
        typer.Option(
            "--ignore-unknown-training",
            help="Allow it when the SSM training check cannot tell (never when a job is running; it asks).",
        ),
    ] = False,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    force: Annotated[
        bool,
        typer.Option("--force", hidden=True, help="Deprecated: --ignore-min-age --ignore-unknown-training."),
    ] = False,
    yes: Yes = False,
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Terminate an instance: shows what goes and what stays, and asks. Persistent volumes are kept; a running
    training job, a persistent instance, a young one or an unknown training state refuses."""
    fmt = output_format(ctx, output, as_json)
    check_id("instance", instance_id)
    if force:
        warn("--force is deprecated here: it means --ignore-min-age --ignore-unknown-training")
        ignore_min_age = ignore_unknown_training = True
    factory, chosen = context(ctx, region, "instances terminate")
    settings = SweepSettings.from_env(os.environ)
    ec2 = factory.ec2(chosen)
    machine = hand_instances.instance(ec2, chosen, instance_id)
    volumes = [hand_volumes.volume(ec2, chosen, d.volume_id) for d in machine.block_devices]
    checker = SsmTrainingCheck(
        factory.ssm(chosen),
        document=names.TRAINING_DOCUMENT,
        pid_file=settings.training_pid_file,
        process_patterns=settings.training_process_patterns,
        timeout=settings.training_check_timeout,
    )
    if machine.state == "running":
        wait = format_duration(settings.training_check_timeout)
        note(ctx, f"asking {instance_id} whether a training job runs (up to {wait})")
        training = checker.check([instance_id])[instance_id]
    else:
        training = TrainingCheck(Training.IDLE, "not running")
    now = system_clock()
    check = hand_instances.check_termination(
        machine,
        volumes,
        training,
        now=now,
        min_age=settings.min_age,
        scope_tag=settings.scope_tag,
        ignore_min_age=ignore_min_age,
        ignore_unknown_training=ignore_unknown_training,
    )
    reasons = list(check.reasons)
    reasons += ownership_problems(
        machine, allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner, scope=settings.scope_tag
    )
    result: dict[str, Any] = {
        "instance_id": instance_id,
        "verdict": "refuse" if reasons else "terminate",
        "reasons": reasons,
        "kept_volumes": [v for v, _ in check.keep],
        "left_behind": [v.volume_id for v in check.left_behind],
        "training": training.detail,
    }
    if reasons:
        if fmt != "table":
            emit(fmt, result, lambda: None)
        raise Refused(f"{instance_id} not terminated: {'; '.join(reasons)}")
    kept = {v.volume_id for v in check.left_behind}
    going = [d.volume_id for d in machine.block_devices if d.volume_id not in kept]
    up = _hours((now - machine.launch_time).total_seconds() / 3600)
    plan = [
        f"terminate {instance_id}: {machine.instance_type} {machine.state} in {machine.availability_zone}, "
        f"up {up}, {describe_owner(machine, settings.scope_tag)}"
    ]
    if check.left_behind:
        plan.append(f"kept: {left_behind_words(check.left_behind)}; each still billed until deleted")
    if check.keep:
        plan.append(f"DeleteOnTermination cleared first (read back) on {', '.join(v for v, _ in check.keep)}")
    if going:
        plan.append(f"deleted with it: {', '.join(going)} (the launch's own, or in scope and yours)")
    confirm(ctx, plan, f"Terminate {instance_id}?", yes=yes)
    hand_instances.terminate(ec2, machine, hand_instances.TerminationCheck("terminate", (), check.keep))
    emit(
        fmt,
        result,
        lambda: console.print(
            Text(f"terminating {instance_id}" + (f"; left behind {', '.join(result['left_behind'])}" if kept else ""))
        ),
    )


# ------------------------------------------------------------------------------------------------ resources


@resources.command("summary")
def resources_summary(
    ctx: typer.Context,
    region: Regions = None,
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            help="aws, runpod or lyceum; repeat for more (default: AWS and every configured provider).",
        ),
    ] = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Counts and cost of what exists (AWS, RunPod and Lyceum), and the thresholds it breaks."""
    fmt = output_format(ctx, output, as_json)
    environ = dict(os.environ)
    chosen_providers = automation.providers_to_sweep(provider, environ)
    factory, regions = contexts(ctx, region)
    counts: dict[str, dict[str, int]] = {}
    for chosen in regions if "aws" in chosen_providers else ():
        inventory = Ec2Inventory(factory.ec2(chosen), chosen).read()
        for kind, items in (
            ("instance", inventory.instances),
            ("volume", inventory.volumes),
            ("snapshot", inventory.snapshots),
        ):
            for item in items:
                by_state = counts.setdefault(kind, {})
                by_state[item.state] = by_state.get(item.state, 0) + 1
    settings = CostSettings.from_env(os.environ, regions=regions)
    clock = automation.now_from_aws(ctx, factory, regions[0])
    others = [automation.provider_costs_once(name, environ, clock()) for name in chosen_providers if name != "aws"]
    result = automation.cost_once(factory, settings, clock, environ, providers=others, aws="aws" in chosen_providers)
    summary = result.to_json()
    by_provider = {"aws": counts} if "aws" in chosen_providers else {}
    by_provider |= {other.provider: {k: dict(v) for k, v in other.counts.items()} for other in others}
    payload = {
        "region": regions[0],
        "regions": list(regions),
        "counts": counts,
        "providers": by_provider,
        "hourly_usd": summary["hourly_usd"],
        "daily_usd": summary["daily_usd"],
        "unpriced": summary["unpriced"],
        "warnings": [b["message"] for b in summary["breaches"]],
        "errors": list(result.provider_errors),
    }
    rows = [
        {"provider": name, "kind": kind, "state": state, "count": n}
        for name, kinds in by_provider.items()
        for kind, states in sorted(kinds.items())
        for state, n in sorted(states.items())
    ]
    where = ", ".join([*(regions if "aws" in chosen_providers else ()), *(o.provider for o in others)])

    def show() -> None:
        print_table(
            console,
            f"resources in {where}",
            (
                Col("provider", 95, whole=True),
                Col("kind", ESSENTIAL, whole=True),
                Col("count", ESSENTIAL, whole=True, justify="right"),
                Col("by state", 90, min_width=20),
            ),
            [
                [name, kind, str(sum(states.values())), ", ".join(f"{n} {s}" for s, n in sorted(states.items()))]
                for name, kinds in by_provider.items()
                for kind, states in sorted(kinds.items())
            ],
        )
        line = Text(f"burning ${payload['hourly_usd']:,.2f}/hour, ${payload['daily_usd']:,.2f}/day")
        if payload["unpriced"]:
            line.append(f"; {len(payload['unpriced'])} unpriced, so the totals are low", style="red")
        console.print(line)
        for warning in payload["warnings"]:
            console.print(Text.assemble(("warning: ", "yellow"), warning))

    emit(fmt, payload, show, rows=rows)
    # As the sweep does: each provider that failed is one line, the rest is counted and priced.
    for error in result.provider_errors:
        warn(error)
    if result.provider_errors:
        raise typer.Exit(EXIT_FAILED)


@resources.command("cleanup")
def resources_cleanup(
    ctx: typer.Context,
    region: Regions = None,
    enforce: Annotated[bool, typer.Option(help="Act: mark, unmark, delete, stop, terminate.")] = False,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """The cleanup sweep: dry-run unless --enforce (the same as `trainctl sweep`)."""
    automation.sweep(
        ctx, region=region, enforce=enforce, at=None, ignore_min_age=False, force=False, as_json=as_json, output=output
    )


@resources.command("graph")
def resources_graph(
    ctx: typer.Context,
    region: Region = None,
    graph_format: Annotated[str, typer.Option("--format", help="tree, dot or mermaid.")] = "tree",
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Instances, volumes, snapshots and AMIs, and how they depend on each other."""
    if graph_format not in ("tree", "dot", "mermaid"):
        raise fail(f"--format {graph_format}: use tree, dot or mermaid", EXIT_USAGE)
    fmt = output_format(ctx, output, as_json)
    factory, chosen = context(ctx, region, "resources graph")
    inventory = Ec2Inventory(factory.ec2(chosen), chosen).read()
    nodes, edges = hand_graph.resource_graph(inventory)
    if fmt != "table":
        links = [{"source": e.source, "target": e.target, "label": e.label} for e in edges]
        payload = {"region": chosen, "nodes": [{"id": k, "label": v} for k, v in sorted(nodes.items())], "edges": links}
        emit(fmt, payload, lambda: None, rows=links)
        return
    if graph_format == "dot":
        typer.echo(hand_graph.graph_dot(nodes, edges))
        return
    if graph_format == "mermaid":
        typer.echo(hand_graph.graph_mermaid(nodes, edges))
        return
    children: dict[str, list[tuple[str, str]]] = {}
    for edge in edges:
        children.setdefault(edge.source, []).append((edge.label, edge.target))
    targets = {e.target for e in edges}
    root = Tree(Text(chosen, style="bold"))

    def grow(branch: Tree, node: str, seen: frozenset[str]) -> None:
        for label, child in children.get(node, []):
            if child not in seen:
                grow(branch.add(Text.assemble((label, "dim"), " ", nodes[child])), child, seen | {child})

    for node in sorted(n for n in nodes if n not in targets):
        grow(root.add(Text(nodes[node])), node, frozenset({node}))
    console.print(root)


# ------------------------------------------------------------------------------------------------- transfer


def transfer_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A local path, s3://bucket/key or instance:i-...:/path.")],
    destination: Annotated[str, typer.Argument(help="A local path, s3://bucket/key or instance:i-...:/path.")],
    to_cache: Annotated[
        bool,
        typer.Option(
            "--to-cache",
            help="Fill a local cache: sync an s3://bucket/prefix/ into a folder on the instance's instance store "
            "(under /opt/dlami/nvme/ or /mnt/); only new or changed objects are copied, and the instance is tagged "
            "with what the fill measured.",
        ),
    ] = False,
    allow_out_of_scope: AllowOutOfScope = False,
    allow_other_owner: AllowOtherOwner = False,
    yes: Yes = False,
    region: Region = None,
    as_json: AsJson = False,
    output: Output = None,
) -> None:
    """Copy between local paths, S3 and instances (a trailing / means a directory). A copy runs as root on an
    instance: one outside the scope or someone else's needs the override, and then it asks."""
    # Cold start: rich.progress costs about 140 ms, and only a transfer shows a bar.
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    fmt = output_format(ctx, output, as_json)
    try:
        src, dst = parse_endpoint(source), parse_endpoint(destination)
        if to_cache:
            check_cache_endpoints(src, dst)
    except BadEndpoint as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    factory, chosen = context(ctx, region, "transfer")
    bar = Progress(
        "{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        # A bar is for a person watching: not in JSON or CSV, not with --quiet, not in a log.
        disable=fmt != "table" or state_of(ctx).quiet or not err_console.is_terminal,
    )
    scope = scope_tag()
    doing = (
        f"fill the local cache {dst.path} from {src.uri}"
        if to_cache
        else f"copy {one_line(source, 120)} to {one_line(destination, 120)}, running as root"
    )

    def ask(machine: Instance, waived: list[Problem]) -> None:
        plan = [
            f"{doing} on {machine.resource_id} ({machine.instance_type} {machine.state}, "
            f"{describe_owner(machine, scope)})",
            *(f"waived: {p.text}" for p in waived),
        ]
        # A question under a live progress bar is garbled: the bar stops while it is asked.
        live = bar.live.is_started
        if live:
            bar.stop()
        confirm(ctx, plan, f"{'Fill the cache on' if to_cache else 'Copy on'} {machine.resource_id}?", yes=yes)
        if live:
            bar.start()

    consent = Consent(
        owner(),
        scope,
        Waivers.of(allow_out_of_scope=allow_out_of_scope, allow_other_owner=allow_other_owner),
        ask,
    )
    if to_cache:
        filled = fill_cache(
            src,
            dst,
            s3=factory.client("s3", chosen),
            ssm=factory.ssm(chosen),
            ec2=factory.ec2(chosen),
            region=chosen,
            document=names.LOCAL_CACHE_DOCUMENT,
            consent=consent,
        )
        show_cache_fill(fmt, filled, dst.instance_id)
        return
    with bar:
        task = bar.add_task(f"{source} -> {destination}", total=None)
        moved = transfer(
            src,
            dst,
            s3=factory.client("s3", chosen),
            ssm_for=lambda: factory.ssm(chosen),
            ec2_for=lambda: factory.ec2(chosen),
            region=chosen,
            document=names.TRANSFER_DOCUMENT,
            staging_uri=os.environ.get("TRAINCTL_TRANSFER_STAGING_URI"),
            consent=consent,
            progress=lambda n: bar.advance(task, n),
        )
    payload = {"files": moved.files, "bytes": moved.bytes, "route": moved.route, "commands": list(moved.command_ids)}
    emit(
        fmt,
        payload,
        lambda: console.print(
            Text(
                (f"copied {moved.files} file(s), {moved.bytes:,} bytes " if moved.files else "copied ")
                + f"via {moved.route}"
            )
        ),
    )


def show_cache_fill(fmt: OutputFormat, filled: CacheResult, instance_id: str) -> None:
    """What a cache fill copied and measured, and the cache against the instance store."""
    fill, store = filled.fill, filled.store
    rate = fill.rate_mib_s
    payload = {
        "files": fill.copied_files,
        "bytes": fill.copied_bytes,
        "route": f"local cache on {instance_id} via SSM ({fill.tool})",
        "commands": [filled.command_id],
        "cache": {
            "instance_id": instance_id,
            "source": filled.source,
            "path": filled.path,
            "seconds": fill.seconds,
            "rate_mib_s": None if rate is None else round(rate, 1),
            "source_bytes": filled.data_bytes,
            "source_objects": filled.objects,
            "cache_bytes": fill.cache_bytes,
            "cache_files": fill.cache_files,
            "filesystem_bytes": fill.store_bytes,
            "free_bytes": fill.free_bytes,
            "instance_type": store.instance_type,
            "instance_store_bytes": store.total_bytes,
            "tool": fill.tool,
            "tagged": filled.tagged,
        },
    }
    if filled.tag_error:
        warn(
            f"the cache is filled but {instance_id} could not be tagged with the fill ({filled.tag_error}): "
            "later plans will not learn from it"
        )
    copied = (
        f"copied {fill.copied_files:,} new file(s), {fill.copied_bytes:,} bytes in {fill.seconds:,.1f} s"
        + (f" ({rate:,.1f} MiB/s)" if rate is not None else "")
        if fill.copied_files
        else f"nothing new to copy, the cache already holds every object ({fill.seconds:,.1f} s)"
    )
    store_words = (
        f" for a {store.total_bytes / 10**9:,.0f} GB instance store ({store.instance_type})"
        if store.total_bytes
        else f" for {store.instance_type}'s instance store (its size unknown)"
    )
    emit(
        fmt,
        payload,
        lambda: console.print(
            Text(
                f"{filled.path} on {instance_id}: {copied}. The data is {filled.data_bytes / 10**9:,.2f} GB"
                f"{store_words}; the cache holds {fill.cache_bytes / 10**9:,.2f} GB and "
                f"{fill.free_bytes / 10**9:,.1f} GB is free."
            )
        ),
    )
