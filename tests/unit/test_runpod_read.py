"""RunPod's answers into the resource model: pods, network volumes, scope, owners, and every unreadable shape."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import ROOT
from trainctl.core.errors import SettingsError
from trainctl.providers.keys import ProviderKeyMissing, key_from_environment, key_from_secret
from trainctl.runpod.read import NETWORK_DEVICE, read_inventory, read_pod
from trainctl.runpod.settings import DEFAULT_API_URL, RunpodSettings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = RunpodSettings(runpod_name_prefix="train-", runpod_owner_pattern=r"^train-(?P<owner>[a-z]+)-")


def pod(**changes: Any) -> dict[str, Any]:
    """A running pod as the v2 documentation describes one, in our own fixture words."""
    record: dict[str, Any] = {
        "id": "pod7xk2m",
        "name": "train-ana-llama",
        "status": "RUNNING",
        "cost": 2.49,
        "createdAt": "2026-12-01T08:00:00Z",
        "startedAt": "2026-12-01T09:30:00Z",
        "locked": False,
        "mounts": {"network": [{"volumeId": "vol9ab"}]},
        "runtime": {"uptime": 9000, "gpus": [{"util": 3, "memoryUtil": 40}, {"util": 1.5, "memoryUtil": 38}]},
    }
    record.update(changes)
    return record


def volume(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": "vol9ab", "name": "train-ana-data", "size": 500, "dataCenter": "EU-RO-1"}
    record.update(changes)
    return record


def test_a_running_pod_is_an_instance_with_its_cost_times_mounts_and_gpu_samples() -> None:
    got = read_pod(pod(), SETTINGS, NOW)
    instance = got.instance
    assert (instance.provider, instance.resource_id, instance.state) == ("runpod", "pod7xk2m", "running")
    assert instance.first_launch_time == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert instance.launch_time == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert [(d.volume_id, d.device_name, d.delete_on_termination) for d in instance.block_devices] == [
        ("vol9ab", NETWORK_DEVICE, False)
    ]
    assert (got.hourly_usd, got.locked, got.uptime_s) == (2.49, False, 9000)
    assert got.gpu_util == (3.0, 1.5) and got.gpu_memory_util == (40.0, 38.0)
    assert (got.owner, got.in_scope) == ("ana", True)


@pytest.mark.parametrize(
    ("status", "state"),
    [("PROVISIONING", "pending"), ("STARTING", "pending"), ("EXITED", "stopped"), ("ERROR", "error")],
)
def test_every_documented_status_maps_to_a_state(status: str, state: str) -> None:
    got = read_pod(pod(status=status, runtime=None, cost=0), SETTINGS, NOW)
    assert got.instance.state == state and got.gpu_util == () and got.uptime_s is None


def test_a_pod_never_started_counts_from_its_creation() -> None:
    got = read_pod(pod(status="PROVISIONING", startedAt=None, runtime=None), SETTINGS, NOW)
    assert got.instance.launch_time == datetime(2026, 12, 1, 8, 0, tzinfo=UTC) and got.started_at is None


def test_scope_is_the_prefix_or_an_explicit_id_and_nothing_when_neither_is_set() -> None:
    assert read_pod(pod(name="notebook-ana"), SETTINGS, NOW).in_scope is False
    by_id = RunpodSettings(runpod_ids=("pod7xk2m",))
    assert read_pod(pod(name="notebook-ana"), by_id, NOW).in_scope is True
    nothing = RunpodSettings()
    assert nothing.scoped is False and read_pod(pod(), nothing, NOW).in_scope is False


def test_an_owner_the_name_does_not_state_is_unknown() -> None:
    assert read_pod(pod(name="train-X-1"), SETTINGS, NOW).owner is None
    assert read_pod(pod(), RunpodSettings(runpod_name_prefix="train-"), NOW).owner is None


def test_network_volumes_have_no_creation_time_and_are_attached_to_the_pods_that_mount_them() -> None:
    exited = pod(id="podexit", status="EXITED", cost=0, runtime=None, mounts={"network": [{"volumeId": "vol2"}]})
    inventory = read_inventory([pod(), exited], [volume(), volume(id="vol2"), volume(id="vol3")], SETTINGS, NOW)
    by_id = {v.resource_id: v for v in inventory.volumes}
    assert by_id["vol9ab"].mounted_by == ("pod7xk2m",)
    # An exited pod keeps its network volume: it mounts it again when it starts.
    assert by_id["vol2"].mounted_by == ("podexit",)
    assert by_id["vol3"].mounted_by == ()
    orphan = by_id["vol3"]
    assert orphan.first_seen is None and orphan.volume.create_time == NOW, "never older than the read"
    assert (orphan.volume.provider, orphan.volume.size_gib, orphan.data_center) == ("runpod", 500, "EU-RO-1")
    aged = orphan.seen_since(NOW - timedelta(days=3))
    assert aged.first_seen == aged.volume.create_time == NOW - timedelta(days=3)
    assert inventory.mounts_known


BAD_PODS = [
    (pod(status="SLEEPING"), "status 'SLEEPING' is not one RunPod documents"),
    ({k: v for k, v in pod().items() if k != "cost"}, "no `cost`"),
    ({k: v for k, v in pod().items() if k != "mounts"}, "no `mounts`"),
    (pod(cost="2.49"), "`cost` is not a number"),
    (pod(cost=-1), "`cost` -1 is out of range"),
    (pod(locked="no"), "`locked` is not true or false"),
    (pod(createdAt="yesterday"), "is not an ISO 8601 time"),
    (pod(createdAt="1970-01-01T00:00:00Z"), "`createdAt` 1970-01-01T00:00:00Z is out of range"),
    (pod(startedAt="2099-01-01T00:00:00Z"), "`startedAt` 2099-01-01T00:00:00Z is out of range"),
    (pod(createdAt="2026-12-01T08:00:00"), "has no time zone"),
    (pod(runtime={"uptime": 5, "gpus": [{"util": 140}]}), "`runtime.gpus[].util` 140 is out of range"),
    (pod(mounts={"network": [{"volumeId": "../x"}]}), "is not an id"),
    (pod(id="pod\nforged"), "is not an id"),
]


@pytest.mark.parametrize(("record", "problem"), BAD_PODS)
def test_a_pod_in_an_undocumented_shape_is_unreadable_by_name_and_the_rest_are_read(
    record: dict[str, Any], problem: str
) -> None:
    inventory = read_inventory([pod(id="podgood"), record], [], SETTINGS, NOW)
    assert [p.resource_id for p in inventory.pods] == ["podgood"]
    [unreadable] = inventory.unreadable
    assert unreadable.resource_type == "instance" and problem in unreadable.problem
    assert unreadable.label in ("pod7xk2m", "train-ana-llama", "pod\\nforged")
    assert "\n" not in unreadable.label + unreadable.problem
    # Nobody knows what an unreadable pod mounts: no volume may be judged unmounted by pods.
    assert inventory.mounts_known is False


def test_records_that_are_not_objects_are_named_by_their_place() -> None:
    inventory = read_inventory(["pod?", 7], [None], SETTINGS, NOW)
    assert [u.label for u in inventory.unreadable] == ["pod #1", "pod #2", "network volume #1"]


@pytest.mark.parametrize(
    ("record", "problem"),
    [(volume(size=0), "out of range"), (volume(size=1.5), "whole number"), ({"id": "v1", "name": "x"}, "no `size`")],
)
def test_a_volume_in_an_undocumented_shape_is_unreadable(record: dict[str, Any], problem: str) -> None:
    inventory = read_inventory([], [record, volume(id="volok")], SETTINGS, NOW)
    assert [v.resource_id for v in inventory.volumes] == ["volok"]
    assert problem in inventory.unreadable[0].problem and inventory.mounts_known


def test_settings_refuse_what_cannot_work_with_a_named_error() -> None:
    assert RunpodSettings.from_env({}).runpod_api_url == DEFAULT_API_URL == "https://api.runpod.io/v2"
    with pytest.raises(SettingsError, match=r"TRAINCTL_RUNPOD_OWNER_PATTERN: .*named group `owner`"):
        RunpodSettings.from_env({"TRAINCTL_RUNPOD_OWNER_PATTERN": "^train-([a-z]+)"})
    with pytest.raises(SettingsError, match=r"TRAINCTL_RUNPOD_OWNER_PATTERN: .*not a regular expression"):
        RunpodSettings.from_env({"TRAINCTL_RUNPOD_OWNER_PATTERN": "(?P<owner>"})
    with pytest.raises(SettingsError, match=r"TRAINCTL_RUNPOD_API_URL: .*https://"):
        RunpodSettings.from_env({"TRAINCTL_RUNPOD_API_URL": "http://api.example.test/v2"})
    with pytest.raises(SettingsError, match=r"TRAINCTL_RUNPOD_IDS: .*not a RunPod id"):
        RunpodSettings.from_env({"TRAINCTL_RUNPOD_IDS": "pod1,../x"})
    loaded = RunpodSettings.from_env(
        {"TRAINCTL_RUNPOD_IDS": "pod1, pod2", "TRAINCTL_RUNPOD_API_URL": "http://127.0.0.1:9/v2/"}
    )
    assert loaded.runpod_ids == ("pod1", "pod2") and loaded.runpod_api_url == "http://127.0.0.1:9/v2"


class Secrets:
    def __init__(self, value: str | None = None, error: str | None = None) -> None:
        self.value, self.error = value, error

    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]:  # noqa: N803
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, "GetSecretValue")
        return {"SecretString": self.value}


def test_the_key_comes_from_its_secret_plain_or_json_and_a_failure_never_shows_a_value() -> None:
    assert key_from_secret(Secrets("rpa_abc"), "trainctl/runpod", "runpod") == "rpa_abc"
    assert key_from_secret(Secrets(json.dumps({"api_key": "rpa_abc"})), "s", "runpod") == "rpa_abc"
    with pytest.raises(ProviderKeyMissing, match=r"^runpod: the API key secret s could not be read \(AccessDenied"):
        key_from_secret(Secrets(error="AccessDeniedException"), "s", "runpod")
    with pytest.raises(ProviderKeyMissing) as caught:
        key_from_secret(Secrets(json.dumps({"token": "rpa_secret_value"})), "s", "runpod")
    assert "rpa_secret_value" not in str(caught.value)
    assert key_from_environment({"RUNPOD_API_KEY": " rpa_x "}, "runpod") == "rpa_x"
    with pytest.raises(ProviderKeyMissing, match="set RUNPOD_API_KEY"):
        key_from_environment({}, "runpod")


def test_an_aws_handler_does_not_import_the_provider_code() -> None:
    # An AWS-only deployment's cold import does not grow with the providers.
    probe = (
        "import sys, runpy; sys.path[:0] = ['layers', '.']; "
        "runpy.run_path('functions/cleanup_sweep/handler.py', run_name='handler'); "
        "rooms = ('trainctl.runpod', 'trainctl.providers', 'trainctl.sweep'); "
        "print(sorted(m for m in sys.modules if m.startswith(rooms)))"
    )
    env = {"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "trainctl", "PATH": ""}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    loaded = done.stdout.strip().splitlines()[-1]
    assert "'trainctl.sweep.run'" in loaded, "the probe did not load the handler"
    assert "trainctl.runpod" not in loaded and "trainctl.providers" not in loaded
