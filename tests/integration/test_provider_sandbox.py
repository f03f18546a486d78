"""The sandbox's RunPod and Lyceum step (issue 28), and two faults of the providers' sweep that the step ran into.

The step runs the command line's provider sweep against both emulators and a moto server, every half hour for five
hours of the sandbox's clock: it must stop the idle pod, terminate the long-exited one, delete the orphaned network
volume, end Lyceum's VM past its time-to-live and its run past the cap, name the protections that kept the rest,
and honour a 429's Retry-After.

The two faults, each kept here so that it stays fixed:
- a sample the ledger kept is stored to the whole second, the sweep's own instant was not: sweeps exactly one idle
  window apart looked a fraction of a second too far apart, and an idle pod was never found idle (now the window
  is judged in the whole seconds the ledger keeps);
- a stop that fulfilled its mark left the mark in the ledger: the next sweep withdrew it and told the owner a
  third time, where the AWS sweep takes the fulfilled mark off with the act (one notice per mark, one per outcome).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.cli import stack_resources
from trainctl.cli.runpod_emulator import EMULATOR_KEY, RunpodEmulator
from trainctl.cli.sandbox_fleet import moto_server
from trainctl.cli.sandbox_run import PROVIDER_SWEEPS, provider_story
from trainctl.core import names
from trainctl.core.sweep_settings import SweepSettings
from trainctl.providers.sweep import ProviderLedger, ProviderSweepResult
from trainctl.runpod.client import connect
from trainctl.runpod.run import run_runpod_sweep
from trainctl.runpod.settings import RunpodSettings

REGION = "us-east-1"


def test_the_sandbox_step_sweeps_both_providers_through_marks_acts_protections_and_a_429() -> None:
    out = io.StringIO()
    report: dict[str, Any] = {}
    environment = dict(os.environ)
    with moto_server():
        factory = ClientFactory()
        stack_resources.ensure_on_emulator(factory, (REGION,))
        start = datetime.now(UTC) + timedelta(days=9)
        ok = provider_story(Console(file=out, width=80), factory, start, report)
    said = out.getvalue()
    providers = report["providers"]
    assert ok and providers["ok"], said
    assert all(providers["checks"].values()), providers["checks"]
    assert len(providers["sweeps"]) == PROVIDER_SWEEPS
    left = providers["runpod"]["left"]
    assert left["idle"] == "EXITED" and left["exited"] == "gone" and left["orphan"] == "gone"
    assert left["busy"] == left["locked"] == left["out-of-scope"] == "RUNNING" and left["mounted"] == "present"

    def actions(provider: str, resource_id: str) -> list[tuple[str, str, str]]:
        return [
            (sweep["after"], d["action"], d["outcome"])
            for sweep in providers["sweeps"]
            for d in sweep[provider]["decisions"]
            if d["resource_id"] == f"{provider}:{resource_id}" and d["action"] != "keep"
        ]

    pods, volumes = providers["runpod"]["pods"], providers["runpod"]["volumes"]
    # Marked once idle across the 30-minute window, stopped after the 2h grace and the 15m lag (next half hour).
    assert actions("runpod", pods["idle"])[:2] == [("+0:30", "mark", "done"), ("+3:00", "stop", "done")]
    # Kept by name first (endpoint-mounted), marked once its endpoint is deleted, deleted after grace.
    assert actions("runpod", volumes["orphan"]) == [("+2:30", "mark", "done"), ("+5:00", "delete", "done")]
    lyceum = providers["lyceum"]["seeded"]
    assert actions("lyceum", lyceum["past_ttl"])[0] == ("+0:00", "mark", "done")
    assert ("terminate", "done") in [(a, o) for _, a, o in actions("lyceum", lyceum["past_ttl"])]
    rate = providers["runpod"]["rate_limit"]
    assert rate["answered_429"] >= 1 and all(w["waited_s"] >= w["retry_after_s"] > 0 for w in rate["waits"])
    for word in ("locked", "min-age", "endpoint-mounted", "blast-radius", "429", "Retry-After"):
        assert word in said, word
    assert max(len(line) for line in said.splitlines()) <= 80
    assert EMULATOR_KEY not in said and EMULATOR_KEY not in str(report)
    assert dict(os.environ) == environment  # the step's settings and keys stay in the step


# -- the two faults, on the emulator and moto in-process ---------------------------------------------------------


@dataclass
class Clock:
    at: datetime

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Account:
    factory: ClientFactory
    clock: Clock
    runpod: RunpodEmulator
    url: str
    notifier: InMemoryNotifier

    def sweep(self, settings: SweepSettings) -> ProviderSweepResult:
        runpod = RunpodSettings(runpod_api_url=self.url, runpod_name_prefix="train-")
        client = connect(runpod, EMULATOR_KEY, sleep=lambda _s: None)
        ledger = ProviderLedger(self.factory.dynamodb(), names.LEDGER_TABLE, "runpod")
        return run_runpod_sweep(client, runpod, settings, self.clock, ledger=ledger, notifier=self.notifier)


def account(factory: ClientFactory, start: datetime) -> Iterator[Account]:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    clock = Clock(start)
    emulator = RunpodEmulator(now=clock)
    with emulator.serving() as url:
        yield Account(factory, clock, emulator, url, InMemoryNotifier())


@pytest.fixture
def on_the_second(factory: ClientFactory) -> Iterator[Account]:
    yield from account(factory, datetime(2031, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def mid_second(factory: ClientFactory) -> Iterator[Account]:
    # A deployed sweep's clock is the system's: never on the whole second.
    yield from account(factory, datetime(2031, 3, 2, 9, 0, 0, 250_000, tzinfo=UTC))


def settings(idle_window: timedelta) -> SweepSettings:
    return SweepSettings(
        regions=(REGION,),
        dry_run=False,
        grace_period=timedelta(hours=2),
        event_delivery_lag=timedelta(minutes=15),
        idle_window=idle_window,
        max_action_share=1.0,
        training_document=names.TRAINING_DOCUMENT,
    )


def decisions_about(result: ProviderSweepResult, pod_id: str) -> list[tuple[str, str]]:
    assert result.error is None, result.error
    return [(d.action, d.outcome) for d in result.result.decisions if d.resource_id == f"runpod:{pod_id}"]


def test_sweeps_one_idle_window_apart_on_whole_seconds_find_the_idle_pod(on_the_second: Account) -> None:
    """The control for the fault below: the same story on a clock that stands on the whole second."""
    pod = on_the_second.runpod.seed_pod("train-ana-llama", gpu_util=(0.0,), age=timedelta(hours=3))
    window = timedelta(minutes=30)
    assert decisions_about(on_the_second.sweep(settings(window)), pod) == []  # one sample is no window
    on_the_second.clock.at += window
    assert decisions_about(on_the_second.sweep(settings(window)), pod) == [("mark", "done")]


def test_sweeps_one_idle_window_apart_find_the_idle_pod_whatever_the_fraction_of_a_second(
    mid_second: Account,
) -> None:
    pod = mid_second.runpod.seed_pod("train-ana-llama", gpu_util=(0.0,), age=timedelta(hours=3))
    window = timedelta(minutes=30)
    assert decisions_about(mid_second.sweep(settings(window)), pod) == []
    mid_second.clock.at += window
    assert decisions_about(mid_second.sweep(settings(window)), pod) == [("mark", "done")]


def test_sweeps_one_idle_window_apart_mid_second_stop_the_idle_pod_after_grace_and_lag(mid_second: Account) -> None:
    """Past the mark, the ledger's sightings (kept to the second) vouch for it at the same precision."""
    pod = mid_second.runpod.seed_pod("train-ana-llama", gpu_util=(0.0,), age=timedelta(hours=3))
    window = timedelta(minutes=30)
    seen = []
    for _ in range(7):  # +0:00 .. +3:00: marked at +0:30, grace to +2:30, the lag to +2:45, stopped at +3:00
        seen.append(decisions_about(mid_second.sweep(settings(window)), pod))
        mid_second.clock.at += window
    assert seen[1] == [("mark", "done")] and seen[6] == [("stop", "done")], seen
    assert mid_second.runpod.pods[pod].status == "EXITED"


def test_a_fulfilled_stop_takes_its_mark_off_and_the_owner_hears_twice_only(on_the_second: Account) -> None:
    pod = on_the_second.runpod.seed_pod("train-ana-llama", gpu_util=(0.0,), age=timedelta(hours=10))
    hourly = settings(timedelta(hours=2))
    seen = []
    for _ in range(7):  # +0h .. +6h: marked at +2h, stopped at +5h (grace to +4h, then the lag), one sweep after
        seen.append(decisions_about(on_the_second.sweep(hourly), pod))
        on_the_second.clock.at += timedelta(hours=1)
    assert seen[2] == [("mark", "done")] and seen[5] == [("stop", "done")]
    assert on_the_second.runpod.pods[pod].status == "EXITED"
    assert seen[6] == []  # as on AWS: the stop took its fulfilled mark off; nothing new for its owner
    told = [text for _, text in on_the_second.notifier.messages if pod in text]
    assert len(told) == 2, told
