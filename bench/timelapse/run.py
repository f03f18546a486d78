"""One time-lapse, start to judgement: the cast on the deployed schedules, then the oracle."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.timelapse.cast import Story, large_cast, small_cast, truths_of
from bench.timelapse.harness import Record, TimeLapse, World
from bench.timelapse.oracle import Judgement, judge

CASTS: dict[str, Callable[[World], list[Story]]] = {"small": small_cast, "large": large_cast}


@dataclass
class Run:
    record: Record
    judgement: Judgement
    wall_seconds: float


def time_lapse(
    *, days: float, seed: int, cast: str = "small", overrides: dict[str, Any] | None = None, quiet: bool = True
) -> Run:
    began = time.perf_counter()
    lapse = TimeLapse(days=days, seed=seed, cast=CASTS[cast], overrides=overrides, quiet=quiet)
    record = lapse.run()
    stories: list[Story] = lapse.cast
    judgement = judge(record, truths_of(stories), lapse.stack)
    judgement.stories = list(dict.fromkeys(story.story for story in stories))
    return Run(record, judgement, time.perf_counter() - began)
