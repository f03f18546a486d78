"""Estimates, accumulated cost with an injected clock, breaches and alert pacing: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from tests import price_list
from trainctl.core import tags
from trainctl.core.clock import fixed_clock
from trainctl.core.notices import email_text
from trainctl.core.resources import Attachment, Instance, RegionInventory, Snapshot, Volume
from trainctl.core.settings import CostSettings
from trainctl.cost.prices.chain import PriceBook
from trainctl.cost.prices.model import Price, PriceKey, Quote, SpotKey
from trainctl.cost.prices.price_file import PriceFile
from trainctl.cost.prices.price_list import PriceListApi, RateLimiter
from trainctl.cost.rules import (
    AlertState,
    Breach,
    Transition,
    breach_notice,
    estimate,
    find_breaches,
    offender_line,
    plan_alerts,
    price_keys,
    running_hours,
    totals,
)

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
REGION = "us-east-1"
P = price_list.PUBLISHED


def instance(
    iid: str, itype: str, *, state: str = "running", hours: float = 10, owner: str = "alice", **kw: Any
) -> Instance:
    return Instance(
        resource_id=iid,
        region=REGION,
        state=state,
        instance_type=itype,
        launch_time=AT - timedelta(hours=hours),
        availability_zone="us-east-1a",
        tags={tags.OWNER: owner},
        **kw,
    )


def volume(vid: str, size: int, vtype: str = "gp3", *, hours: float = 100, owner: str = "bob", **kw: Any) -> Volume:
    return Volume(
        resource_id=vid,
        region=REGION,
        state="available",
        size_gib=size,
        volume_type=vtype,
        create_time=AT - timedelta(hours=hours),
        availability_zone="us-east-1a",
        tags={tags.OWNER: owner},
        **kw,
    )


def fixture_fleet() -> RegionInventory:
    return RegionInventory(
        region=REGION,
        instances=(
            instance("i-p5", "p5.48xlarge", hours=3),
            instance("i-g5", "g5.12xlarge", hours=48, owner="bob"),
            instance("i-stopped", "g5.xlarge", state="stopped", hours=500),
        ),
        volumes=(
            volume("vol-plain", 1000),
            volume("vol-fast", 500, iops=16_000, throughput_mibps=1000),
            volume("vol-io2", 200, "io2", iops=40_000, attachments=(Attachment("i-p5", False),)),
        ),
        snapshots=(
            Snapshot(
                resource_id="snap-1",
                region=REGION,
                state="completed",
                start_time=AT - timedelta(days=30),
                volume_id="vol-plain",
                volume_size_gib=1000,
                tags={tags.OWNER: "alice"},
            ),
        ),
    )


def hand_computed_hourly() -> dict[str, float]:
    """The published prices, by hand: instances per hour, storage per GB-month / 730."""
    return {
        "i-p5": P[("instance", REGION, "p5.48xlarge")],
        "i-g5": P[("instance", REGION, "g5.12xlarge")],
        "i-stopped": 0.0,
        "vol-plain": 1000 * 0.08 / 730,
        # gp3 pays for IOPS above 3,000 and throughput above 125 MiB/s.
        "vol-fast": (500 * 0.08 + (16_000 - 3_000) * 0.005 + (1000 - 125) * 0.04) / 730,
        # io2: 32,000 IOPS at the first tier, 8,000 at the second.
        "vol-io2": (200 * 0.125 + 32_000 * 0.065 + 8_000 * 0.0455) / 730,
        "snap-1": 1000 * 0.05 / 730,
    }


def stubbed_book() -> PriceBook:
    """The chain with the Price List API answering from recorded records (moto has no pricing API)."""
    client = boto3.client("pricing", region_name="us-east-1")
    stubber = Stubber(client)
    keys, _ = price_keys([fixture_fleet()])
    for key in sorted(keys):
        stubber.add_response(
            "get_products",
            {"PriceList": price_list.records_for(key.kind, key.name), "FormatVersion": "aws_v1"},
            {"ServiceCode": "AmazonEC2", "Filters": ANY, "FormatVersion": "aws_v1", "MaxResults": 100},
        )
    stubber.activate()
    api = PriceListApi(client, limiter=RateLimiter(5.0, sleep=lambda _: None), clock=fixed_clock(AT))
    return PriceBook(clock=fixed_clock(AT), price_file=PriceFile("2026-11-01", "empty", {}), api=api)


def test_fixture_fleet_estimate_matches_a_hand_computation_within_one_percent() -> None:
    fleet = fixture_fleet()
    chain = stubbed_book()
    keys, spot = price_keys([fleet])
    costs = estimate([fleet], chain.quotes(keys), chain.spot_quotes(spot, {}), {}, AT)
    expected = hand_computed_hourly()
    by_id = {c.resource_id: c for c in costs}
    assert set(by_id) == set(expected)
    for resource_id, hourly in expected.items():
        assert by_id[resource_id].hourly_usd == pytest.approx(hourly, rel=0.01), resource_id
        assert by_id[resource_id].price_source == "price-list-api"
    total = totals(costs)
    assert total.hourly_usd == pytest.approx(sum(expected.values()), rel=0.01)
    assert total.daily_usd == pytest.approx(24 * sum(expected.values()), rel=0.01)
    assert total.unpriced == 0
    # Accumulated: volumes since creation, instances since launch (a lower bound without history).
    assert by_id["vol-plain"].accumulated_usd == pytest.approx(100 * expected["vol-plain"], rel=0.01)
    assert by_id["i-g5"].accumulated_usd == pytest.approx(48 * 5.672, rel=0.01)
    assert "lower-bound" in by_id["i-g5"].flags
    assert "upper-bound" in by_id["snap-1"].flags  # incremental snapshots bill at most their size


def test_running_hours_follow_recorded_state_changes() -> None:
    start = AT - timedelta(hours=10)
    node = instance("i-1", "g5.xlarge", hours=2)  # LaunchTime is the last start
    history = [
        Transition(start, "running"),
        Transition(start + timedelta(hours=3), "stopping"),
        Transition(start + timedelta(hours=3, minutes=1), "stopped"),
        Transition(AT - timedelta(hours=2), "running"),
    ]
    hours, flags = running_hours(node, history, AT)
    assert hours == pytest.approx(5.0)  # 3 h, stopped, then 2 h still running
    assert flags == ()
    # The same instance without history: only the current run, flagged as a lower bound.
    assert running_hours(node, None, AT) == (pytest.approx(2.0), ("lower-bound",))


def test_a_missed_stop_event_is_closed_by_ec2s_own_stop_time() -> None:
    stopped_at = AT - timedelta(hours=6)
    node = instance("i-1", "g5.xlarge", state="stopped", hours=10, stopped_since=stopped_at)
    hours, _ = running_hours(node, [Transition(AT - timedelta(hours=10), "running")], AT)
    assert hours == pytest.approx(4.0)


def test_history_that_begins_mid_run_counts_from_launch_time() -> None:
    node = instance("i-1", "g5.xlarge", state="stopped", hours=8)
    hours, _ = running_hours(node, [Transition(AT - timedelta(hours=5), "stopped")], AT)
    assert hours == pytest.approx(3.0)


def test_accumulated_cost_moves_with_the_injected_clock() -> None:
    fleet = RegionInventory(region=REGION, instances=(instance("i-1", "g5.xlarge", hours=1),))
    quotes = {PriceKey("instance", REGION, "g5.xlarge"): Quote(Price.flat(1.006, "hour", "price-file", "x"), "file")}
    now = estimate([fleet], quotes, {}, {}, AT)[0]
    later = estimate([fleet], quotes, {}, {}, AT + timedelta(hours=9))[0]
    assert now.accumulated_usd == pytest.approx(1.006)
    assert later.accumulated_usd == pytest.approx(10 * 1.006)
    assert now.hourly_usd == later.hourly_usd == 1.006


def test_spot_instances_use_the_spot_price_and_stopped_instances_pay_nothing_per_hour() -> None:
    spot = instance("i-spot", "g5.xlarge", lifecycle="spot")
    stopped = instance("i-off", "g5.xlarge", state="stopped")
    fleet = RegionInventory(region=REGION, instances=(spot, stopped))
    keys, spot_keys = price_keys([fleet])
    assert spot_keys == {SpotKey(REGION, "us-east-1a", "g5.xlarge")}
    quotes = {k: Quote(Price.flat(1.006, "hour", "price-file", "x"), "file") for k in keys}
    spot_quotes = {k: Quote(Price.flat(0.41, "hour", "spot-price-history", "x"), "spot-api") for k in spot_keys}
    by_id = {c.resource_id: c for c in estimate([fleet], quotes, spot_quotes, {}, AT)}
    assert by_id["i-spot"].hourly_usd == 0.41 and by_id["i-spot"].price_source == "spot-price-history"
    assert by_id["i-off"].hourly_usd == 0.0


def test_unknown_instance_type_is_unpriced_and_alerted_never_zero() -> None:
    fleet = RegionInventory(region=REGION, instances=(instance("i-new", "zz9.mega", hours=3),))
    quotes = {PriceKey("instance", REGION, "zz9.mega"): Quote(None, "unpriced", "nobody knows zz9.mega")}
    costs = estimate([fleet], quotes, {}, {}, AT)
    assert costs[0].hourly_usd is None and costs[0].accumulated_usd is None
    assert costs[0].price_source == "unpriced" and "zz9.mega" in costs[0].problem
    assert totals(costs).unpriced == 1
    breaches = find_breaches(costs, CostSettings())
    assert [b.kind for b in breaches] == ["unpriced"]
    notice = breach_notice(breaches[0], "new", AT)
    body = email_text(notice)
    assert "no price" in notice.title and "i-new" in body and "zz9.mega" in body


def test_burn_is_reported_per_gpu_as_well() -> None:
    fleet = RegionInventory(
        region=REGION,
        instances=(
            instance("i-p5", "p5.48xlarge"),
            instance("i-off", "p3.2xlarge", state="stopped"),
            instance("i-trn", "trn1.32xlarge"),
            instance("i-cpu", "c6in.xlarge"),
        ),
    )
    keys, _ = price_keys([fleet])
    quotes = {
        k: Quote(Price.flat(P.get((k.kind, k.region, k.name), 21.5), "hour", "price-file", "x"), "file") for k in keys
    }
    by_id = {c.resource_id: c for c in estimate([fleet], quotes, {}, {}, AT)}
    p5 = by_id["i-p5"]
    assert p5.accelerator_text() == "8 \N{MULTIPLICATION SIGN} H100 at $6.88 per GPU-hour"
    assert p5.to_json()["accelerators"] == {
        "count": 8,
        "model": "H100",
        "kind": "gpu",
        "per_accelerator_hourly_usd": 6.88,
        "text": "8 \N{MULTIPLICATION SIGN} H100 at $6.88 per GPU-hour",
    }
    assert "8 \N{MULTIPLICATION SIGN} H100 at $6.88 per GPU-hour" in offender_line(p5)
    # A stopped instance burns nothing per GPU: its GPUs are still named, without a rate.
    assert by_id["i-off"].accelerator_text() == "1 \N{MULTIPLICATION SIGN} V100"
    # Trainium is counted in chips, not GPUs.
    assert by_id["i-trn"].accelerator_text().endswith("per chip-hour")
    assert by_id["i-trn"].to_json()["accelerators"]["kind"] == "neuron"
    # A type without accelerators says nothing about them.
    assert by_id["i-cpu"].accelerators is None and "accelerators" not in by_id["i-cpu"].to_json()


def test_an_unpriced_accelerator_instance_still_names_its_gpus() -> None:
    fleet = RegionInventory(region=REGION, instances=(instance("i-b3", "p6-b300.48xlarge"),))
    quotes = {PriceKey("instance", REGION, "p6-b300.48xlarge"): Quote(None, "unpriced", "not sold on demand here")}
    cost = estimate([fleet], quotes, {}, {}, AT)[0]
    assert cost.hourly_usd is None and cost.accelerator_text() == "8 \N{MULTIPLICATION SIGN} B300"
    assert cost.to_json()["accelerators"]["per_accelerator_hourly_usd"] is None


# ------------------------------------------------------------------------------------------------- breaches


def priced_fleet() -> list[Any]:
    fleet = fixture_fleet()
    quotes = {
        k: Quote(Price.flat(P.get((k.kind, k.region, k.name), 0.1), "hour", "price-file", "x"), "file")
        for k in price_keys([fleet])[0]
    }
    return estimate([fleet], quotes, {}, {}, AT)


def test_default_thresholds_catch_hourly_daily_and_per_resource() -> None:
    costs = priced_fleet()
    breaches = {b.key: b for b in find_breaches(costs, CostSettings())}
    # p5 ($55.04) + g5.12xlarge ($5.672) > $50/h; the day projection > $100; g5.12xlarge ran 48 h = $272 < $500.
    assert {"total:hourly", "total:daily"} <= set(breaches)
    assert breaches["total:hourly"].offenders[0].resource_id == "i-p5"
    assert "resource:i-g5" not in breaches
    stricter = {b.key for b in find_breaches(costs, CostSettings(resource_threshold_usd=200))}
    assert "resource:i-g5" in stricter


def test_owner_thresholds_apply_to_that_owner_only() -> None:
    costs = priced_fleet()
    settings = CostSettings(
        hourly_threshold_usd=1000,
        daily_threshold_usd=100_000,
        resource_threshold_usd=100_000,
        owner_thresholds={"bob": {"hourly_usd": 5}},
    )
    breaches = find_breaches(costs, settings)
    assert [b.key for b in breaches] == ["owner:bob:hourly"]
    assert all(o.owner == "bob" for o in breaches[0].offenders)
    everyone = settings.model_copy(update={"owner_thresholds": {"*": settings.owner_thresholds["bob"]}})
    assert {b.key for b in find_breaches(costs, everyone)} == {"owner:alice:hourly", "owner:bob:hourly"}


# ----------------------------------------------------------------------------------------------- alert pacing

BREACH = Breach("total:hourly", "hourly", "total", 60.0, 50.0)
COOLDOWN = timedelta(hours=6)


def state(value: float, hours_ago: float) -> dict[str, AlertState]:
    return {"total:hourly": AlertState("total:hourly", value, AT - timedelta(hours=hours_ago))}


def test_a_new_breach_is_told_once_and_not_repeated_within_the_cooldown() -> None:
    assert [why for _, why in plan_alerts([BREACH], {}, AT, cooldown=COOLDOWN, growth=0.25).notify] == ["new"]
    quiet = plan_alerts([BREACH], state(60.0, 1), AT, cooldown=COOLDOWN, growth=0.25)
    assert quiet.notify == [] and quiet.suppressed == [BREACH]


def test_a_grown_breach_is_told_again_within_the_cooldown() -> None:
    grown = Breach("total:hourly", "hourly", "total", 76.0, 50.0)
    plan = plan_alerts([grown], state(60.0, 1), AT, cooldown=COOLDOWN, growth=0.25)
    assert [why for _, why in plan.notify] == ["grew"]
    slightly = Breach("total:hourly", "hourly", "total", 70.0, 50.0)
    assert plan_alerts([slightly], state(60.0, 1), AT, cooldown=COOLDOWN, growth=0.25).notify == []


def test_a_standing_breach_is_repeated_after_the_cooldown() -> None:
    plan = plan_alerts([BREACH], state(60.0, 7), AT, cooldown=COOLDOWN, growth=0.25)
    assert [why for _, why in plan.notify] == ["reminder"]


def test_a_breach_that_is_gone_is_cleared() -> None:
    plan = plan_alerts([], state(60.0, 1), AT, cooldown=COOLDOWN, growth=0.25)
    assert [s.key for s in plan.cleared] == ["total:hourly"] and plan.notify == []
