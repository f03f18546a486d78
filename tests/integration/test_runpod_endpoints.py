"""RunPod's serverless endpoints and the network volumes they mount (issue 28): trainctl reads GET /v2/serverless,
so a volume no pod and no endpoint mounts is deleted after its grace without TRAINCTL_RUNPOD_NO_ENDPOINTS, one an
endpoint mounts is kept as `endpoint-mounted`, and an endpoints answer that cannot be read keeps every volume as
`mounts-unknown`, by name, while the pods are still decided. The hand command refuses the same volumes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.test_provider_commands import RunpodAccount, error_line, invoke, runpod  # noqa: F401 (fixture)
from tests.integration.test_provider_sweep import GRACE, HOUR, World, actions_of, of, world  # noqa: F401 (fixture)
from trainctl.cli.output import EXIT_FAILED
from trainctl.cli.runpod_emulator import RunpodEmulator
from trainctl.providers.sweep import ProviderSweepResult
from trainctl.runpod.client import connect, read_account
from trainctl.runpod.settings import RunpodSettings


def sweeps(account: World, hours: int) -> list[ProviderSweepResult]:
    """A sweep now and one an hour after, for `hours` hours, with the settings' default on endpoints."""
    return [account.sweep_runpod(), *account.hourly(hours, account.sweep_runpod)]


def test_the_default_settings_delete_an_orphaned_volume_after_its_grace(world: World) -> None:  # noqa: F811
    orphan = world.runpod.seed_volume("train-ana-data")
    world.runpod.seed_endpoint("train-ana-infer", volume_ids=())
    settings = world.runpod_settings(runpod_no_endpoints=False)
    results = [world.sweep_runpod(runpod=settings)]
    results += world.hourly(int(2 * GRACE / HOUR) + 2, lambda: world.sweep_runpod(runpod=settings))
    assert "delete" in actions_of(results, orphan) and orphan not in world.runpod.volumes
    assert ("GET", "/v2/serverless") in world.runpod.calls


def test_a_volume_an_endpoint_mounts_is_kept_by_name_then_swept_a_full_grace_after_the_endpoint_goes(
    world: World,  # noqa: F811
) -> None:
    volume = world.runpod.seed_volume("train-bo-weights")
    endpoint = world.runpod.seed_endpoint("train-bo-serve", volume_ids=(volume,))
    kept = sweeps(world, int(2 * GRACE / HOUR))
    assert set(actions_of(kept, volume)) == {"keep"}
    last = of(kept[-1], volume)
    assert last.protections == ("endpoint-mounted",) and endpoint in last.detail
    assert volume in world.runpod.volumes
    world.runpod.delete_endpoint(endpoint)
    after = world.hourly(int(GRACE / HOUR), world.sweep_runpod)
    # The protection lifted: a fresh mark and a full grace period before anything goes.
    assert actions_of(after, volume)[0] == "mark" and "delete" not in actions_of(after, volume)
    assert volume in world.runpod.volumes
    gone = world.hourly(2, world.sweep_runpod)
    assert actions_of(gone, volume)[-1] == "delete" and volume not in world.runpod.volumes


@pytest.mark.parametrize("how", ["refused", "unreadable endpoint"])
def test_endpoints_that_cannot_be_read_keep_every_unmounted_volume_and_the_pods_are_still_decided(
    world: World,  # noqa: F811
    how: str,
) -> None:
    orphan = world.runpod.seed_volume("train-ana-data")
    exited = world.runpod.seed_pod("train-cy-done", status="EXITED")
    if how == "refused":
        world.runpod.endpoints_refused = 403
    else:
        world.runpod.seed_raw_endpoint({"id": "epodd1", "name": "train-odd"})  # no `networkVolumes`
    results = sweeps(world, int(3 * GRACE / HOUR))
    assert set(actions_of(results, orphan)) == {"keep"}
    assert of(results[-1], orphan).protections == ("mounts-unknown",)
    assert orphan in world.runpod.volumes
    # One answer that cannot be read fails no sweep: the exited pod is still terminated.
    assert "terminate" in actions_of(results, exited) and exited not in world.runpod.pods
    named = "403" if how == "refused" else "epodd1"
    assert any(named in w for w in results[-1].result.plan.warnings)


def test_an_endpoints_error_that_echoes_the_key_leaves_no_key_in_the_read() -> None:
    emulator = RunpodEmulator(echo_key_in_errors=True)
    emulator.seed_volume("train-ana-data")
    emulator.seed_raw_endpoint({"id": "epodd2", "name": emulator.key, "networkVolumes": "everything"})
    with emulator.serving() as url:
        settings = RunpodSettings(runpod_api_url=url, runpod_name_prefix="train-")
        inventory = read_account(connect(settings, emulator.key), settings, emulator.now())
    assert inventory.endpoint_problems and not inventory.endpoint_mounts_known
    assert all(emulator.key not in problem for problem in inventory.endpoint_problems)


@pytest.fixture
def endpoint_volume(runpod: RunpodAccount) -> Iterator[str]:  # noqa: F811
    volume = runpod.ids["orphan"]
    runpod.emulator.seed_endpoint("train-ana-serve", volume_ids=(volume,))
    yield volume


def test_volumes_delete_refuses_a_volume_an_endpoint_mounts(
    runpod: RunpodAccount,  # noqa: F811
    endpoint_volume: str,
) -> None:
    said = error_line(invoke(["runpod", "volumes", "delete", endpoint_volume, "--yes"]), EXIT_FAILED)
    assert "serverless endpoint" in said and "mounts it" in said
    assert endpoint_volume in runpod.emulator.volumes and runpod.writes() == []


def test_volumes_delete_refuses_while_the_endpoints_cannot_be_read(runpod: RunpodAccount) -> None:  # noqa: F811
    runpod.emulator.endpoints_refused = 503
    said = error_line(invoke(["runpod", "volumes", "delete", runpod.ids["orphan"], "--yes"]), EXIT_FAILED)
    assert "serverless endpoints could not be read" in said
    assert runpod.ids["orphan"] in runpod.emulator.volumes and runpod.writes() == []
    runpod.emulator.endpoints_refused = None
    done = invoke(["runpod", "volumes", "delete", runpod.ids["orphan"], "--yes"])
    assert done.exit_code == 0, done.output
    assert runpod.ids["orphan"] not in runpod.emulator.volumes
