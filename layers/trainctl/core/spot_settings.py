"""spot_interruption's settings (the recovery workflow's too): the checkpoint, what to save, and recovery."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trainctl.core import tags
from trainctl.core.paths import is_absolute_path, split_s3_uri
from trainctl.core.settings_loader import ENV_PREFIX, csv_values, duration_value, load_settings, region_names

_HOOK = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class SpotSettings(BaseModel):
    """What spot_interruption needs: the checkpoint command, what to save, and recovery."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    regions: tuple[str, ...] = Field(default=("us-east-1",), min_length=1)
    scope_tag: str = tags.MANAGED
    spot_document: str = "trainctl-spot-checkpoint"
    spot_signal: Literal["SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT", "NONE"] = "SIGUSR1"
    training_pid_file: str = "/var/run/trainctl/training.pid"
    # The only hook names ever sent; a trainctl:checkpoint-hook tag may choose among them, nothing more.
    spot_hooks: tuple[str, ...] = ("default",)
    spot_default_hook: str = "default"
    spot_resume_hook: str = "default"
    spot_checkpoint_dir: str = "/opt/trainctl/checkpoints"
    # Checkpoints are synced to <prefix>/<instance id>/; unset skips the sync.
    spot_checkpoint_s3_uri: str | None = None
    # How long to let the checkpoint run before the snapshot starts; capped by the two-minute window.
    spot_checkpoint_wait: timedelta = timedelta(seconds=30)
    spot_rebalance_action: Literal["checkpoint", "all"] = "checkpoint"
    # How late a spot event may arrive and still be acted on: an older warning is recorded, nothing is saved.
    spot_event_delivery_lag: timedelta = timedelta(minutes=5)
    recovery_state_machine_arn: str | None = None
    recovery_max_attempts: int = Field(default=3, ge=1, le=10)
    ledger_table: str = "trainctl-ledger"
    topic_arn: str | None = None

    _durations = field_validator("spot_checkpoint_wait", "spot_event_delivery_lag", mode="before")(duration_value)
    _lists = field_validator("regions", "spot_hooks", mode="before")(csv_values)
    _known_region_shape = field_validator("regions")(region_names)

    @field_validator("spot_hooks")
    @classmethod
    def _hook_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for hook in value:
            if not _HOOK.fullmatch(hook):
                raise ValueError(f"{hook!r} is not a hook name (lowercase letters, digits, _ and -)")
        return value

    @field_validator("training_pid_file", "spot_checkpoint_dir")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not is_absolute_path(value):
            raise ValueError(f"{value!r} must be an absolute path of letters, digits and _ . - / without . or .. parts")
        return value

    @field_validator("spot_checkpoint_s3_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None and split_s3_uri(value) is None:
            raise ValueError(f"{value!r} is not an s3://bucket/prefix URI (no . or .. parts)")
        return value

    @model_validator(mode="after")
    def _hooks_are_configured(self) -> SpotSettings:
        for name, hook in (("spot_default_hook", self.spot_default_hook), ("spot_resume_hook", self.spot_resume_hook)):
            if hook not in self.spot_hooks:
                raise ValueError(f"{name} {hook!r} is not in spot_hooks {list(self.spot_hooks)}")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SpotSettings:
        return load_settings(cls, environ, {})


def spot_env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in SpotSettings.model_fields]
