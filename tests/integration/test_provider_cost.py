"""`trainctl cost` and `resources summary` across providers, against the RunPod and Lyceum emulators beside moto:
RunPod priced alone, AWS and both providers under the same thresholds, a Lyceum VM unpriced by name, Lyceum's
credits under their floor, a revoked key that is one warning while AWS is still priced, and no key in any output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import run_cli
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.lyceum_emulator import EMULATOR_KEY as LYCEUM_KEY
from trainctl.cli.lyceum_emulator import LyceumEmulator, serve
from trainctl.cli.runpod_emulator import EMULATOR_KEY as RUNPOD_KEY
from trainctl.cli.runpod_emulator import RunpodEmulator
from trainctl.core.clock import format_instant
from trainctl.providers.published_prices import LYCEUM_PRICE_GAP, RUNPOD_STOPPED_DISK_GAP

REGION = "us-east-1"
AMI = "ami-12345678"
AT = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
G5_12XLARGE_US_EAST_1 = 5.672  # the shipped price file's on-demand price


@dataclass
class World:
    factory: ClientFactory
    runpod: RunpodEmulator
    lyceum: LyceumEmulator

    def launch_g5(self) -> str:
        launched = self.factory.ec2(REGION).run_instances(
            ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="g5.12xlarge"
        )
        return str(launched["Instances"][0]["InstanceId"])

    def cost(self, *args: str) -> Any:
        return run_cli(self.factory, ["cost", "--region", REGION, "--at", format_instant(AT), *args])


@pytest.fixture
def world(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    runpod = RunpodEmulator(now=lambda: AT)
    lyceum = LyceumEmulator(clock=lambda: AT, echo_key_in_errors=True)
    with runpod.serving() as runpod_url, serve(lyceum) as lyceum_url:
        monkeypatch.setenv("TRAINCTL_RUNPOD_NAME_PREFIX", "train-")
        monkeypatch.setenv("TRAINCTL_RUNPOD_OWNER_PATTERN", r"^train-(?P<owner>[a-z]+)-")
        monkeypatch.setenv("TRAINCTL_RUNPOD_API_URL", runpod_url)
        monkeypatch.setenv("RUNPOD_API_KEY", RUNPOD_KEY)
        monkeypatch.setenv("TRAINCTL_LYCEUM_NAME_PREFIX", "team-")
        monkeypatch.setenv("TRAINCTL_LYCEUM_API_URL", lyceum_url)
        monkeypatch.setenv("LYCEUM_API_KEY", LYCEUM_KEY)
        yield World(factory, runpod, lyceum)


def resources_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["resource_id"]: r for r in report["resources"]}


def aws_hourly(report: dict[str, Any]) -> float:
    """The g5.12xlarge and the root volume moto gives it, as priced in the report."""
    return sum(r["hourly_usd"] for r in report["resources"] if r["provider"] == "aws")


def test_cost_for_runpod_alone_prices_pods_at_the_apis_cost_and_volumes_at_the_published_price(world: World) -> None:
    world.launch_g5()  # not asked for: not priced
    a = world.runpod.seed_pod("train-ana-llama", hourly_usd=2.69, age=timedelta(hours=10))
    b = world.runpod.seed_pod("train-bo-bert", hourly_usd=0.44, age=timedelta(hours=2))
    exited = world.runpod.seed_pod("train-cy-old", status="EXITED", age=timedelta(days=3))
    volume = world.runpod.seed_volume("train-ana-data", size_gb=500)
    result = world.cost("--provider", "runpod", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    found = resources_of(report)
    assert set(found) == {a, b, exited, volume}
    assert {r["provider"] for r in report["resources"]} == {"runpod"} and report["regions"] == []
    assert (found[a]["hourly_usd"], found[a]["price_source"], found[a]["owner"]) == (2.69, "provider-api", "ana")
    assert found[a]["accumulated_usd"] == pytest.approx(26.9)
    assert found[volume]["hourly_usd"] == round(500 * 0.07 / 730, 4) and found[volume]["price_source"] == "price-file"
    assert (found[exited]["hourly_usd"], found[exited]["problem"]) == (None, RUNPOD_STOPPED_DISK_GAP)
    assert report["hourly_usd"] == pytest.approx(2.69 + 0.44 + 500 * 0.07 / 730, abs=1e-4)
    assert report["unpriced"] == [exited] and report["providers"][0] == {
        "provider": "runpod",
        "error": None,
        "resources": 4,
    }
    assert RUNPOD_KEY not in result.output


def test_the_same_thresholds_apply_across_aws_and_both_providers_and_low_credits_alert(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    instance = world.launch_g5()
    pod = world.runpod.seed_pod("train-ana-h100x8", hourly_usd=46.0, age=timedelta(hours=12))
    vm = world.lyceum.add_vm("team-bo-a100", created_at=AT - timedelta(hours=5))
    world.lyceum.credits["remaining_credits"] = 40.0
    monkeypatch.setenv("TRAINCTL_LYCEUM_MIN_CREDITS", "100")
    result = world.cost("--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    found = resources_of(report)
    assert {found[instance]["provider"], found[pod]["provider"], found[vm]["provider"]} == {"aws", "runpod", "lyceum"}
    # $5.672 and a root volume (AWS) + $46 (RunPod): over $50 an hour only with both counted.
    assert found[instance]["hourly_usd"] == G5_12XLARGE_US_EAST_1 and aws_hourly(report) < 6.0
    breaches = {b["key"]: b for b in report["breaches"]}
    assert breaches["total:hourly"]["value"] == pytest.approx(aws_hourly(report) + 46.0, abs=1e-3)
    assert breaches[f"resource:runpod:{pod}"]["value"] == pytest.approx(46.0 * 12)
    assert f"runpod {pod}" in breaches[f"resource:runpod:{pod}"]["message"]
    # A Lyceum VM has no published price: unpriced by name, alerted as such, never $0.
    assert (found[vm]["hourly_usd"], found[vm]["problem"]) == (None, LYCEUM_PRICE_GAP)
    assert vm in breaches["unpriced"]["offenders"]
    assert breaches["balance:lyceum"]["message"] == "lyceum balance 40.00 credits is under 100.00"
    table = world.cost()
    assert table.exit_code == 0, table.output
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "runpod" in table.stdout and "lyceum" in table.stdout and "balance 40.00" in table.stdout
    assert RUNPOD_KEY not in table.output + result.output and LYCEUM_KEY not in table.output + result.output


def test_a_revoked_key_is_one_warning_and_aws_is_still_priced(world: World) -> None:
    instance = world.launch_g5()
    world.runpod.seed_pod("train-ana-llama", hourly_usd=2.69)
    vm = world.lyceum.add_vm("team-bo-a100", created_at=AT - timedelta(hours=5))
    world.runpod.revoke_key()
    world.lyceum.revoke(LYCEUM_KEY)  # and Lyceum quotes the refused key back
    result = world.cost("--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert {r["provider"] for r in report["resources"]} == {"aws"} and instance in resources_of(report)
    assert report["hourly_usd"] == pytest.approx(aws_hourly(report), abs=1e-3)
    assert resources_of(report)[instance]["hourly_usd"] == G5_12XLARGE_US_EAST_1
    errors = {p["provider"]: p["error"] for p in report["providers"]}
    assert errors["runpod"].startswith("runpod: ") and "refused" in errors["runpod"]
    assert errors["lyceum"].startswith("lyceum: ") and "refused" in errors["lyceum"]
    warnings = [line for line in result.stderr.splitlines() if "refused" in line]
    assert len(warnings) == 2
    assert vm not in result.output
    assert RUNPOD_KEY not in result.output and LYCEUM_KEY not in result.output


def test_resources_summary_counts_every_provider_in_its_own_rows(world: World) -> None:
    world.launch_g5()
    world.runpod.seed_pod("train-ana-llama", hourly_usd=2.69)
    world.runpod.seed_pod("train-cy-old", status="EXITED", age=timedelta(days=3))
    world.runpod.seed_volume("train-ana-data", size_gb=500)
    world.lyceum.add_vm("team-bo-a100", created_at=AT - timedelta(hours=5))
    result = run_cli(world.factory, ["resources", "summary", "--region", REGION, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["providers"] == {
        "aws": {"instance": {"running": 1}, "volume": {"in-use": 1}},  # moto's root volume
        "runpod": {"pod": {"EXITED": 1, "RUNNING": 1}, "network volume": {"available": 1}},
        "lyceum": {"vm": {"running": 1}},
    }
    assert summary["counts"] == summary["providers"]["aws"]  # AWS's, as before
    aws = aws_hourly(json.loads(world.cost("--provider", "aws", "--json").stdout))
    assert summary["hourly_usd"] == pytest.approx(aws + 2.69 + 500 * 0.07 / 730, abs=1e-3)
    table = run_cli(world.factory, ["resources", "summary", "--region", REGION])
    assert table.exit_code == 0, table.output
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "network volume" in table.stdout and "lyceum" in table.stdout
    assert RUNPOD_KEY not in table.output + result.output and LYCEUM_KEY not in table.output + result.output
