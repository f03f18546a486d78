"""RunPod's and Lyceum's resources priced into the same estimate as AWS's, under the same thresholds.

A running pod costs what RunPod's API says it costs (`cost`, USD per hour: price source `provider-api`). A network
volume costs RunPod's published per-GB-month price / 730 (the dated figures of providers.published_prices:
`price-file`). What no published figure prices is unpriced with its reason, never $0: an exited pod's volume disk
(its size is not in the pod answer), every Lyceum VM (Lyceum publishes no price per hardware profile), and any
entry trainctl could not read. Lyceum's remaining credits are checked against TRAINCTL_LYCEUM_MIN_CREDITS.

The pricing is pure (inventories and an instant in); `runpod_account` and `lyceum_account` take their clients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from trainctl.core.errors import TrainctlError
from trainctl.cost.prices.model import HOURS_PER_MONTH
from trainctl.cost.rules import Breach, ResourceCost
from trainctl.cost.run import ProviderCosts
from trainctl.lyceum.client import LyceumClient
from trainctl.lyceum.read import LyceumInventory, read_entries
from trainctl.lyceum.settings import LyceumSettings
from trainctl.providers.published_prices import (
    LYCEUM_PRICE_GAP,
    RUNPOD_NETWORK_VOLUME,
    RUNPOD_NETWORK_VOLUME_OVER_1_TB,
    RUNPOD_NETWORK_VOLUME_TIER_GB,
    RUNPOD_STOPPED_DISK_GAP,
    RUNPOD_TIER_GAP,
)
from trainctl.runpod.client import RunpodClient, connect, read_account
from trainctl.runpod.read import NetworkVolume, Pod, RunpodInventory
from trainctl.runpod.settings import RunpodSettings

PROVIDER_API = "provider-api"
PRICE_FILE = "price-file"  # a dated published figure, as the AWS price file's are
UNPRICED = "unpriced"
NO_OWNER = "(no owner)"
# Lyceum's documented GET /billing/credits answer carries the balance here.
REMAINING_CREDITS = "remaining_credits"


def _hours(since: datetime, at: datetime) -> float:
    return max(0.0, (at - since).total_seconds() / 3600)


def network_volume_monthly_usd(size_gb: int) -> tuple[float, tuple[str, ...]]:
    """RunPod's published price for a network volume of `size_gb`, per month, and its flags.

    Over 1 TB the page's lower rate is applied only to the GB above it: RunPod does not say which, and this reading
    is the higher one, so the figure is flagged an upper bound.
    """
    tier = RUNPOD_NETWORK_VOLUME_TIER_GB
    if size_gb <= tier:
        return size_gb * RUNPOD_NETWORK_VOLUME.usd, ()
    monthly = tier * RUNPOD_NETWORK_VOLUME.usd + (size_gb - tier) * RUNPOD_NETWORK_VOLUME_OVER_1_TB.usd
    return monthly, ("upper-bound",)


def pod_cost(pod: Pod, at: datetime) -> ResourceCost:
    """A pod at the API's own `cost` while it can bill; an exited one by what it keeps on disk."""
    instance = pod.instance
    owner = pod.owner or NO_OWNER
    if pod.status == "EXITED":
        if pod.network_volume_ids:
            # RunPod mounts a network volume in place of the volume disk: an exited pod with one keeps no disk of
            # its own to bill, and the network volume is priced on its own line.
            return ResourceCost(
                pod.resource_id,
                "instance",
                "",
                owner,
                "pod EXITED (its network volume priced on its own)",
                0.0,
                None,
                PROVIDER_API,
                instance.launch_time,
                provider="runpod",
            )
        return ResourceCost(
            pod.resource_id,
            "instance",
            "",
            owner,
            "pod EXITED, volume disk kept",
            None,
            None,
            UNPRICED,
            instance.launch_time,
            problem=RUNPOD_STOPPED_DISK_GAP,
            provider="runpod",
        )
    # RunPod says when the pod last started, not how long it ran before: what it cost since is a lower bound.
    return ResourceCost(
        pod.resource_id,
        "instance",
        "",
        owner,
        f"pod {pod.status}",
        pod.hourly_usd,
        _hours(instance.launch_time, at) * pod.hourly_usd,
        PROVIDER_API,
        instance.launch_time,
        ("lower-bound",),
        provider="runpod",
    )


def network_volume_cost(volume: NetworkVolume, at: datetime) -> ResourceCost:
    """A network volume at RunPod's published price / 730 per hour; attached or not, it bills the same."""
    size = volume.volume.size_gib  # RunPod's GB, as read
    monthly, flags = network_volume_monthly_usd(size)
    price = RUNPOD_NETWORK_VOLUME
    return ResourceCost(
        volume.resource_id,
        "volume",
        volume.volume.region,
        volume.owner or NO_OWNER,
        f"network volume {size} GB at ${price.usd}/GB-month (RunPod, {price.as_of})",
        monthly / HOURS_PER_MONTH,
        # RunPod gives no creation time: what it has cost so far is not known.
        None,
        PRICE_FILE,
        at,
        flags,
        RUNPOD_TIER_GAP if flags else "",
        provider="runpod",
    )


def runpod_costs(inventory: RunpodInventory, at: datetime) -> list[ResourceCost]:
    """Every pod that still exists and every network volume; a pod or volume trainctl cannot read is unpriced."""
    costs = [pod_cost(pod, at) for pod in inventory.pods if pod.status != "TERMINATED"]
    costs += [network_volume_cost(volume, at) for volume in inventory.volumes]
    costs += [
        ResourceCost(
            unreadable.label,
            unreadable.resource_type,
            "",
            NO_OWNER,
            "pod" if unreadable.resource_type == "instance" else "network volume",
            None,
            None,
            UNPRICED,
            at,
            problem=f"unreadable: {unreadable.problem}",
            provider="runpod",
        )
        for unreadable in inventory.unreadable
    ]
    return costs


def lyceum_costs(inventory: LyceumInventory, at: datetime) -> list[ResourceCost]:
    """Every Lyceum VM not terminated, unpriced by name: Lyceum publishes no price that would make it a figure."""
    costs = [
        ResourceCost(
            vm.vm_id,
            "instance",
            "",
            vm.owner or NO_OWNER,
            f"VM {vm.instance.instance_type} {vm.status}",
            None,
            None,
            UNPRICED,
            vm.instance.launch_time,
            problem=LYCEUM_PRICE_GAP,
            provider="lyceum",
        )
        for vm in inventory.vms
        if vm.instance.state != "terminated"
    ]
    costs += [
        ResourceCost(
            item.label,
            "instance",
            "",
            NO_OWNER,
            "VM",
            None,
            None,
            UNPRICED,
            at,
            problem=f"unreadable: {item.problem}",
            provider="lyceum",
        )
        for item in inventory.unreadable
        if item.kind == "vm"
    ]
    return costs


def credits_breach(answer: Mapping[str, Any], minimum: float) -> tuple[Breach | None, str]:
    """A balance breach when Lyceum's remaining credits are under `minimum`; else None. The text is a note when the
    answer does not carry the documented balance (then nothing can be said about it, and nothing is alerted)."""
    remaining = answer.get(REMAINING_CREDITS)
    if isinstance(remaining, bool) or not isinstance(remaining, int | float) or not math.isfinite(remaining):
        return None, f"lyceum: GET /billing/credits has no number `{REMAINING_CREDITS}`: the balance was not checked"
    if remaining >= minimum:
        return None, ""
    return Breach("balance:lyceum", "balance", "lyceum", float(remaining), minimum), ""


def _count(pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for kind, state in pairs:
        by_state = counts.setdefault(kind, {})
        by_state[state] = by_state.get(state, 0) + 1
    return counts


def runpod_counts(inventory: RunpodInventory) -> dict[str, dict[str, int]]:
    """Pods by RunPod's own status, network volumes, and what could not be read."""
    pairs = [("pod", pod.status) for pod in inventory.pods]
    pairs += [("network volume", "available") for _ in inventory.volumes]
    pairs += [
        ("pod" if u.resource_type == "instance" else "network volume", "unreadable") for u in inventory.unreadable
    ]
    return _count(pairs)


def lyceum_counts(inventory: LyceumInventory) -> dict[str, dict[str, int]]:
    """VMs by Lyceum's own status, and what could not be read."""
    pairs = [("vm", vm.status) for vm in inventory.vms]
    pairs += [("vm", "unreadable") for item in inventory.unreadable if item.kind == "vm"]
    return _count(pairs)


def runpod_account(
    client: RunpodClient, settings: RunpodSettings, at: datetime, *, deadline: float | None = None
) -> ProviderCosts:
    """RunPod priced: two calls (pods, network volumes); a failure is the provider's one-line error."""
    try:
        inventory = read_account(client, settings, at, deadline=deadline)
    except TrainctlError as exc:
        return ProviderCosts("runpod", error=str(exc))
    return ProviderCosts("runpod", tuple(runpod_costs(inventory, at)), counts=runpod_counts(inventory))


def lyceum_account(
    client: LyceumClient, settings: LyceumSettings, at: datetime, *, deadline: float | None = None
) -> ProviderCosts:
    """Lyceum priced: the VM list, and the credits when TRAINCTL_LYCEUM_MIN_CREDITS asks for them."""
    try:
        inventory = read_entries(client.list_vms(deadline=deadline), (), settings, at)
        breaches: tuple[Breach, ...] = ()
        notes: tuple[str, ...] = ()
        if settings.lyceum_min_credits is not None:
            breach, note = credits_breach(client.credits(deadline=deadline), settings.lyceum_min_credits)
            breaches = (breach,) if breach else ()
            notes = (client.redact(note),) if note else ()
    except TrainctlError as exc:
        return ProviderCosts("lyceum", error=str(exc))
    return ProviderCosts(
        "lyceum", tuple(lyceum_costs(inventory, at)), breaches, notes=notes, counts=lyceum_counts(inventory)
    )


def provider_costs(
    provider: str,
    chosen: RunpodSettings | LyceumSettings,
    key: str,
    at: datetime,
    *,
    deadline: float | None = None,
) -> ProviderCosts:
    """Connect with the key and price that provider's account ("runpod", else Lyceum's); no wait for the rate
    limit ends past `deadline` (a time.monotonic instant): a longer one is the provider's error."""
    if provider == "runpod":
        assert isinstance(chosen, RunpodSettings)
        return runpod_account(connect(chosen, key), chosen, at, deadline=deadline)
    assert isinstance(chosen, LyceumSettings)
    return lyceum_account(LyceumClient.connect(chosen.lyceum_api_url, key), chosen, at, deadline=deadline)
