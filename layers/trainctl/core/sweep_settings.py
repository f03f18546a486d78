"""The cleanup sweep's settings: each field is one TRAINCTL_ variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainctl.core import tags
from trainctl.core.paths import is_absolute_path
from trainctl.core.settings_loader import ENV_PREFIX, csv_values, duration_value, load_settings, region_names

_PATTERN = re.compile(r"[A-Za-z0-9_.\-/ ]{1,64}")


class SweepSettings(BaseModel):
    """Everything the cleanup sweep needs to decide; each field is one TRAINCTL_ variable."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    regions: tuple[str, ...] = Field(default=("us-east-1",), min_length=1)
    dry_run: bool = True
    scope_tag: str = tags.MANAGED
    min_age: timedelta = timedelta(minutes=5)
    grace_period: timedelta = timedelta(hours=24)
    stopped_max_age: timedelta = timedelta(days=7)
    snapshot_retention: timedelta = timedelta(days=30)
    prewarm_worker_max_age: timedelta = timedelta(hours=6)
    # Expiry (trainctl:ttl or a default maximum age) is announced this long before the action.
    ttl_warning_lead: timedelta = timedelta(hours=1)
    # Default maximum age per resource class when no trainctl:ttl is set; off unless configured.
    max_age_instance: timedelta | None = None
    max_age_volume: timedelta | None = None
    max_age_snapshot: timedelta | None = None
    idle_action: Literal["stop", "terminate"] = "stop"
    # Instance store is scratch by AWS's definition: an idle instance with it is stopped after its notice and grace
    # like any other (the notice says what is lost); false keeps every such instance running.
    stop_instance_store: bool = True
    # An instance SSM does not manage cannot be asked for a training process: protect it (kept, named, counted),
    # or decide it on utilisation alone (`metrics`; accelerator types still need an accelerator reading).
    idle_without_training_check: Literal["protect", "metrics"] = "protect"
    # CloudTrail delivers an API call minutes after it is made: a mark is acted on only once its grace ended at
    # least this long ago, so a use made before the grace ended has been heard.
    event_delivery_lag: timedelta = timedelta(minutes=15)
    idle_window: timedelta = timedelta(hours=2)
    idle_cpu_percent: float = Field(default=5.0, ge=0, le=100)
    idle_gpu_percent: float = Field(default=5.0, ge=0, le=100)
    idle_network_bytes_per_second: float = Field(default=20_000.0, ge=0)
    max_actions: int = Field(default=50, ge=0)
    max_action_share: float = Field(default=0.25, ge=0, le=1)
    action_concurrency: int = Field(default=8, ge=1, le=64)
    training_document: str = "trainctl-training-check"
    training_pid_file: str = "/var/run/trainctl/training.pid"
    training_process_patterns: tuple[str, ...] = ("torchrun", "deepspeed", "accelerate launch", "train.py")
    training_check_timeout: timedelta = timedelta(seconds=60)
    ledger_table: str = "trainctl-ledger"
    topic_arn: str | None = None
    deadline_margin: timedelta = timedelta(seconds=30)

    _durations = field_validator(
        "min_age",
        "grace_period",
        "stopped_max_age",
        "snapshot_retention",
        "prewarm_worker_max_age",
        "idle_window",
        "training_check_timeout",
        "deadline_margin",
        "ttl_warning_lead",
        "event_delivery_lag",
        "max_age_instance",
        "max_age_volume",
        "max_age_snapshot",
        mode="before",
    )(duration_value)
    _lists = field_validator("regions", "training_process_patterns", mode="before")(csv_values)

    _known_region_shape = field_validator("regions")(region_names)

    @field_validator("training_process_patterns")
    @classmethod
    def _plain_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # They reach the instance as an SSM parameter; the document's allowedPattern repeats this check.
        for pattern in value:
            if not _PATTERN.fullmatch(pattern):
                raise ValueError(f"{pattern!r} may hold only letters, digits, space and _ . - /")
        return value

    @field_validator("training_pid_file")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not is_absolute_path(value):
            raise ValueError(f"{value!r} must be an absolute path of letters, digits and _ . - / without . or .. parts")
        return value

    @field_validator("idle_window", "grace_period", "stopped_max_age", "snapshot_retention")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> SweepSettings:
        """Read TRAINCTL_<FIELD> variables; an invalid one raises SettingsError naming it."""
        return load_settings(cls, environ, overrides)


def env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in SweepSettings.model_fields]
