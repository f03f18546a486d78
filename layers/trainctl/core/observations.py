"""What trainctl observes of a running instance: is a training job running, how busy is it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Training(StrEnum):
    ACTIVE = "active"
    IDLE = "idle"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TrainingCheck:
    status: Training
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Utilisation:
    """Peaks over the idle window; None where CloudWatch had no datapoint."""

    cpu_percent: float | None = None
    network_bytes_per_second: float | None = None
    gpu_percent: float | None = None
