"""What trainctl observes of a running instance: is a training job running, how busy is it."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Training(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"
    UNKNOWN = "unknown"  # could not answer this time (timeout, deadline, no verdict): no evidence either way
    NOT_MANAGED = "not-managed"  # SSM does not manage the instance: no check will ever answer


# A NamedTuple, not a frozen dataclass: on Python 3.11 it is made at import several times faster (cold start).
class TrainingCheck(NamedTuple):
    """The training check's answer for one instance, with what it said."""

    status: Training
    detail: str = ""

    @property
    def answered(self) -> bool:
        return self.status in (Training.ACTIVE, Training.IDLE)


class Utilisation(NamedTuple):
    """Peaks over the idle window; None where CloudWatch had no datapoint."""

    cpu_percent: float | None = None
    network_bytes_per_second: float | None = None
    gpu_percent: float | None = None
