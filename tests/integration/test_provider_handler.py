"""The provider_sweep handler as deployed (issue 28, Deploy): against the RunPod and Lyceum emulators, with moto's
ledger, topic and Secrets Manager holding the key, on an injected clock. Its key read once per cold start, a
revoked key one error in its summary, a lease per provider, the AWS cleanup handler untouched by any of it, and
the AWS handlers' cold import free of the providers' code."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WriteForbidden, forbid_writes, load_event
from trainctl.aws.clients import ClientFactory
from trainctl.aws.lease import LEASE_KEY, DynamoDbLease, provider_lease_key
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, check_event, load_handler
from trainctl.cli.lyceum_emulator import EMULATOR_KEY as LYCEUM_KEY
from trainctl.cli.lyceum_emulator import LyceumEmulator, serve
from trainctl.cli.runpod_emulator import EMULATOR_KEY as RUNPOD_KEY
from trainctl.cli.runpod_emulator import RunpodEmulator
from trainctl.core import names
from trainctl.core.errors import SettingsError
from trainctl.core.events import InvalidEvent
from trainctl.providers import keys

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
REGION = "us-east-1"
HOUR = timedelta(hours=1)
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
RUNPOD_SECRET = "trainctl/runpod"
LYCEUM_SECRET = "trainctl/lyceum"


@dataclass
class Clock:
    at: datetime = T0

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Deployment:
    handler: types.ModuleType
    factory: ClientFactory
    clock: Clock
    runpod: RunpodEmulator
    lyceum: LyceumEmulator
    topic_arn: str

    def run(self, event: Any) -> dict[str, Any]:
        self.handler.clock = self.clock
        result: dict[str, Any] = self.handler.lambda_handler(
            event, LocalContext(function_name="trainctl-provider_sweep")
        )
        return result

    def hourly(self, hours: int, event: Any) -> list[dict[str, Any]]:
        results = []
        for _ in range(hours):
            self.clock.at += HOUR
            results.append(self.run(event))
        return results


@pytest.fixture
def deployment(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    resources = stack_resources.ensure_on_emulator(factory, (REGION,))
    secrets = factory.client("secretsmanager")
    secrets.create_secret(Name=RUNPOD_SECRET, SecretString=RUNPOD_KEY)
    secrets.create_secret(Name=LYCEUM_SECRET, SecretString=json.dumps({"api_key": LYCEUM_KEY}))
    clock = Clock()
    runpod, lyceum = RunpodEmulator(now=clock), LyceumEmulator(clock=clock)
    with runpod.serving() as runpod_url, serve(lyceum) as lyceum_url:
        # What the stack sets in the function's environment (infra.providers), both providers at once here.
        for name, value in {
            "TRAINCTL_REGIONS": REGION,
            "TRAINCTL_DRY_RUN": "false",
            "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
            "TRAINCTL_TOPIC_ARN": resources.topic_arn,
            "TRAINCTL_GRACE_PERIOD": "2h",
            "TRAINCTL_EVENT_DELIVERY_LAG": "15m",
            "TRAINCTL_STOPPED_MAX_AGE": "1h",
            "TRAINCTL_MAX_ACTION_SHARE": "1",
            "TRAINCTL_RUNPOD_API_URL": runpod_url,
            "TRAINCTL_RUNPOD_NAME_PREFIX": "train-",
            "TRAINCTL_RUNPOD_NO_ENDPOINTS": "true",
            "TRAINCTL_RUNPOD_KEY_SECRET": RUNPOD_SECRET,
            "TRAINCTL_LYCEUM_API_URL": lyceum_url,
            "TRAINCTL_LYCEUM_NAME_PREFIX": "team-",
            "TRAINCTL_LYCEUM_VM_TTL": "72h",
            "TRAINCTL_LYCEUM_KEY_SECRET": LYCEUM_SECRET,
        }.items():
            monkeypatch.setenv(name, value)
        handler = load_handler("provider_sweep")
        monkeypatch.setattr(handler, "client_factory", lambda: factory)
        yield Deployment(handler, factory, clock, runpod, lyceum, resources.topic_arn)


def decisions_of(result: dict[str, Any], resource_id: str) -> list[dict[str, Any]]:
    return [d for d in result["decisions"] if d["resource_id"] == resource_id]


def test_an_exited_pod_is_marked_then_terminated_by_the_scheduled_runs(deployment: Deployment) -> None:
    pod = deployment.runpod.seed_pod("train-ana-old", status="EXITED", age=timedelta(days=3))
    event = load_event("provider_sweep", "runpod")
    first = deployment.run(event)
    assert (first["provider"], first["error"], first["dry_run"]) == ("runpod", None, False)
    results = deployment.hourly(5, event)
    actions = [d["action"] for r in results for d in decisions_of(r, f"runpod:{pod}")]
    assert actions[0] == "mark" and actions[-1] == "terminate"
    assert pod not in deployment.runpod.pods  # terminated: the emulator, as RunPod, lists it no more
    # Each run released its lease: the next one of this provider takes it at once.
    lease = DynamoDbLease(deployment.factory.dynamodb(), names.LEDGER_TABLE, key=provider_lease_key("runpod"))
    assert lease.acquire(deployment.clock(), timedelta(minutes=1))


def test_the_key_is_read_from_its_secret_once_per_cold_start(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    original = keys.key_from_secret

    def counted(secrets: Any, secret_id: str, provider: str) -> str:
        reads.append(secret_id)
        return original(secrets, secret_id, provider)

    monkeypatch.setattr(keys, "key_from_secret", counted)
    deployment.handler.api_key.cache_clear()
    for _ in range(3):
        assert deployment.run(load_event("provider_sweep", "runpod"))["error"] is None
    assert reads == [RUNPOD_SECRET]


def test_a_revoked_key_is_one_error_in_the_summary_and_the_aws_sweep_runs_on(
    deployment: Deployment, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = deployment.runpod.seed_pod("train-ana-old", status="EXITED", age=timedelta(days=3))
    deployment.runpod.revoke_key()
    result = deployment.run(load_event("provider_sweep", "runpod"))
    assert result["decisions"] == [] and result["recorded"] is False
    assert result["error"] and result["error"].startswith("runpod") and "\n" not in result["error"]
    assert RUNPOD_KEY not in json.dumps(result)
    assert deployment.runpod.pods[pod].status == "EXITED"
    # The key is read again on the next run: it may have been rotated after the provider refused it.
    assert deployment.handler.api_key.cache_info().currsize == 0
    cleanup = load_handler("cleanup_sweep")
    monkeypatch.setattr(cleanup, "client_factory", lambda: factory)
    cleanup.clock = deployment.clock
    aws = cleanup.lambda_handler(load_event("cleanup_sweep", "scheduled"), LocalContext("trainctl-cleanup_sweep"))
    assert aws["regions"] == [REGION] and aws["recorded"] is True
    assert not [d for d in aws["decisions"] if d["resource_id"].startswith(("runpod:", "lyceum:"))]


def test_a_missing_secret_is_one_error_naming_the_secret_never_a_key(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_RUNPOD_KEY_SECRET", "trainctl/not-created")
    deployment.handler.provider_settings.cache_clear()
    result = deployment.run(load_event("provider_sweep", "runpod"))
    assert result["error"] == (
        "runpod: the API key secret trainctl/not-created could not be read (ResourceNotFoundException)"
    )
    assert deployment.runpod.calls == []  # nothing was asked of RunPod without a key


def test_a_held_lease_makes_a_run_do_nothing_and_each_provider_and_the_aws_sweep_have_their_own(
    deployment: Deployment,
) -> None:
    dynamodb = deployment.factory.dynamodb()
    other_run = DynamoDbLease(dynamodb, names.LEDGER_TABLE, key=provider_lease_key("runpod"))
    assert other_run.acquire(deployment.clock(), timedelta(minutes=15))
    pod = deployment.runpod.seed_pod("train-ana-old", status="EXITED", age=timedelta(days=3))
    held = deployment.run(load_event("provider_sweep", "runpod"))
    assert held["decisions"] == [] and held["error"] is None
    assert held["notes"] == ["another runpod sweep holds its lease: this one did nothing"]
    assert deployment.runpod.calls == [] and deployment.runpod.pods[pod].status == "EXITED"
    # Lyceum's run and the AWS sweep's lease are not held up by RunPod's.
    assert deployment.run(load_event("provider_sweep", "lyceum"))["notes"] == []
    assert DynamoDbLease(dynamodb, names.LEDGER_TABLE).acquire(deployment.clock(), timedelta(minutes=1))
    assert LEASE_KEY != provider_lease_key("runpod") != provider_lease_key("lyceum")


def test_lyceum_marks_a_vm_past_its_ttl_and_calls_only_the_ledger_topic_and_secret(deployment: Deployment) -> None:
    services: list[str] = []
    deployment.factory.register("before-call", lambda model, **_: services.append(model.service_model.service_name))
    vm = deployment.lyceum.add_vm("team-ana-big", created_at=T0 - timedelta(hours=100))
    result = deployment.run(load_event("provider_sweep", "lyceum"))
    [decision] = decisions_of(result, f"lyceum:{vm}")
    assert (decision["action"], result["provider"], result["error"]) == ("mark", "lyceum", None)
    assert set(services) <= {"dynamodb", "sns", "secretsmanager"} and "secretsmanager" in services


def test_a_dry_run_event_writes_nothing_not_even_a_lease(deployment: Deployment) -> None:
    deployment.runpod.seed_pod("train-ana-old", status="EXITED", age=timedelta(days=3))
    attempts = forbid_writes(deployment.factory)
    result = deployment.run(load_event("provider_sweep", "dry_run"))
    assert result["dry_run"] is True and result["error"] is None and attempts == []
    with pytest.raises(WriteForbidden):
        DynamoDbLease(deployment.factory.dynamodb(), names.LEDGER_TABLE).acquire(deployment.clock(), HOUR)


def test_enforcement_cannot_come_from_an_event(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINCTL_DRY_RUN", "true")
    deployment.handler.deployed_settings.cache_clear()
    with pytest.raises(InvalidEvent, match="this deployment is dry-run"):
        deployment.run({"task": "provider_sweep", "provider": "runpod", "dry_run": False})


def test_a_provider_this_function_does_not_deploy_is_refused_by_name(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TRAINCTL_LYCEUM_NAME_PREFIX")
    deployment.handler.provider_settings.cache_clear()
    with pytest.raises(SettingsError, match="lyceum is not configured here"):
        deployment.run(load_event("provider_sweep", "lyceum"))


@pytest.mark.parametrize("case", sorted(p.stem for p in (ROOT / "events" / "provider_sweep").glob("malformed_*")))
def test_a_malformed_event_is_refused_without_echoing_it(deployment: Deployment, case: str) -> None:
    event = load_event("provider_sweep", case)
    with pytest.raises(InvalidEvent) as refused:
        check_event("provider_sweep", event)  # what `trainctl invoke` asks first
    message = str(refused.value)
    assert message.startswith("provider_sweep refused the event: ") and "\n" not in message
    assert "curl" not in message and "rpa_" not in message
    with pytest.raises(InvalidEvent):
        deployment.run(event)
    assert deployment.runpod.calls == []


def _modules_after(function: str, then: str = "") -> set[str]:
    """The trainctl modules a fresh interpreter holds after loading a handler as Lambda does (a cold start)."""
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('handler', {str(FUNCTIONS / function / 'handler.py')!r})\n"
        "handler = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(handler)\n"
        f"{then}\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('trainctl')))"
    )
    env = {
        "PYTHONPATH": str(ROOT / "layers"),
        "AWS_DEFAULT_REGION": REGION,
        "TRAINCTL_RUNPOD_NAME_PREFIX": "train-",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return set(done.stdout.split())


PROVIDER_ROOMS = ("trainctl.runpod", "trainctl.lyceum", "trainctl.providers")


def test_the_aws_handlers_cold_import_holds_no_providers_code() -> None:
    for function in ("cleanup_sweep", "cost_alerts", "age_guard", "spot_interruption"):
        loaded = _modules_after(function)
        assert "trainctl.aws.clients" in loaded and not [m for m in loaded if m.startswith(PROVIDER_ROOMS)], function


def test_the_provider_handler_loads_only_the_swept_providers_code() -> None:
    loaded = _modules_after("provider_sweep", "handler.provider_settings('runpod')")
    assert "trainctl.runpod.settings" in loaded
    assert not [m for m in loaded if m.startswith("trainctl.lyceum")]
