"""RunPod: just before a network volume is deleted, its pods and serverless endpoints are read again (as the AWS
sweep re-reads a volume's use): a pod that started mounting it since the sweep's read, or a read that fails then,
keeps it by name; nothing mounting it and every mount known, it is deleted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.test_provider_sweep import GRACE, HOUR, SETTINGS, World, actions_of, of, world  # noqa: F401
from trainctl.cli.runpod_emulator import EmulatedPod


def due(world: World, name: str = "train-ana-data") -> str:  # noqa: F811
    """An orphaned volume, swept hourly until the next enforced sweep would delete it."""
    volume = world.runpod.seed_volume(name)
    preview = SETTINGS.model_copy(update={"dry_run": True})
    for _ in range(int(3 * GRACE / HOUR)):
        world.clock.at += HOUR
        if "delete" in actions_of([world.sweep_runpod(settings=preview)], volume):
            return volume
        world.sweep_runpod()
    pytest.fail("the orphaned volume never came due: the set-up is wrong")


def after_first_read(world: World, listed: str, change: Callable[[], None]) -> list[str]:  # noqa: F811
    """Right after the sweep's own GET of `listed` is answered, `change` happens in the account (once)."""
    emulator = world.runpod
    route = emulator._route
    happened: list[str] = []

    def racing(method: str, path: str, body: bytes) -> tuple[int, Any]:
        answered = route(method, path, body)
        if method == "GET" and path.split("?", 1)[0].endswith(listed) and not happened:
            change()  # under the emulator's lock already, as its own seeding would change it
            happened.append(path)
        return answered

    emulator._route = racing  # type: ignore[method-assign]
    return happened


def test_a_volume_a_pod_starts_to_mount_while_the_sweep_acts_is_kept_as_mounted(world: World) -> None:  # noqa: F811
    volume = due(world)
    now = world.runpod.now()

    def pod_mounts_it() -> None:
        pod = EmulatedPod("podracing01", "train-ana-llama", "RUNNING", 2.0, now, now, volume_ids=(volume,))
        pod.gpu_util, pod.gpu_memory_util = (50.0,), (10.0,)
        world.runpod.pods[pod.id] = pod

    happened = after_first_read(world, "/serverless", pod_mounts_it)
    acted = world.sweep_runpod()
    assert happened and volume in world.runpod.volumes
    kept = of(acted, volume)
    assert (kept.action, kept.protections, kept.outcome) == ("keep", ("mounted",), "skipped")
    assert "podracing01" in kept.detail


@pytest.mark.parametrize("failing", ["/serverless", "/pods"])
def test_a_read_that_fails_just_before_the_deletion_keeps_the_volume_as_mounts_unknown(
    world: World,  # noqa: F811
    failing: str,
) -> None:
    volume = due(world)

    def refuse_serverless() -> None:
        world.runpod.endpoints_refused = 403

    def unreadable_pod() -> None:
        world.runpod.raw_pods.append({"id": "pododd01", "name": "train-odd"})  # no status, no mounts

    happened = after_first_read(world, failing, refuse_serverless if failing == "/serverless" else unreadable_pod)
    acted = world.sweep_runpod()
    assert happened and volume in world.runpod.volumes
    kept = of(acted, volume)
    assert (kept.action, kept.protections) == ("keep", ("mounts-unknown",))
    assert ("DELETE", f"/v2/network-volumes/{volume}") not in world.runpod.calls


def test_a_volume_still_unmounted_when_read_again_is_deleted(world: World) -> None:  # noqa: F811
    volume = due(world)
    before = len(world.runpod.calls)
    acted = world.sweep_runpod()
    assert of(acted, volume).action == "delete" and volume not in world.runpod.volumes
    reads = [call for call in world.runpod.calls[before:] if call[0] == "GET"]
    # The sweep's own three reads, the two again just before the deletion, and the read-back of the volumes.
    assert reads.count(("GET", "/v2/serverless")) == 2 and reads.count(("GET", "/v2/pods")) == 2
