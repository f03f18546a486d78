"""The RunPod client, reads and actions against the local RunPod emulator on loopback."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from trainctl.cli.runpod_emulator import EMULATOR_KEY, RunpodEmulator
from trainctl.providers.http import ProviderKeyRejected, ProviderRateLimited
from trainctl.runpod.act import delete_network_volume, stop_pod, terminate_pod
from trainctl.runpod.client import RunpodClient, connect, read_account
from trainctl.runpod.settings import RunpodSettings

SETTINGS = RunpodSettings(runpod_name_prefix="train-", runpod_owner_pattern=r"^train-(?P<owner>[a-z]+)-")


class FakeTime:
    """One clock for the client's sleeps and the emulator's quota window: no test waits real time."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def emulator(clock: FakeTime) -> RunpodEmulator:
    return RunpodEmulator(monotonic=clock.monotonic)


@pytest.fixture
def url(emulator: RunpodEmulator) -> Iterator[str]:
    with emulator.serving() as base:
        yield base


def client_for(url: str, clock: FakeTime, key: str = EMULATOR_KEY, **options: object) -> RunpodClient:
    settings = SETTINGS.model_copy(update={"runpod_api_url": url})
    return connect(settings, key, sleep=clock.sleep, monotonic=clock.monotonic, **options)


def test_list_reads_pods_and_volumes_into_the_model(emulator: RunpodEmulator, url: str, clock: FakeTime) -> None:
    data = emulator.seed_volume("train-ana-data", size_gb=200)
    orphan = emulator.seed_volume("train-bo-old")
    idle = emulator.seed_pod("train-ana-idle", gpu_util=(1.0, 2.0), volume_ids=[data])
    busy = emulator.seed_pod("train-bo-busy", gpu_util=(97.0,))
    exited = emulator.seed_pod("train-bo-done", status="EXITED")
    locked = emulator.seed_pod("notebook-cy", locked=True)
    inventory = read_account(client_for(url, clock), SETTINGS, datetime.now(UTC))
    pods = {p.resource_id: p for p in inventory.pods}
    assert set(pods) == {idle, busy, exited, locked} and inventory.unreadable == ()
    assert pods[idle].gpu_util == (1.0, 2.0) and pods[idle].owner == "ana" and pods[idle].hourly_usd == 2.0
    assert pods[busy].gpu_util == (97.0,)
    assert pods[exited].instance.state == "stopped" and pods[exited].hourly_usd == 0.0
    assert pods[locked].locked and not pods[locked].in_scope
    volumes = {v.resource_id: v for v in inventory.volumes}
    assert volumes[data].mounted_by == (idle,) and volumes[orphan].mounted_by == ()
    assert emulator.calls == [("GET", "/v2/pods"), ("GET", "/v2/network-volumes"), ("GET", "/v2/serverless")]
    assert inventory.endpoint_mounts_known


def test_one_pod_in_an_undocumented_shape_does_not_stop_the_read(
    emulator: RunpodEmulator, url: str, clock: FakeTime
) -> None:
    good = emulator.seed_pod("train-ana-ok")
    emulator.seed_raw_pod({"id": "pododd", "name": "train-odd", "status": "HIBERNATING"})
    inventory = read_account(client_for(url, clock), SETTINGS, datetime.now(UTC))
    assert [p.resource_id for p in inventory.pods] == [good]
    assert [(u.label, u.resource_type) for u in inventory.unreadable] == [("pododd", "instance")]
    assert not inventory.mounts_known


def test_stop_is_read_back_as_done(emulator: RunpodEmulator, url: str, clock: FakeTime) -> None:
    pod = emulator.seed_pod("train-ana-idle")
    result = stop_pod(client_for(url, clock), pod)
    assert (result.outcome, result.status_after) == ("done", "EXITED")
    assert emulator.pods[pod].status == "EXITED" and emulator.pods[pod].cost == 0.0


def test_a_stop_that_raced_the_users_own_stop_is_already_done_not_failed(
    emulator: RunpodEmulator, url: str, clock: FakeTime
) -> None:
    pod = emulator.seed_pod("train-ana-idle")
    emulator.race_user_stop(pod)
    result = stop_pod(client_for(url, clock), pod)
    assert (result.outcome, result.status_after, result.detail) == ("already-done", "EXITED", "it was already stopped")
    assert ("POST", f"/v2/pods/{pod}/action") in emulator.calls and emulator.calls[-1] == ("GET", f"/v2/pods/{pod}")


def test_a_409_on_a_pod_that_is_still_running_is_a_failure(emulator: RunpodEmulator, url: str, clock: FakeTime) -> None:
    pod = emulator.seed_pod("train-ana-locked", locked=True)
    result = stop_pod(client_for(url, clock), pod)
    assert (result.outcome, result.status_after) == ("failed", "RUNNING")
    assert "answered 409: Conflict: the pod is locked" in result.detail


def test_terminate_and_delete_are_read_back(emulator: RunpodEmulator, url: str, clock: FakeTime) -> None:
    client = client_for(url, clock)
    pod = emulator.seed_pod("train-bo-done", status="EXITED")
    volume = emulator.seed_volume("train-bo-old")
    assert (terminate_pod(client, pod).outcome, terminate_pod(client, pod).outcome) == ("done", "already-done")
    assert (delete_network_volume(client, volume).outcome, delete_network_volume(client, volume).outcome) == (
        "done",
        "already-done",
    )
    assert pod not in emulator.pods and volume not in emulator.volumes


def test_a_revoked_key_is_its_own_error_and_never_shows_the_key_even_when_echoed(
    url: str, emulator: RunpodEmulator, clock: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emulator.echo_key_in_errors = True
    pod = emulator.seed_pod("train-ana-idle")
    emulator.revoke_key()
    client = client_for(url, clock)
    with pytest.raises(ProviderKeyRejected) as listing:
        read_account(client, SETTINGS, datetime.now(UTC))
    with pytest.raises(ProviderKeyRejected) as stopping:
        stop_pod(client, pod)
    texts = [str(listing.value), str(stopping.value), repr(client), caplog.text]
    assert "runpod: GET /pods answered 401: the API key was refused" in texts[0]
    assert "[redacted]" in texts[0], "the emulator echoed the key; it must be shown redacted"
    assert all(EMULATOR_KEY not in text for text in texts)
    assert emulator.pods[pod].status == "RUNNING"


def test_a_wrong_key_is_refused_the_same_way(url: str, clock: FakeTime) -> None:
    with pytest.raises(ProviderKeyRejected, match="runpod: GET /network-volumes answered 401"):
        client_for(url, clock, key="rpa_wrong").list_network_volumes()


def test_429_with_retry_after_is_honoured_and_no_rate_limit_error_surfaces(
    emulator: RunpodEmulator, url: str, clock: FakeTime
) -> None:
    emulator.per_minute = 3
    for n in range(5):
        emulator.seed_pod(f"train-ana-{n}")
    client = client_for(url, clock)
    for _ in range(4):
        read_account(client, SETTINGS, datetime.now(UTC))
    # Twelve calls at three a minute: the client waited out each spent window instead of failing.
    assert client.http.counts.calls - client.http.counts.rate_limited == 12
    assert clock.slept and all(0 < s <= 60 for s in clock.slept)
    assert clock.t >= 180, "twelve calls at three a minute span at least three window resets"
    # A second client on the same key (another sweep) knows nothing of the quota: it meets a 429 and waits it out.
    other = client_for(url, clock)
    waited = len(clock.slept)
    spent_before = emulator.rejected_429
    for _ in range(4):
        # Each call returns pods: the 429 it met was waited out and the call made again.
        assert other.list_pods() and client.list_pods()
    assert emulator.rejected_429 > spent_before
    assert other.http.counts.rate_limited + client.http.counts.rate_limited == emulator.rejected_429
    assert len(clock.slept) > waited


def test_a_429_whose_retry_after_passes_the_deadline_is_a_rate_limit_error(
    emulator: RunpodEmulator, url: str, clock: FakeTime
) -> None:
    emulator.per_minute = 1
    client = client_for(url, clock)
    client.list_pods()
    # The quota headers said the window is spent: the client would wait, but not past the deadline.
    with pytest.raises(ProviderRateLimited, match="past this call's deadline"):
        client.list_pods(deadline=clock.t + 5)
    # Without its own wait first, a 429 answer is met the same way.
    client.http.quota = type(client.http.quota)()
    with pytest.raises(ProviderRateLimited):
        client.list_pods(deadline=clock.t + 5)
    assert emulator.rejected_429 == 1


def test_the_emulator_answers_problem_json_for_unknown_paths_and_bad_actions(
    emulator: RunpodEmulator, url: str, clock: FakeTime
) -> None:
    client = client_for(url, clock)
    pod = emulator.seed_pod("train-ana-1")
    with pytest.raises(Exception, match="answered 404: Not Found: no such pod"):
        client.get_pod("podmissing")
    with pytest.raises(Exception, match="answered 400: Bad Request"):
        client.http.post(f"/pods/{pod}/action", {"action": "explode"})
    assert emulator.pods[pod].status == "RUNNING"


def test_latency_is_configurable(emulator: RunpodEmulator, url: str, clock: FakeTime) -> None:
    emulator.latency_s = 0.05
    started = datetime.now(UTC)
    client_for(url, clock).list_pods()
    assert datetime.now(UTC) - started >= timedelta(milliseconds=50)
