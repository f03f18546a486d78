"""What the deployed stack runs and when, and the simulated clock that runs it.

Schedules and the Lambda environment come from the stack's own settings (cdk.json's context through
infra.config, as app.py reads it), never from a copy kept here; the agenda is a priority queue of instants, and
the clock (time-machine) travels to each, so that moto's own times (LaunchTime, CreateTime) and the handlers'
system clock agree with the story.
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import time_machine

from infra.config import CONTEXT_KEY, DeployConfig, load_config
from trainctl.core import names
from trainctl.core.clock import ensure_utc, format_instant

ROOT = Path(__file__).resolve().parents[2]
CDK_JSON = ROOT / "cdk.json"
# The forms infra.config accepts for a rate; a cron schedule (uneven gaps) is refused here.
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


class UnsupportedSchedule(ValueError):
    """A schedule expression the time-lapse cannot replay (cron)."""


def rate_period(expression: str) -> timedelta:
    """The period of `rate(N unit)`; a cron expression is refused with the reason."""
    found = _RATE.match(expression.strip())
    if found is None:
        raise UnsupportedSchedule(
            f"{expression!r}: the time-lapse replays rate(N minutes|hours|days) schedules only; "
            "set a rate in cdk.json (context.trainctl) to run it"
        )
    return int(found[1]) * _UNIT[found[2].removesuffix("s")]


@dataclass(frozen=True)
class ScheduledFunction:
    """A function the stack invokes on a schedule, with the input its EventBridge Scheduler schedule sends."""

    function: str
    expression: str

    @property
    def period(self) -> timedelta:
        return rate_period(self.expression)

    def event(self) -> dict[str, Any]:
        # infra.function.scheduled_invocation: the schedule's input is {"task": <function folder>}.
        return {"task": self.function}


@dataclass(frozen=True)
class DeployedStack:
    """The settings a deployed, enforcing stack gives its functions."""

    config: DeployConfig

    def schedules(self) -> tuple[ScheduledFunction, ...]:
        # infra.stack: the sweep runs on options.sweep_schedule, the cost check on options.cost_schedule.
        options = self.config.options
        return (
            ScheduledFunction("cleanup_sweep", options.sweep_schedule),
            ScheduledFunction("cost_alerts", options.cost_schedule),
        )

    def schedule_of(self, function: str) -> ScheduledFunction:
        return next(s for s in self.schedules() if s.function == function)

    def environment(self, *, account_id: str, topic_arn: str, recovery_state_machine_arn: str) -> dict[str, str]:
        """Every function's environment as the constructs in infra/ build it, merged into the one process the
        handlers share here; a key two functions would see with different values is refused."""
        config = self.config
        per_function = {
            # infra.cleanup_sweep.CleanupSweep
            "cleanup_sweep": {
                **config.function_environment(),
                "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
                "TRAINCTL_TOPIC_ARN": topic_arn,
                "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
            },
            # infra.age_guard.AgeGuard
            "age_guard": {
                **config.age_guard_environment(),
                "TRAINCTL_ACCOUNT_ID": account_id,
                "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
            },
            # infra.cost_alerts.CostAlerts
            "cost_alerts": {
                **config.cost_environment(),
                "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
                "TRAINCTL_TOPIC_ARN": topic_arn,
                "TRAINCTL_PRICE_TABLE": names.PRICE_TABLE,
            },
            # infra.spot_interruption.SpotInterruption
            "spot_interruption": {
                **config.spot_environment(),
                "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
                "TRAINCTL_TOPIC_ARN": topic_arn,
                "TRAINCTL_SPOT_DOCUMENT": names.SPOT_DOCUMENT,
                "TRAINCTL_RECOVERY_STATE_MACHINE_ARN": recovery_state_machine_arn,
            },
        }
        merged: dict[str, str] = dict(names.FUNCTION_ENVIRONMENT)
        for function, environment in per_function.items():
            for key, value in environment.items():
                if merged.setdefault(key, value) != value:
                    raise ValueError(f"{key} differs between functions ({function}: {value!r}, else {merged[key]!r})")
        return merged

    def sweep_setting(self, name: str) -> Any:
        return getattr(self.config.sweep, name)


def deployed_stack(overrides: Mapping[str, Any] | None = None, *, region: str = "us-east-1") -> DeployedStack:
    """cdk.json's trainctl context, enforcing (a deployed guardrail acts), with `overrides` on top."""
    context = json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"][CONTEXT_KEY]
    return DeployedStack(load_config({**context, "dry_run": False, **(overrides or {})}, default_region=region))


def ticks(start: datetime, end: datetime, period: timedelta, *, phase: timedelta = timedelta(0)) -> Iterator[datetime]:
    """A rate schedule's instants in [start, end): EventBridge Scheduler starts a rate at creation, `phase` in."""
    at = start + phase
    while at < end:
        yield at
        at += period


@dataclass(order=True)
class _Entry:
    at: datetime
    order: int
    label: str = field(compare=False)
    run: Callable[[], None] = field(compare=False)


class Agenda:
    """The instants still to come, earliest first; equal instants in the order they were added."""

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._order = itertools.count()

    def add(self, at: datetime, label: str, run: Callable[[], None]) -> None:
        heapq.heappush(self._heap, _Entry(ensure_utc(at), next(self._order), label, run))

    def pop(self) -> _Entry | None:
        return heapq.heappop(self._heap) if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)


class SimulatedClock:
    """The process's clock (datetime, time.time; moto's too) moved to each instant of the story; it ticks in
    between, as a real invocation takes real time, and never goes back."""

    def __init__(self, start: datetime) -> None:
        self.start = ensure_utc(start)
        self._traveller = time_machine.travel(self.start, tick=True)
        self._coordinates: time_machine.Coordinates | None = None

    def __enter__(self) -> SimulatedClock:
        self._coordinates = self._traveller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._traveller.stop()
        self._coordinates = None

    def now(self) -> datetime:
        return datetime.now(UTC)

    def move_to(self, at: datetime) -> datetime:
        assert self._coordinates is not None, "the clock is not running"
        target = ensure_utc(at)
        if target > self.now():
            self._coordinates.move_to(target)
        return self.now()

    def __str__(self) -> str:
        return format_instant(self.now())
