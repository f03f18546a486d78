"""`trainctl ebs`, `instances`, `resources` and `transfer`: work by hand, through the automation's protections."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError
from rich.table import Table
from rich.tree import Tree

from trainctl.aws.clients import ClientFactory, error_code
from trainctl.aws.ec2 import Ec2Inventory
from trainctl.aws.training_check import SsmTrainingCheck
from trainctl.cli import automation
from trainctl.cli.output import EXIT_USAGE, console, emit, err_console, factory_of, fail
from trainctl.core import names, tags
from trainctl.core.clock import format_instant, system_clock
from trainctl.core.errors import TrainctlError
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.protections import is_persistent
from trainctl.core.resources import RegionInventory
from trainctl.core.settings import CostSettings, SweepSettings
from trainctl.cost.run import has_price_list_api, price_book_for, price_inventories
from trainctl.handwork import graph as hand_graph
from trainctl.handwork import instances as hand_instances
from trainctl.handwork import refusals
from trainctl.handwork import volumes as hand_volumes
from trainctl.handwork.transfer import BadEndpoint, parse_endpoint, transfer

REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
Region = Annotated[str | None, typer.Option("--region", help="Region (default: the standard AWS environment's).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

ebs = typer.Typer(help="EBS volumes and snapshots: create, list, attach, detach, delete, snapshot, restore, pre-warm.")
snapshots = typer.Typer(help="EBS snapshots: create one, or list them with what depends on them.")
ebs.add_typer(snapshots, name="snapshot")
instances = typer.Typer(help="EC2 instances: list them, or terminate one under the safety model.")
resources = typer.Typer(help="Everything at once: a summary with costs, the cleanup sweep, the dependency graph.")


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A bad id, missing credentials or a wrong region is one line on stderr and exit 1, not a traceback."""
    try:
        yield
    except (refusals.Refused, refusals.NotFound, TrainctlError) as exc:
        raise fail(str(exc)) from None
    except NoCredentialsError:
        raise fail("no AWS credentials: set a profile, AWS_ACCESS_KEY_ID or AWS_ENDPOINT_URL") from None
    except NoRegionError:
        raise fail("no region: pass --region or set AWS_REGION") from None
    except EndpointConnectionError as exc:
        raise fail(f"cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}: is the region right?") from None
    except ClientError as exc:
        raise fail(f"{error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}") from None


def context(ctx: typer.Context, region: str | None) -> tuple[ClientFactory, str]:
    factory = factory_of(ctx)
    chosen = region or factory.default_region
    if not chosen:
        raise NoRegionError()
    if not REGION_NAME.match(chosen):
        raise fail(f"--region {chosen!r} is not a region name such as us-east-1", EXIT_USAGE)
    return factory, chosen


def owner() -> str | None:
    return os.environ.get("TRAINCTL_OWNER") or os.environ.get("USER") or None


def scope_tag() -> str:
    return SweepSettings.from_env(os.environ).scope_tag


def hourly_costs(factory: ClientFactory, inventory: RegionInventory) -> dict[str, float | None]:
    """USD per hour per volume and instance, through the price chain (no table, no alerts)."""
    settings = CostSettings(regions=(inventory.region,))
    book = price_book_for(factory, settings, system_clock, use_table=False, use_api=has_price_list_api(os.environ))
    return {c.resource_id: c.hourly_usd for c in price_inventories([inventory], book, {}, system_clock())}


def _usd(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:,.4f}"


# ----------------------------------------------------------------------------------------------------- ebs


@ebs.command("create")
def ebs_create(
    ctx: typer.Context,
    size: Annotated[int, typer.Option(help="Size in GiB.", min=1, max=65536)] = 100,
    volume_type: Annotated[str, typer.Option("--type", help="gp3, gp2, io1, io2, st1 or sc1.")] = "gp3",
    zone: Annotated[str | None, typer.Option(help="Availability zone (default: the region's first).")] = None,
    persistent: Annotated[bool, typer.Option(help=f"Tag it {tags.PERSISTENT}: nothing automatic deletes it.")] = False,
    pre_warm: Annotated[
        str | None, typer.Option("--pre-warm", help="Fill it from this s3:// URI once created.")
    ] = None,
    region: Region = None,
    as_json: AsJson = False,
) -> None:
    """Create a data volume (in scope, owned by you), optionally persistent and pre-warmed from S3."""
    if volume_type not in ("gp3", "gp2", "io1", "io2", "st1", "sc1"):
        raise fail(f"--type {volume_type!r}: use gp3, gp2, io1, io2, st1 or sc1", EXIT_USAGE)
    with one_line_errors():
        factory, chosen = context(ctx, region)
        ec2 = factory.ec2(chosen)
        target = zone or ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
        volume_id = hand_volumes.create_volume(
            ec2,
            size_gib=size,
            volume_type=volume_type,
            zone=target,
            persistent=persistent,
            owner=owner(),
            scope_tag=scope_tag(),
        )
        ec2.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    result: dict[str, Any] = {"volume_id": volume_id, "zone": target, "size_gib": size, "persistent": persistent}
    emit(as_json and not pre_warm, result, lambda: console.print(f"created {volume_id} in {target}"))
    if pre_warm:
        automation.prewarm(ctx, volume_id, pre_warm, as_json=as_json)


@ebs.command("list")
def ebs_list(ctx: typer.Context, region: Region = None, as_json: AsJson = False) -> None:
    """Volumes: persistent marker, attachment, zone, age and cost per hour."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        inventory = RegionInventory(region=chosen, volumes=tuple(Ec2Inventory(factory.ec2(chosen), chosen).volumes()))
        costs = hourly_costs(factory, inventory)
    now = system_clock()
    rows: list[dict[str, Any]] = [
        {
            "volume_id": v.resource_id,
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

    def show() -> None:
        table = Table(title=f"EBS volumes in {chosen}", title_justify="left")
        for column in ("volume", "P", "state", "attached to", "zone", "type", "size", "age", "per hour", "owner"):
            table.add_column(column)
        for r in rows:
            table.add_row(
                r["volume_id"],
                "P" if r["persistent"] else "",
                r["state"],
                r["attached_to"] or "-",
                r["zone"],
                r["type"],
                f"{r['size_gib']} GiB",
                f"{r['age_hours']} h",
                _usd(r["hourly_usd"]),
                r["owner"] or "-",
            )
        console.print(table)
        console.print("[dim]P: trainctl:persistent[/]")

    emit(as_json, rows, show)


@ebs.command("attach")
def ebs_attach(
    ctx: typer.Context,
    volume_id: str,
    instance_id: str,
    device: Annotated[str, typer.Option(help="Device name on the instance.")] = "/dev/sdf",
    region: Region = None,
) -> None:
    """Attach a volume to an instance in the same zone."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        hand_volumes.attach(factory.ec2(chosen), chosen, volume_id, instance_id, device)
    console.print(f"attached {volume_id} to {instance_id} as {device}")


@ebs.command("detach")
def ebs_detach(
    ctx: typer.Context,
    volume_id: str,
    force: Annotated[bool, typer.Option(help="Force a detach the instance does not answer (may lose writes).")] = False,
    region: Region = None,
) -> None:
    """Detach a volume from its instance."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        holder = hand_volumes.detach(factory.ec2(chosen), chosen, volume_id, force=force)
    console.print(f"detaching {volume_id} from {holder}")


@ebs.command("delete")
def ebs_delete(
    ctx: typer.Context,
    volume_id: str,
    force: Annotated[bool, typer.Option(help=f"Allow deleting a volume tagged {tags.PERSISTENT}.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for the confirmation --force needs.")] = False,
    region: Region = None,
) -> None:
    """Delete a volume; refuses an attached one, and a persistent one without --force and a confirmation."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        ec2 = factory.ec2(chosen)
        disk = hand_volumes.volume(ec2, chosen, volume_id)
        if force and is_persistent(disk.tags) and not disk.attachments and not yes:
            typer.confirm(f"{volume_id} is persistent ({disk.size_gib} GiB). Delete it for good?", abort=True)
        hand_volumes.delete_volume(ec2, chosen, volume_id, force=force)
    console.print(f"deleted {volume_id}")


@snapshots.command("create")
def snapshot_create(
    ctx: typer.Context,
    volume_id: str,
    description: Annotated[str, typer.Option(help="Snapshot description.")] = "trainctl snapshot",
    region: Region = None,
    as_json: AsJson = False,
) -> None:
    """Snapshot a volume (its owner, scope and persistence tags come along)."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        snapshot_id = hand_volumes.snapshot(factory.ec2(chosen), chosen, volume_id, description[:255])
    emit(
        as_json,
        {"snapshot_id": snapshot_id, "volume_id": volume_id},
        lambda: console.print(f"snapshot {snapshot_id} of {volume_id} started"),
    )


@snapshots.command("list")
def snapshot_list(ctx: typer.Context, region: Region = None, as_json: AsJson = False) -> None:
    """Own snapshots, warning where an AMI uses one or a volume was restored from it."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        inventory = Ec2Inventory(factory.ec2(chosen), chosen).read()
    dependencies = hand_volumes.snapshot_dependencies(inventory)
    rows: list[dict[str, Any]] = [
        {
            "snapshot_id": s.resource_id,
            "volume_id": s.volume_id,
            "size_gib": s.volume_size_gib,
            "started": format_instant(s.start_time),
            "persistent": is_persistent(s.tags),
            "warnings": dependencies[s.resource_id].warnings() if s.resource_id in dependencies else [],
        }
        for s in sorted(inventory.snapshots, key=lambda s: s.resource_id)
    ]

    def show() -> None:
        table = Table(title=f"snapshots in {chosen}", title_justify="left")
        for column in ("snapshot", "of volume", "size", "started", "P", "depends on it"):
            table.add_column(column)
        for r in rows:
            warning = "; ".join(r["warnings"])
            table.add_row(
                r["snapshot_id"],
                r["volume_id"] or "-",
                f"{r['size_gib']} GiB",
                r["started"],
                "P" if r["persistent"] else "",
                f"[yellow]{warning}[/]" if warning else "-",
            )
        console.print(table)

    emit(as_json, rows, show)


@ebs.command("restore")
def ebs_restore(
    ctx: typer.Context,
    snapshot_id: str,
    zone: Annotated[str, typer.Option(help="Availability zone of the new volume.")],
    volume_type: Annotated[str, typer.Option("--type", help="Volume type.")] = "gp3",
    initialization_rate: Annotated[
        int | None, typer.Option(help="Provisioned initialisation rate in MiB/s (100-300): no pre-warm read needed.")
    ] = None,
    region: Region = None,
    as_json: AsJson = False,
) -> None:
    """Restore a volume from a snapshot in a chosen zone."""
    if initialization_rate is not None and not 100 <= initialization_rate <= 300:
        raise fail("--initialization-rate takes 100 to 300 MiB/s", EXIT_USAGE)
    with one_line_errors():
        factory, chosen = context(ctx, region)
        volume_id = hand_volumes.restore(
            factory.ec2(chosen),
            chosen,
            snapshot_id,
            zone=zone,
            volume_type=volume_type,
            owner=owner(),
            scope_tag=scope_tag(),
            initialization_rate=initialization_rate,
        )
    emit(
        as_json,
        {"volume_id": volume_id, "snapshot_id": snapshot_id, "zone": zone},
        lambda: console.print(f"restoring {snapshot_id} as {volume_id} in {zone}"),
    )


@ebs.command("pre-warm")
def ebs_pre_warm(
    ctx: typer.Context,
    volume_id: str,
    s3_uri: str,
    mount_point: Annotated[str, typer.Option(help="Where the worker mounts it.")] = "/mnt/prewarm",
    instance_id: Annotated[str | None, typer.Option(help="Use this instance instead of a worker.")] = None,
    as_json: AsJson = False,
) -> None:
    """Fill a volume from S3 with the pre-warm workflow (the same as `trainctl prewarm`)."""
    automation.prewarm(ctx, volume_id, s3_uri, mount_point=mount_point, instance_id=instance_id, as_json=as_json)


# ------------------------------------------------------------------------------------------------ instances


@instances.command("list")
def instances_list(ctx: typer.Context, region: Region = None, as_json: AsJson = False) -> None:
    """Instances: type, state, lifecycle, zone, owner, age, cost per hour and attached volumes."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        reader = Ec2Inventory(factory.ec2(chosen), chosen)
        inventory = RegionInventory(region=chosen, instances=tuple(reader.instances()), volumes=tuple(reader.volumes()))
        costs = hourly_costs(factory, inventory)
    persistent = {v.resource_id for v in inventory.volumes if is_persistent(v.tags)}
    now = system_clock()
    rows: list[dict[str, Any]] = [
        {
            "instance_id": i.resource_id,
            "type": i.instance_type,
            "state": i.state,
            "lifecycle": i.lifecycle,
            "zone": i.availability_zone,
            "owner": i.tags.get(tags.OWNER),
            "age_hours": round((now - i.launch_time).total_seconds() / 3600, 1),
            "hourly_usd": costs.get(i.resource_id),
            "volumes": [d.volume_id + (" (persistent)" if d.volume_id in persistent else "") for d in i.block_devices],
        }
        for i in sorted(inventory.instances, key=lambda i: i.resource_id)
    ]

    def show() -> None:
        table = Table(title=f"instances in {chosen}", title_justify="left")
        for column in ("instance", "type", "state", "lifecycle", "zone", "owner", "up", "per hour", "volumes"):
            table.add_column(column, overflow="fold")
        for r in rows:
            table.add_row(
                r["instance_id"],
                r["type"],
                r["state"],
                r["lifecycle"],
                r["zone"],
                r["owner"] or "-",
                f"{r['age_hours']} h",
                _usd(r["hourly_usd"]),
                ", ".join(r["volumes"]) or "-",
            )
        console.print(table)

    emit(as_json, rows, show)


@instances.command("terminate")
def instances_terminate(
    ctx: typer.Context,
    instance_id: str,
    force: Annotated[
        bool, typer.Option(help="Waive the minimum age and an unknown training state (never a running job).")
    ] = False,
    region: Region = None,
    as_json: AsJson = False,
) -> None:
    """Terminate an instance: persistent volumes are kept, a running training job or a young instance refuses."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        settings = SweepSettings.from_env(os.environ)
        ec2 = factory.ec2(chosen)
        machine = hand_instances.instance(ec2, chosen, instance_id)
        volumes = [hand_volumes.volume(ec2, chosen, d.volume_id) for d in machine.block_devices]
        document = names.TRAINING_DOCUMENT
        checker = SsmTrainingCheck(
            factory.ssm(chosen),
            document=document,
            pid_file=settings.training_pid_file,
            process_patterns=settings.training_process_patterns,
            timeout=settings.training_check_timeout,
        )
        training = checker.check([instance_id])[instance_id] if machine.state == "running" else _not_running()
        check = hand_instances.check_termination(
            machine, volumes, training, now=system_clock(), min_age=settings.min_age, force=force
        )
        result = {
            "instance_id": instance_id,
            "verdict": check.verdict,
            "reasons": list(check.reasons),
            "kept_volumes": [v for v, _ in check.keep],
            "training": training.detail,
        }
        if check.verdict == "refuse":
            emit(as_json, result, lambda: None)
        hand_instances.terminate(ec2, machine, check)
    emit(
        as_json,
        result,
        lambda: console.print(
            f"terminating {instance_id}"
            + (f"; kept {', '.join(result['kept_volumes'])}" if result["kept_volumes"] else "")
        ),
    )


def _not_running() -> Any:
    return TrainingCheck(Training.IDLE, "not running")


# ------------------------------------------------------------------------------------------------ resources


@resources.command("summary")
def resources_summary(ctx: typer.Context, region: Region = None, as_json: AsJson = False) -> None:
    """Counts and cost of what exists, and the thresholds it breaks."""
    with one_line_errors():
        factory, chosen = context(ctx, region)
        settings = CostSettings.from_env(os.environ, regions=(chosen,))
        result = automation.cost_once(factory, settings, None, dict(os.environ))
    counts: dict[str, dict[str, int]] = {}
    for item in result.resources:
        state = item.description.split()[-1]
        counts.setdefault(item.resource_type, {}).setdefault(state, 0)
        counts[item.resource_type][state] += 1
    summary = result.to_json()
    payload = {
        "region": chosen,
        "counts": counts,
        "hourly_usd": summary["hourly_usd"],
        "daily_usd": summary["daily_usd"],
        "unpriced": summary["unpriced"],
        "warnings": [b["message"] for b in summary["breaches"]],
    }

    def show() -> None:
        table = Table(title=f"resources in {chosen}", title_justify="left")
        for column in ("kind", "by state"):
            table.add_column(column)
        for kind, states in sorted(counts.items()):
            table.add_row(kind, ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
        console.print(table)
        console.print(f"burning ${payload['hourly_usd']:,.2f}/hour, ${payload['daily_usd']:,.2f}/day")
        for warning in payload["warnings"]:
            console.print(f"[yellow]warning:[/] {warning}")

    emit(as_json, payload, show)


@resources.command("cleanup")
def resources_cleanup(
    ctx: typer.Context,
    region: Annotated[list[str] | None, typer.Option("--region", help="Region to sweep; repeat for more.")] = None,
    enforce: Annotated[bool, typer.Option(help="Act: mark, unmark, delete, stop, terminate.")] = False,
    as_json: AsJson = False,
) -> None:
    """The cleanup sweep: dry-run unless --enforce (the same as `trainctl sweep`)."""
    automation.sweep(ctx, region=region, enforce=enforce, at=None, force=False, as_json=as_json)


@resources.command("graph")
def resources_graph(
    ctx: typer.Context,
    region: Region = None,
    output: Annotated[str, typer.Option("--format", help="tree, dot or mermaid.")] = "tree",
) -> None:
    """Instances, volumes, snapshots and AMIs, and how they depend on each other."""
    if output not in ("tree", "dot", "mermaid"):
        raise fail(f"--format {output!r}: use tree, dot or mermaid", EXIT_USAGE)
    with one_line_errors():
        factory, chosen = context(ctx, region)
        inventory = Ec2Inventory(factory.ec2(chosen), chosen).read()
    nodes, edges = hand_graph.resource_graph(inventory)
    if output == "dot":
        typer.echo(hand_graph.graph_dot(nodes, edges))
        return
    if output == "mermaid":
        typer.echo(hand_graph.graph_mermaid(nodes, edges))
        return
    children: dict[str, list[tuple[str, str]]] = {}
    for edge in edges:
        children.setdefault(edge.source, []).append((edge.label, edge.target))
    targets = {e.target for e in edges}
    root = Tree(f"[bold]{chosen}[/]")

    def grow(branch: Tree, node: str, seen: frozenset[str]) -> None:
        for label, child in children.get(node, []):
            if child not in seen:
                grow(branch.add(f"[dim]{label}[/] {nodes[child]}"), child, seen | {child})

    for node in sorted(n for n in nodes if n not in targets):
        grow(root.add(nodes[node]), node, frozenset({node}))
    console.print(root)


# ------------------------------------------------------------------------------------------------- transfer


def transfer_command(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="A local path, s3://bucket/key or instance:i-...:/path.")],
    destination: Annotated[str, typer.Argument(help="A local path, s3://bucket/key or instance:i-...:/path.")],
    region: Region = None,
    as_json: AsJson = False,
) -> None:
    """Copy between local paths, S3 and instances (a trailing / means a directory)."""
    # Cold start: rich.progress costs about 140 ms, and only a transfer shows a bar.
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    try:
        src, dst = parse_endpoint(source), parse_endpoint(destination)
    except BadEndpoint as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    with one_line_errors():
        factory, chosen = context(ctx, region)
        bar = Progress(
            "{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err_console,
            disable=as_json,
        )
        with bar:
            task = bar.add_task(f"{source} -> {destination}", total=None)
            moved = transfer(
                src,
                dst,
                s3=factory.client("s3", chosen),
                ssm_for=lambda: factory.ssm(chosen),
                document=names.TRANSFER_DOCUMENT,
                staging_uri=os.environ.get("TRAINCTL_TRANSFER_STAGING_URI"),
                progress=lambda n: bar.advance(task, n),
            )
    payload = {"files": moved.files, "bytes": moved.bytes, "route": moved.route, "commands": list(moved.command_ids)}
    emit(
        as_json,
        payload,
        lambda: console.print(
            (f"copied {moved.files} file(s), {moved.bytes} bytes " if moved.files else "copied ") + f"via {moved.route}"
        ),
    )
