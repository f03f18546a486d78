"""One time-lapse, start to judgement: the cast on the deployed schedules, then the oracle."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.timelapse.accounts import AccountsSeen, SecondAccount
from bench.timelapse.cast import Story, large_cast, small_cast, truths_of
from bench.timelapse.harness import Record, TimeLapse, World
from bench.timelapse.oracle import AccountLine, Judgement, judge, judge_accounts
from bench.timelapse.providers import ProviderWorld, with_providers

CASTS: dict[str, Callable[[World], list[Story]]] = {"small": small_cast, "large": large_cast}


@dataclass
class Run:
    record: Record
    judgement: Judgement
    wall_seconds: float
    # Organization mode: the member account beside the hub's, and the lines judged against their accounts.
    accounts: AccountsSeen | None = None
    account_lines: list[AccountLine] = field(default_factory=list)


def time_lapse(
    *,
    days: float,
    seed: int,
    cast: str = "small",
    overrides: dict[str, Any] | None = None,
    quiet: bool = True,
    organization: bool = False,
    providers: bool = False,
) -> Run:
    began = time.perf_counter()
    stories_of = CASTS[cast]
    with contextlib.ExitStack() as serving:
        if providers:
            # The providers' emulators serve for the run only, beside the AWS cast (bench/timelapse/providers.py).
            world = serving.enter_context(ProviderWorld().serving())
            stories_of = with_providers(stories_of, world)
            overrides = {**(overrides or {}), **world.overrides()}
        lapse = TimeLapse(
            days=days, seed=seed, cast=stories_of, overrides=overrides, quiet=quiet, organization=organization
        )
        record = lapse.run()
    stories: list[Story] = lapse.cast
    judgement = judge(record, truths_of(stories), lapse.stack)
    judgement.stories = list(dict.fromkeys(story.story for story in stories))
    second: SecondAccount | None = lapse.second_account
    lines = second.lines() if second is not None else []
    if second is not None:
        judgement.findings += judge_accounts(judgement.truths, second.seen.holders, lines)
    return Run(record, judgement, time.perf_counter() - began, second.seen if second else None, lines)
