"""RunPod and Lyceum priced into the same estimate as AWS, by hand: pods at the API's cost, network volumes at
RunPod's published price / 730, what no published figure prices unpriced by name, the same thresholds across
providers, and Lyceum's credits under their floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trainctl.core.cost_settings import CostSettings
from trainctl.cost.rules import ResourceCost, find_breaches, totals
from trainctl.lyceum.read import read_entries
from trainctl.lyceum.settings import LyceumSettings
from trainctl.providers.cost import credits_breach, lyceum_costs, network_volume_monthly_usd, runpod_costs
from trainctl.providers.published_prices import LYCEUM_PRICE_GAP, RUNPOD_STOPPED_DISK_GAP
from trainctl.runpod.read import read_inventory
from trainctl.runpod.settings import RunpodSettings

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RUNPOD = RunpodSettings(runpod_name_prefix="train-", runpod_owner_pattern=r"^train-(?P<owner>[a-z]+)-")
LYCEUM = LyceumSettings(lyceum_name_prefix="team-", lyceum_owner_pattern=r"^team-(?P<owner>[a-z]+)-")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def pod(pod_id: str, status: str, cost: float, *, started_ago: timedelta, volumes: tuple[str, ...] = ()) -> Any:
    started = AT - started_ago
    return {
        "id": pod_id,
        "name": f"train-ana-{pod_id}",
        "status": status,
        "cost": cost,
        "createdAt": iso(started - timedelta(hours=1)),
        "startedAt": iso(started),
        "locked": False,
        "mounts": {"network": [{"volumeId": v} for v in volumes]},
        "runtime": {"uptime": int(started_ago.total_seconds()), "gpus": [{"util": 50, "memoryUtil": 20}]}
        if status == "RUNNING"
        else None,
    }


def account(*pods: Any, volumes: tuple[Any, ...] = ()) -> list[ResourceCost]:
    return runpod_costs(read_inventory(list(pods), list(volumes), RUNPOD, AT), AT)


def by_id(costs: list[ResourceCost]) -> dict[str, ResourceCost]:
    return {c.resource_id: c for c in costs}


def test_running_pods_at_the_apis_cost_an_exited_one_by_its_disk_and_a_network_volume_at_the_published_price() -> None:
    costs = by_id(
        account(
            pod("poda", "RUNNING", 2.69, started_ago=timedelta(hours=10)),
            pod("podb", "RUNNING", 0.44, started_ago=timedelta(hours=2)),
            pod("podc", "EXITED", 0.0, started_ago=timedelta(hours=30)),
            pod("podd", "EXITED", 0.0, started_ago=timedelta(hours=30), volumes=("vol1",)),
            pod("pode", "TERMINATED", 0.0, started_ago=timedelta(hours=30)),
            volumes=({"id": "vol1", "name": "train-ana-data", "size": 500, "dataCenter": "EU-RO-1"},),
        )
    )
    assert set(costs) == {"poda", "podb", "podc", "podd", "vol1"}  # a terminated pod no longer exists
    a, b, c, d, vol = (costs[k] for k in ("poda", "podb", "podc", "podd", "vol1"))
    assert (a.hourly_usd, a.price_source, a.provider, a.owner) == (2.69, "provider-api", "runpod", "ana")
    assert a.accumulated_usd == pytest.approx(26.9)  # 10 hours since its last start, at $2.69
    assert "lower-bound" in a.flags  # runs before the last start are not reported
    assert (b.hourly_usd, b.accumulated_usd) == (0.44, pytest.approx(0.88))
    # RunPod bills a stopped pod's volume disk at $0.20/GB-month; the answer has no disk size: unpriced, not $0.
    assert (c.hourly_usd, c.price_source, c.problem) == (None, "unpriced", RUNPOD_STOPPED_DISK_GAP)
    # A network volume stands in place of the volume disk: this exited pod keeps nothing of its own to bill.
    assert (d.hourly_usd, d.price_source) == (0.0, "provider-api")
    # 500 GB x $0.07 per GB-month / 730 hours.
    assert vol.hourly_usd == pytest.approx(35.0 / 730)
    assert (vol.price_source, vol.region, vol.flags, vol.accumulated_usd) == ("price-file", "EU-RO-1", (), None)
    overall = totals(list(costs.values()))
    assert overall.hourly_usd == pytest.approx(2.69 + 0.44 + 35.0 / 730)
    assert overall.daily_usd == pytest.approx((2.69 + 0.44 + 35.0 / 730) * 24)
    assert overall.unpriced == 1
    assert a.to_json()["provider"] == "runpod" and vol.to_json()["hourly_usd"] == round(35.0 / 730, 4)


def test_a_network_volume_over_1_tb_is_an_upper_bound_and_says_why() -> None:
    assert network_volume_monthly_usd(1000) == (pytest.approx(70.0), ())
    # The first 1,000 GB at $0.07, the next 1,000 at $0.05: the higher of the page's two readings.
    assert network_volume_monthly_usd(2000) == (pytest.approx(120.0), ("upper-bound",))
    (big,) = account(volumes=({"id": "volbig", "name": "x", "size": 2000, "dataCenter": "US-KS-2"},))
    assert big.hourly_usd == pytest.approx(120.0 / 730) and "whole volume" in big.problem


def test_an_unreadable_pod_is_unpriced_by_name() -> None:
    broken = pod("podx", "RUNNING", 1.0, started_ago=timedelta(hours=1))
    del broken["cost"]
    (cost,) = account(broken)
    assert (cost.resource_id, cost.hourly_usd, cost.price_source) == ("podx", None, "unpriced")
    assert cost.problem.startswith("unreadable:") and "cost" in cost.problem


def test_lyceum_vms_are_unpriced_with_the_reason_and_a_terminated_one_is_gone() -> None:
    entries = [
        {"vm_id": "vm-1", "name": "team-ana-a100", "status": "running", "hardware_profile": "a100",
         "billed": 12.5, "created_at": iso(AT - timedelta(hours=5))},
        {"vm_id": "vm-2", "name": "team-bo-old", "status": "terminated", "hardware_profile": "h100",
         "billed": 3.0, "created_at": iso(AT - timedelta(days=2))},
    ]  # fmt: skip
    (vm,) = lyceum_costs(read_entries(entries, [], LYCEUM, AT), AT)
    assert (vm.resource_id, vm.provider, vm.owner) == ("vm-1", "lyceum", "ana")
    assert (vm.hourly_usd, vm.accumulated_usd, vm.price_source, vm.problem) == (
        None,
        None,
        "unpriced",
        LYCEUM_PRICE_GAP,
    )
    assert vm.to_json()["hourly_usd"] is None  # never $0


def test_the_same_thresholds_apply_across_providers_and_a_resource_breach_names_its_provider() -> None:
    aws = ResourceCost("i-0abc", "instance", "us-east-1", "bo", "p4d.24xlarge", 32.77, 100.0, "price-file", AT)
    runpod = account(
        pod("poda", "RUNNING", 2.69, started_ago=timedelta(hours=200)),  # $538 since its start
        pod("podb", "RUNNING", 18.0, started_ago=timedelta(hours=1)),
    )
    lyceum = lyceum_costs(
        read_entries(
            [{"vm_id": "vm-1", "name": "team-ana-x", "status": "running", "created_at": iso(AT - timedelta(hours=1))}],
            [],
            LYCEUM,
            AT,
        ),
        AT,
    )
    breaches = {b.key: b for b in find_breaches([aws, *runpod, *lyceum], CostSettings())}
    # $32.77 + $2.69 + $18.00 = $53.46 an hour: over $50 only with RunPod counted.
    assert breaches["total:hourly"].value == pytest.approx(53.46)
    assert breaches["total:daily"].value == pytest.approx(53.46 * 24)
    resource = breaches["resource:runpod:poda"]
    assert resource.value == pytest.approx(538.0) and "runpod poda" in resource.headline()
    assert breaches["unpriced"].value == 1 and breaches["unpriced"].offenders[0].resource_id == "vm-1"
    # AWS alone is under the $50 an hour (its 24 hours are over the $100 a day all the same).
    assert [b.key for b in find_breaches([aws], CostSettings())] == ["total:daily"]


def test_lyceum_credits_under_their_floor_are_a_balance_breach() -> None:
    answer = {"available_credits": 125.5, "used_credits": 84.5, "remaining_credits": 41.0}
    breach, note = credits_breach(answer, 50.0)
    assert breach is not None and note == ""
    assert (breach.key, breach.kind, breach.value, breach.threshold) == ("balance:lyceum", "balance", 41.0, 50.0)
    assert breach.headline() == "lyceum balance 41.00 credits is under 50.00"
    assert credits_breach(answer, 41.0) == (None, "")
    missing, said = credits_breach({"available_credits": 10}, 50.0)
    assert missing is None and "remaining_credits" in said
