"""Instances, volumes, snapshots and AMIs, and how they depend on each other: a tree, DOT or Mermaid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from trainctl.core.protections import is_persistent
from trainctl.core.resources import RegionInventory

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str


def resource_graph(inventory: RegionInventory) -> tuple[dict[str, str], list[Edge]]:
    """Nodes (id -> label) and edges: instance -> attached volume -> snapshot -> AMI, snapshot -> restored volume."""
    nodes: dict[str, str] = {}
    edges: list[Edge] = []
    for machine in inventory.instances:
        nodes[machine.resource_id] = f"{machine.resource_id} {machine.instance_type} {machine.state}"
        for device in machine.block_devices:
            edges.append(Edge(machine.resource_id, device.volume_id, device.device_name))
    for disk in inventory.volumes:
        marker = " persistent" if is_persistent(disk.tags) else ""
        nodes[disk.resource_id] = f"{disk.resource_id} {disk.volume_type} {disk.size_gib} GiB{marker}"
        if disk.snapshot_id:
            edges.append(Edge(disk.snapshot_id, disk.resource_id, "restored as"))
    for snap in inventory.snapshots:
        nodes[snap.resource_id] = f"{snap.resource_id} {snap.volume_size_gib} GiB"
        if snap.volume_id:
            edges.append(Edge(snap.volume_id, snap.resource_id, "snapshot"))
    for image in inventory.images:
        nodes[image.image_id] = f"{image.image_id} AMI {image.state}"
        for snapshot_id in image.snapshot_ids:
            edges.append(Edge(snapshot_id, image.image_id, "backs"))
    for edge in edges:
        nodes.setdefault(edge.source, f"{edge.source} (gone)")
        nodes.setdefault(edge.target, f"{edge.target} (gone)")
    return nodes, edges


def graph_dot(nodes: dict[str, str], edges: list[Edge]) -> str:
    lines = ["digraph trainctl {", "  rankdir=LR;"]
    lines += [f'  "{n}" [label="{label}"];' for n, label in sorted(nodes.items())]
    lines += [f'  "{e.source}" -> "{e.target}" [label="{e.label}"];' for e in edges]
    return "\n".join([*lines, "}"])


def graph_mermaid(nodes: dict[str, str], edges: list[Edge]) -> str:
    def node_id(name: str) -> str:
        return name.replace("-", "_")

    lines = ["graph LR"]
    lines += [f'  {node_id(n)}["{label}"]' for n, label in sorted(nodes.items())]
    lines += [f"  {node_id(e.source)} -->|{e.label}| {node_id(e.target)}" for e in edges]
    return "\n".join(lines)
