"""The deployed cost check across providers (issue 28, Cost): each provider's own function prices its account on
the cost schedule and records that burn in the ledger; cost_alerts, run as deployed under moto with the RunPod and
Lyceum emulators, adds the fresh record to the totals it alerts on, on the same thresholds. An idle pod's burn
counts and breaches, a provider that is down or silent is unknown by name while the AWS figures stay whole, low
Lyceum credits alert, no key reaches the ledger, and an AWS-only deployment's cost_alerts loads no provider code."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_event
from tests.integration.fleet import REGIONS, SeededAccount, messages, seed_account
from trainctl.aws.clients import ClientFactory
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.cli.lyceum_emulator import EMULATOR_KEY as LYCEUM_KEY
from trainctl.cli.lyceum_emulator import LyceumEmulator, serve
from trainctl.cli.runpod_emulator import EMULATOR_KEY as RUNPOD_KEY
from trainctl.cli.runpod_emulator import RunpodEmulator
from trainctl.cli.sandbox_fleet import free_loopback_port
from trainctl.core import names

ROOT = Path(__file__).resolve().parents[2]
RUNPOD_SECRET = "trainctl/runpod"
LYCEUM_SECRET = "trainctl/lyceum"
RUNPOD_COST = {"task": "provider_cost", "provider": "runpod"}
LYCEUM_COST = {"task": "provider_cost", "provider": "lyceum"}


@dataclass
class Clock:
    at: datetime

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Deployment:
    """The provider functions and cost_alerts as the stack deploys them, on one clock."""

    providers: types.ModuleType
    cost: types.ModuleType
    factory: ClientFactory
    account: SeededAccount
    clock: Clock
    runpod: RunpodEmulator
    lyceum: LyceumEmulator

    def record(self, event: dict[str, str]) -> dict[str, Any]:
        """A provider's cost schedule fires: its function prices it and records the burn."""
        self.providers.clock = self.clock
        result: dict[str, Any] = self.providers.lambda_handler(event, LocalContext("trainctl-runpod_sweep"))
        return result

    def check(self, later: timedelta = timedelta(minutes=5)) -> dict[str, Any]:
        """The cost schedule fires cost_alerts, `later` than the providers' last record."""
        self.cost.deployed_settings.cache_clear()
        self.cost.clock = Clock(self.clock.at + later)
        result: dict[str, Any] = self.cost.lambda_handler(
            load_event("cost_alerts", "scheduled"), LocalContext("trainctl-cost_alerts")
        )
        return result


@pytest.fixture
def deployment(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    account = seed_account(factory)
    secrets = factory.client("secretsmanager")
    secrets.create_secret(Name=RUNPOD_SECRET, SecretString=RUNPOD_KEY)
    secrets.create_secret(Name=LYCEUM_SECRET, SecretString=json.dumps({"api_key": LYCEUM_KEY}))
    clock = Clock(account.t0)
    runpod = RunpodEmulator(now=clock, echo_key_in_errors=True)
    lyceum = LyceumEmulator(clock=clock, echo_key_in_errors=True)
    with runpod.serving() as runpod_url, serve(lyceum) as lyceum_url:
        # What the stack sets: the providers' functions get their own settings, cost_alerts the list of them.
        for name, value in {
            "TRAINCTL_REGIONS": ",".join(REGIONS),
            "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
            "TRAINCTL_PRICE_TABLE": names.PRICE_TABLE,
            "TRAINCTL_TOPIC_ARN": account.topic_arn,
            "TRAINCTL_RUNPOD_API_URL": runpod_url,
            "TRAINCTL_RUNPOD_NAME_PREFIX": "train-",
            "TRAINCTL_RUNPOD_OWNER_PATTERN": r"^train-(?P<owner>[a-z]+)-",
            "TRAINCTL_RUNPOD_KEY_SECRET": RUNPOD_SECRET,
            "TRAINCTL_LYCEUM_API_URL": lyceum_url,
            "TRAINCTL_LYCEUM_NAME_PREFIX": "team-",
            "TRAINCTL_LYCEUM_KEY_SECRET": LYCEUM_SECRET,
            "TRAINCTL_RECORDED_PROVIDERS": "runpod",
        }.items():
            monkeypatch.setenv(name, value)
        providers = load_handler("provider_sweep")
        cost = load_handler("cost_alerts")
        for handler in (providers, cost):
            monkeypatch.setattr(handler, "client_factory", lambda: factory)
        yield Deployment(providers, cost, factory, account, clock, runpod, lyceum)


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["resource_id"]: r for r in result["resources"]}


def aws_part(result: dict[str, Any]) -> list[tuple[str, float | None, str]]:
    """The AWS resources as priced: what a provider's record must leave as it was."""
    return [
        (r["resource_id"], r["hourly_usd"], r["price_source"]) for r in result["resources"] if r["provider"] == "aws"
    ]


def recorded_items(factory: ClientFactory) -> list[dict[str, Any]]:
    # Imported here so that, on code without the record, the other tests fail on what they see, not on an import.
    from trainctl.providers.burn import BURN_PARTITION

    answer = factory.dynamodb().query(
        TableName=names.LEDGER_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": BURN_PARTITION}},
    )
    return list(answer["Items"])


def test_an_idle_pods_burn_joins_the_deployed_totals_and_breaches_on_the_same_thresholds(
    deployment: Deployment,
) -> None:
    aws_only = deployment.check()
    assert "total:hourly" not in {b["key"] for b in aws_only["breaches"]}  # the fleet alone burns under $50/h
    messages(deployment.factory, deployment.account.queue_url)
    pod = deployment.runpod.seed_pod("train-ana-h100x8", hourly_usd=46.0, gpu_util=(0.0,), age=timedelta(hours=12))
    recorded = deployment.record(RUNPOD_COST)
    assert (recorded["provider"], recorded["error"], recorded["hourly_usd"]) == ("runpod", None, 46.0)
    calls_before = len(deployment.runpod.calls)
    result = deployment.check()
    assert len(deployment.runpod.calls) == calls_before  # cost_alerts read the ledger, never RunPod
    found = by_id(result)[pod]
    assert (found["provider"], found["hourly_usd"], found["price_source"], found["owner"]) == (
        "runpod",
        46.0,
        "provider-api",
        "ana",
    )
    assert result["hourly_usd"] == pytest.approx(aws_only["hourly_usd"] + 46.0, abs=1e-3)
    assert aws_part(result) == aws_part(aws_only)
    breaches = {b["key"]: b for b in result["breaches"]}
    assert breaches["total:hourly"]["value"] == pytest.approx(aws_only["hourly_usd"] + 46.0, abs=1e-3)
    assert pod in breaches["total:hourly"]["offenders"]
    assert breaches[f"resource:runpod:{pod}"]["value"] == pytest.approx(
        46.0 * 12, abs=0.02
    )  # startedAt is kept to the second
    assert {"total:hourly", f"resource:runpod:{pod}"} <= set(result["alerts"]["notified"])
    told = messages(deployment.factory, deployment.account.queue_url)
    assert [m for m in told if f"runpod {pod}" in m["Message"] and "accumulated cost" in m["Message"]]
    assert result["providers"] == [{"provider": "runpod", "error": None, "resources": 1}]


def test_a_provider_outage_leaves_the_aws_result_whole_and_names_the_provider_unknown(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = deployment.runpod.seed_pod("train-ana-llama", hourly_usd=2.69)
    aws_only = deployment.check()
    # No record yet: unknown, never $0.
    [never] = aws_only["providers"]
    assert never["error"] == "runpod: burn unknown, not $0: its function has recorded none yet"
    assert deployment.record(RUNPOD_COST)["error"] is None
    # RunPod stops answering: nothing listens where its API was.
    monkeypatch.setenv("TRAINCTL_RUNPOD_API_URL", f"http://127.0.0.1:{free_loopback_port()}/v2")
    deployment.providers.provider_settings.cache_clear()
    down = deployment.record(RUNPOD_COST)
    assert down["error"] and down["error"].startswith("runpod")
    result = deployment.check()
    assert aws_part(result) == aws_part(aws_only) and pod not in by_id(result)
    assert result["hourly_usd"] == pytest.approx(aws_only["hourly_usd"], abs=1e-3)
    [outage] = result["providers"]
    assert outage["provider"] == "runpod" and outage["error"].startswith("runpod: burn unknown, not $0: runpod")
    assert "\n" not in outage["error"]


def test_a_record_older_than_the_bound_is_unknown_by_name(deployment: Deployment) -> None:
    pod = deployment.runpod.seed_pod("train-ana-llama", hourly_usd=2.69)
    deployment.record(RUNPOD_COST)
    fresh = deployment.check(later=timedelta(minutes=44))
    assert by_id(fresh)[pod]["hourly_usd"] == 2.69
    stale = deployment.check(later=timedelta(minutes=46))  # the default bound is 45 minutes
    assert pod not in by_id(stale) and aws_part(stale) == aws_part(fresh)
    [silent] = stale["providers"]
    assert silent["error"].startswith("runpod: burn unknown, not $0: last recorded ")
    assert "46 minutes ago (over 45m)" in silent["error"]


def test_lyceum_credits_under_the_minimum_alert_from_the_deployed_stack(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_RECORDED_PROVIDERS", "runpod,lyceum")
    monkeypatch.setenv("TRAINCTL_LYCEUM_MIN_CREDITS", "100")
    vm = deployment.lyceum.add_vm("team-bo-a100", created_at=deployment.clock.at - timedelta(hours=5))
    deployment.lyceum.credits["remaining_credits"] = 40.0
    deployment.record(RUNPOD_COST)
    recorded = deployment.record(LYCEUM_COST)
    assert recorded["error"] is None and [b["key"] for b in recorded["breaches"]] == ["balance:lyceum"]
    result = deployment.check()
    breaches = {b["key"]: b for b in result["breaches"]}
    assert breaches["balance:lyceum"]["message"] == "lyceum balance 40.00 credits is under 100.00"
    assert "balance:lyceum" in result["alerts"]["notified"]
    # A Lyceum VM has no published price: unpriced by name, never $0.
    assert by_id(result)[vm]["hourly_usd"] is None and vm in result["unpriced"]
    told = messages(deployment.factory, deployment.account.queue_url)
    assert [m for m in told if "lyceum balance 40.00 credits is under 100.00" in m["Message"]]
    assert sorted(p["provider"] for p in result["providers"]) == ["lyceum", "runpod"]


def test_no_key_reaches_the_ledger_also_when_the_provider_echoes_it(deployment: Deployment) -> None:
    deployment.runpod.seed_pod("train-ana-llama", hourly_usd=2.69)
    deployment.record(RUNPOD_COST)
    deployment.runpod.revoke_key()  # and RunPod quotes the refused key back
    refused = deployment.record(RUNPOD_COST)
    assert refused["error"] and "refused" in refused["error"] and RUNPOD_KEY not in json.dumps(refused)
    from trainctl.providers.burn import decode

    [item] = recorded_items(deployment.factory)
    record = decode(bytes(item["record"]["B"]))
    assert record.costs.error == refused["error"] and record.costs.resources == ()
    assert RUNPOD_KEY not in json.dumps([record.costs.error, *record.costs.notes])
    result = deployment.check()
    assert RUNPOD_KEY not in json.dumps(result)
    assert result["providers"][0]["error"].endswith(refused["error"])


def _cost_alerts_modules(recorded_providers: str) -> set[str]:
    """The trainctl modules a fresh interpreter holds after cost_alerts' cold start and one scheduled check."""
    script = f"""
import importlib.util, sys
from moto import mock_aws
with mock_aws():
    from trainctl.aws.clients import ClientFactory
    from trainctl.cli import stack_resources
    from trainctl.cli.local_run import LocalContext
    stack_resources.ensure_on_emulator(ClientFactory(), ("us-east-1",))
    spec = importlib.util.spec_from_file_location("handler", {str(ROOT / "functions" / "cost_alerts" / "handler.py")!r})
    handler = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(handler)
    result = handler.lambda_handler({{"task": "cost_alerts"}}, LocalContext("trainctl-cost_alerts"))
    assert "hourly_usd" in result
print("\\n".join(m for m in sys.modules if m.startswith("trainctl")))
"""
    env = {
        "PYTHONPATH": str(ROOT / "layers"),
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "TRAINCTL_REGIONS": "us-east-1",
        "TRAINCTL_RECORDED_PROVIDERS": recorded_providers,
    }
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


def test_an_aws_only_cost_check_loads_no_provider_code_and_a_provider_deployment_loads_only_the_reader() -> None:
    aws_only = _cost_alerts_modules("")
    assert "trainctl.cost.run" in aws_only
    assert not [m for m in aws_only if m.startswith(("trainctl.runpod", "trainctl.lyceum", "trainctl.providers"))]
    with_runpod = _cost_alerts_modules("runpod")
    assert "trainctl.providers.burn" in with_runpod  # the record is read...
    assert not [m for m in with_runpod if m.startswith(("trainctl.runpod", "trainctl.lyceum"))]  # ...no adapter
