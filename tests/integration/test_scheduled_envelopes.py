"""Issue 17 item 13: the scheduled functions run on EventBridge Scheduler's envelope without Input, as on a rule's."""

from __future__ import annotations

import types
from typing import Any

import pytest

from tests.conftest import load_event
from tests.integration.fleet import REGIONS, SeededAccount, seed_account
from trainctl.aws.clients import ClientFactory
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names
from trainctl.core.clock import fixed_clock


@pytest.fixture
def account(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> SeededAccount:
    seeded = seed_account(factory)
    monkeypatch.setenv("TRAINCTL_REGIONS", ",".join(REGIONS))
    monkeypatch.setenv("TRAINCTL_LEDGER_TABLE", names.LEDGER_TABLE)
    monkeypatch.setenv("TRAINCTL_PRICE_TABLE", names.PRICE_TABLE)
    monkeypatch.setenv("TRAINCTL_TRAINING_DOCUMENT", names.TRAINING_DOCUMENT)
    monkeypatch.setenv("TRAINCTL_TRAINING_CHECK_TIMEOUT", "1s")
    monkeypatch.setenv("TRAINCTL_TOPIC_ARN", seeded.topic_arn)
    return seeded


def handler_for(function: str, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = load_handler(function)
    monkeypatch.setattr(module, "client_factory", lambda: factory)
    module.deployed_settings.cache_clear()
    if hasattr(module, "price_book"):
        module.price_book.cache_clear()
    return module


def run(module: types.ModuleType, function: str, case: str, account: SeededAccount) -> dict[str, Any]:
    module.clock = fixed_clock(account.t0)
    result: dict[str, Any] = module.lambda_handler(
        load_event(function, case), LocalContext(function_name=f"trainctl-{function}")
    )
    return result


def test_the_sweep_runs_on_the_scheduler_envelope_as_on_its_own_schedule(
    factory: ClientFactory, account: SeededAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = handler_for("cleanup_sweep", factory, monkeypatch)
    by_hand = run(module, "cleanup_sweep", "scheduler_without_input", account)
    assert by_hand["dry_run"] is True and sorted(by_hand["regions"]) == sorted(REGIONS)
    assert by_hand["summary"]["scanned"] > 0
    planned = run(module, "cleanup_sweep", "scheduled", account)
    assert by_hand["summary"]["scanned"] == planned["summary"]["scanned"]


def test_the_cost_check_runs_on_the_scheduler_envelope_as_on_its_own_schedule(
    factory: ClientFactory, account: SeededAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = handler_for("cost_alerts", factory, monkeypatch)
    by_hand = run(module, "cost_alerts", "scheduler_without_input", account)
    planned = run(module, "cost_alerts", "scheduled", account)
    assert sorted(by_hand["regions"]) == sorted(REGIONS) and by_hand["resources"]
    assert by_hand["hourly_usd"] == planned["hourly_usd"]
