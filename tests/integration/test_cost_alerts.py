"""The cost_alerts handler and `trainctl cost` end to end under moto: estimates, breaches once, history, refusals."""

from __future__ import annotations

import json
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import load_event
from tests.integration.conftest import run_cli
from tests.integration.fleet import REGIONS, SeededAccount, messages, seed_account
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names
from trainctl.core.clock import fixed_clock, format_instant
from trainctl.core.errors import SettingsError
from trainctl.core.events import InvalidEvent
from trainctl.cost.prices.model import Price
from trainctl.cost.prices.price_file import load_price_file
from trainctl.cost.prices.table import DynamoDbPriceTable

runner = CliRunner()


@pytest.fixture
def handler(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.setenv("TRAINCTL_REGIONS", ",".join(REGIONS))
    monkeypatch.setenv("TRAINCTL_LEDGER_TABLE", names.LEDGER_TABLE)
    monkeypatch.setenv("TRAINCTL_PRICE_TABLE", names.PRICE_TABLE)
    module = load_handler("cost_alerts")
    monkeypatch.setattr(module, "client_factory", lambda: factory)
    return module


@pytest.fixture
def account(handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> SeededAccount:
    seeded = seed_account(factory)
    monkeypatch.setenv("TRAINCTL_TOPIC_ARN", seeded.topic_arn)
    return seeded


def run(handler: types.ModuleType, event: Any, at: datetime) -> dict[str, Any]:
    handler.deployed_settings.cache_clear()
    handler.price_book.cache_clear()
    handler.clock = fixed_clock(at)
    result: dict[str, Any] = handler.lambda_handler(event, LocalContext(function_name="trainctl-cost_alerts"))
    return result


def state_change(instance_id: str, state: str, at: datetime) -> dict[str, Any]:
    event: dict[str, Any] = load_event("cost_alerts", f"instance_{state}")
    event["detail"]["instance-id"] = instance_id
    event["resources"] = [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"]
    event["time"] = format_instant(at)
    return event


def resource(result: dict[str, Any], resource_id: str) -> dict[str, Any]:
    return next(r for r in result["resources"] if r["resource_id"] == resource_id)


def test_scheduled_check_prices_the_fleet_from_the_chain(handler: types.ModuleType, account: SeededAccount) -> None:
    result = run(handler, load_event("cost_alerts", "scheduled"), account.t0)
    shipped = load_price_file()
    g5 = resource(result, account.fleet["forgotten-notebook"])
    assert g5["hourly_usd"] == 5.672 and g5["price_source"] == "price-file"
    # The moto Price List API does not exist: the chain fell through to the file, and said so.
    assert result["pricing"]["lookups"]["file"] > 0 and result["pricing"]["price_file_as_of"] == shipped.as_of
    assert all(r["price_source"] for r in result["resources"])
    priced = [r["hourly_usd"] for r in result["resources"] if r["hourly_usd"] is not None]
    assert result["hourly_usd"] == pytest.approx(sum(priced), abs=0.01)
    assert result["daily_usd"] == pytest.approx(24 * result["hourly_usd"], abs=0.01)
    # moto's spot price ($0.00001) is implausible: on demand stands in, flagged as an upper bound.
    spot = resource(result, account.fleet["spot-finetune"])
    assert spot["price_source"] == "on-demand-upper-bound" and "upper-bound" in spot["flags"]
    # The API is down and the file prices every type the fleet runs (issue 19), per GPU as well: nothing unpriced.
    p4d = resource(result, account.fleet["llm-pretrain"])
    assert p4d["hourly_usd"] == 21.9576 and p4d["price_source"] == "price-file"
    assert p4d["accelerators"]["model"] == "A100" and p4d["accelerators"]["per_accelerator_hourly_usd"] == 2.7447
    assert result["unpriced"] == [] and result["complete"] is True


def test_a_warm_function_prices_from_memory(
    handler: types.ModuleType, factory: ClientFactory, account: SeededAccount
) -> None:
    cold = run(handler, load_event("cost_alerts", "scheduled"), account.t0)
    handler.clock = fixed_clock(account.t0 + timedelta(minutes=15))
    warm = handler.lambda_handler(load_event("cost_alerts", "scheduled"), LocalContext(function_name="x"))
    assert cold["pricing"]["lookups"].get("memory", 0) == 0
    # Only the spot price that failed is looked up again; everything else comes from memory.
    assert set(warm["pricing"]["lookups"]) == {"memory", "spot-fallback"}
    assert warm["pricing"]["lookups"]["memory"] == cold["pricing"]["lookups"]["file"]


def test_price_table_shares_api_prices_and_ignores_expired_ones(factory: ClientFactory) -> None:
    stack_resources.ensure_on_emulator(factory, ("us-east-1",))
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    table = DynamoDbPriceTable(factory.dynamodb(), names.PRICE_TABLE, fixed_clock(now))
    fresh = Price.flat(1.006, "hour", "price-list-api", "2026-11-28T11:00:00Z")
    table.put("instance|us-east-1|g5.xlarge", fresh, now + timedelta(days=7))
    table.put("instance|us-east-1|t3.micro", fresh, now - timedelta(minutes=1))  # TTL not yet swept
    found = table.get_many(["instance|us-east-1|g5.xlarge", "instance|us-east-1|t3.micro", "instance|x|y"])
    assert found == {"instance|us-east-1|g5.xlarge": fresh}


def test_breaches_reach_the_topic_once_not_on_every_run(
    handler: types.ModuleType, factory: ClientFactory, account: SeededAccount
) -> None:
    first = run(handler, load_event("cost_alerts", "scheduled"), account.t0)
    keys = {b["key"] for b in first["breaches"]}
    # ~$29/h is under $50/h, but 24 h of it is over $100; the g5.12xlarge and the p4d ran 8 days: over $500.
    assert "total:daily" in keys and "total:hourly" not in keys
    assert f"resource:{account.fleet['forgotten-notebook']}" in keys and "unpriced" not in keys
    told = messages(factory, account.queue_url)
    assert sorted(first["alerts"]["notified"]) == sorted(keys)
    assert len(told) == len(keys)
    daily = next(m for m in told if "24-hour projection" in m["Subject"])
    assert account.fleet["forgotten-notebook"] in daily["Message"] and "$5.6720/h" in daily["Message"]

    second = run(handler, load_event("cost_alerts", "scheduled"), account.t0 + timedelta(minutes=15))
    assert second["alerts"]["notified"] == [] and sorted(second["alerts"]["suppressed"]) == sorted(keys)
    assert messages(factory, account.queue_url) == []


def test_a_breach_that_ends_is_cleared_once(
    handler: types.ModuleType, factory: ClientFactory, account: SeededAccount
) -> None:
    run(handler, load_event("cost_alerts", "scheduled"), account.t0)
    messages(factory, account.queue_url)
    notebook = account.fleet["forgotten-notebook"]
    factory.ec2("us-east-1").terminate_instances(InstanceIds=[notebook])
    later = run(handler, load_event("cost_alerts", "scheduled"), account.t0 + timedelta(minutes=15))
    assert f"resource:{notebook}" in later["alerts"]["cleared"]
    told = messages(factory, account.queue_url)
    assert [m["Subject"] for m in told if notebook in m["Subject"]] == [f"trainctl cost: cleared resource:{notebook}"]
    again = run(handler, load_event("cost_alerts", "scheduled"), account.t0 + timedelta(minutes=30))
    assert again["alerts"]["cleared"] == []


def test_recorded_state_changes_make_accumulated_cost_exact(
    handler: types.ModuleType, factory: ClientFactory, account: SeededAccount
) -> None:
    stopped = account.fleet["stopped-experiment"]  # p3.2xlarge at $3.06/h
    t0 = account.t0
    for state, at in (("running", t0 - timedelta(hours=5)), ("stopped", t0 - timedelta(hours=3))):
        outcome = run(handler, state_change(stopped, state, at), t0)
        assert outcome["status"] == "recorded"
    # EventBridge delivers at least once: the same event again records nothing new.
    run(handler, state_change(stopped, "stopped", t0 - timedelta(hours=3)), t0)
    result = run(handler, load_event("cost_alerts", "one_region"), t0)
    figure = resource(result, stopped)
    assert figure["accumulated_usd"] == pytest.approx(2 * 3.06)
    assert figure["hourly_usd"] == 0.0 and "lower-bound" not in figure["flags"]
    # Another stopped instance without history: no run visible, flagged.
    assert "lower-bound" in resource(result, account.fleet["stopped-baseline"])["flags"]


def test_state_change_from_an_unwatched_region_is_ignored(handler: types.ModuleType, factory: ClientFactory) -> None:
    event = state_change("i-0123456789abcdef0", "running", datetime(2026, 11, 28, 10, 0))
    event["region"] = "ap-south-1"
    outcome = run(handler, event, datetime(2026, 11, 28, 10, 1))
    assert outcome["status"] == "ignored" and "ap-south-1" in outcome["reason"]
    assert factory.calls.total == 0


def test_burn_rate_is_published_as_a_metric(
    handler: types.ModuleType, account: SeededAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(handler, load_event("cost_alerts", "scheduled"), account.t0)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf, "no EMF line printed"
    names = {m["Name"] for line in emf for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"BurnRateHourlyUSD", "ProjectedDailyUSD", "UnpricedResources"} <= names
    assert emf[-1]["BurnRateHourlyUSD"] in (result["hourly_usd"], [result["hourly_usd"]])
    assert emf[-1]["service"] == "trainctl"


def test_an_unreadable_price_file_fails_at_start_and_calls_nothing(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "prices.json"
    broken.write_text("{ not json", encoding="utf-8")
    monkeypatch.setenv("TRAINCTL_PRICE_FILE", str(broken))
    with pytest.raises(SettingsError, match="TRAINCTL_PRICE_FILE"):
        run(handler, load_event("cost_alerts", "scheduled"), datetime(2026, 11, 28, 10, 0))
    assert factory.calls.total == 0


@pytest.mark.parametrize(
    "case",
    ["malformed_bad_region", "malformed_unknown_task", "malformed_instance_id", "malformed_detail_type"],
)
def test_malformed_events_are_refused_and_change_nothing(
    handler: types.ModuleType, factory: ClientFactory, case: str
) -> None:
    with pytest.raises(InvalidEvent):
        run(handler, load_event("cost_alerts", case), datetime(2026, 11, 28, 10, 0))
    assert factory.calls.total == 0


def test_an_event_cannot_widen_the_regions(handler: types.ModuleType, factory: ClientFactory) -> None:
    with pytest.raises(InvalidEvent, match="not in TRAINCTL_REGIONS"):
        run(handler, {"task": "cost_alerts", "regions": ["ap-south-1"]}, datetime(2026, 11, 28, 10, 0))
    assert factory.calls.total == 0


# ------------------------------------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_factory(factory: ClientFactory) -> ClientFactory:
    return factory


def test_cost_json_prints_the_documented_shape(cli_factory: ClientFactory) -> None:
    account = seed_account(cli_factory)
    at = format_instant(account.t0)
    result = run_cli(cli_factory, ["cost", "--region", "us-east-1", "--region", "eu-west-1", "--at", at, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"hourly_usd", "daily_usd", "resources", "breaches"} <= set(report)
    assert report["at"] == at and report["regions"] == ["us-east-1", "eu-west-1"]
    for item in report["resources"]:
        assert {"resource_id", "hourly_usd", "accumulated_usd", "price_source"} <= set(item)
    assert {r["region"] for r in report["resources"]} == {"us-east-1", "eu-west-1"}
    # A report alerts nobody.
    assert messages(cli_factory, account.queue_url) == []
    later = json.loads(
        run_cli(cli_factory, ["cost", "--at", format_instant(account.t0 + timedelta(days=1)), "--json"]).stdout
    )
    notebook = account.fleet["forgotten-notebook"]
    grown = resource(later, notebook)["accumulated_usd"] - resource(report, notebook)["accumulated_usd"]
    assert grown == pytest.approx(24 * 5.672)


def test_cost_table_names_breaches_and_the_price_files_age(cli_factory: ClientFactory) -> None:
    account = seed_account(cli_factory)
    result = run_cli(cli_factory, ["cost", "--at", format_instant(account.t0)])
    assert result.exit_code == 0, result.output
    assert "burning $" in result.stdout and "breach:" in result.stdout and "unpriced" not in result.stdout
    assert "priced from the price file of" in result.stdout and "per GPU-hour" in result.stdout


def test_cost_refuses_a_bad_instant_and_a_bad_setting(
    cli_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli(cli_factory, ["cost", "--at", "yesterday"]).exit_code == 2
    monkeypatch.setenv("TRAINCTL_HOURLY_THRESHOLD_USD", "-5")
    refused = run_cli(cli_factory, ["cost"])
    assert refused.exit_code == 1 and "TRAINCTL_HOURLY_THRESHOLD_USD" in refused.stderr
    assert cli_factory.calls.total == 0
