"""Typed, frozen settings, loaded once from TRAINCTL_* variables (the CLI and the Lambdas share them)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trainctl.core import tags
from trainctl.core.durations import InvalidDuration, parse_duration
from trainctl.core.errors import SettingsError
from trainctl.core.paths import is_absolute_path, split_s3_uri

ENV_PREFIX = "TRAINCTL_"
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
_PATTERN = re.compile(r"[A-Za-z0-9_.\-/ ]{1,64}")


def _duration(value: object) -> object:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except InvalidDuration as exc:
            raise ValueError(str(exc)) from exc
    return value


def _region_names(value: tuple[str, ...]) -> tuple[str, ...]:
    for region in value:
        if not _REGION.fullmatch(region):
            raise ValueError(f"{region!r} is not a region name such as us-east-1")
    # A region named twice would be swept twice in one run, each sweep acting on the other's reads.
    return tuple(dict.fromkeys(value))


def _json_object(what: str) -> Callable[[object], object]:
    """A validator that reads a JSON object from a variable's text, saying what it should map."""

    def parse(value: object) -> object:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"must be a JSON object of {what}: {exc}") from exc
            if not isinstance(value, dict):
                raise ValueError(f"must be a JSON object of {what}")
        return value

    return parse


M = TypeVar("M", bound=BaseModel)


def load_settings(model: type[M], environ: Mapping[str, str], overrides: Mapping[str, object]) -> M:
    """Read TRAINCTL_<FIELD> variables (empty ones are unset), then overrides; invalid -> SettingsError, named."""
    values: dict[str, object] = {
        name: environ[ENV_PREFIX + name.upper()]
        for name in model.model_fields
        if environ.get(ENV_PREFIX + name.upper(), "") != ""
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, prefix=ENV_PREFIX)) from exc


def _csv(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


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
    )(_duration)
    _lists = field_validator("regions", "training_process_patterns", mode="before")(_csv)

    _known_region_shape = field_validator("regions")(_region_names)

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


def describe_validation_error(exc: ValidationError, *, prefix: str, upper: bool = True) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        problems.append(f"{prefix}{field.upper() if upper else field}: {error['msg']} (got {error.get('input')!r})")
    return "invalid setting: " + "; ".join(problems)


def env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in SweepSettings.model_fields]


class AgeGuardSettings(BaseModel):
    """What age_guard needs: where it may stamp, and the owner and scope rules."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    regions: tuple[str, ...] = Field(default=("us-east-1",), min_length=1)
    account_id: str | None = Field(default=None, pattern=r"^\d{12}$")
    scope_tag: str = tags.MANAGED
    # JSON object: principal ARN glob -> owner, e.g. {"arn:aws:iam::*:role/MLTeam*": "ml-team"}.
    owner_map: dict[str, str] = Field(default_factory=dict)
    scope_principals: tuple[str, ...] = ()
    scope_launch_templates: tuple[str, ...] = ()
    scope_from_tag: str | None = Field(default=None, pattern=r"^[^=]{1,128}=[^=]{0,256}$")
    # Where a use between two sweeps is recorded, so that no sweep acts on the mark it made void.
    ledger_table: str = "trainctl-ledger"

    _lists = field_validator("regions", "scope_principals", "scope_launch_templates", mode="before")(_csv)
    _known_region_shape = field_validator("regions")(_region_names)

    _owner_map_json = field_validator("owner_map", mode="before")(_json_object("pattern to owner"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AgeGuardSettings:
        return load_settings(cls, environ, {})


def age_guard_env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in AgeGuardSettings.model_fields]


class OwnerThresholds(BaseModel):
    """Thresholds for one owner's resources; a missing one is not checked for that owner."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    hourly_usd: float | None = Field(default=None, gt=0)
    daily_usd: float | None = Field(default=None, gt=0)


class CostSettings(BaseModel):
    """What cost_alerts needs: thresholds, alert pacing and the price chain."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    regions: tuple[str, ...] = Field(default=("us-east-1",), min_length=1)
    hourly_threshold_usd: float = Field(default=50.0, gt=0)
    daily_threshold_usd: float = Field(default=100.0, gt=0)
    resource_threshold_usd: float = Field(default=500.0, gt=0)
    # JSON object: owner (the trainctl:owner tag) -> {"hourly_usd": .., "daily_usd": ..}; "*" is every owner.
    owner_thresholds: dict[str, OwnerThresholds] = Field(default_factory=dict)
    alert_cooldown: timedelta = timedelta(hours=6)
    # Within the cooldown a breach is repeated only once it has grown by this fraction.
    alert_growth: float = Field(default=0.25, ge=0)
    top_offenders: int = Field(default=5, ge=1, le=50)
    price_table: str = "trainctl-prices"
    list_price_ttl: timedelta = timedelta(days=7)
    spot_price_ttl: timedelta = timedelta(hours=1)
    # An alternative price file (same format as the shipped one); unreadable is an error at start.
    price_file: str | None = None
    pricing_region: str = "us-east-1"
    pricing_requests_per_second: float = Field(default=5.0, gt=0, le=5.0)
    ledger_table: str = "trainctl-ledger"
    topic_arn: str | None = None

    _durations = field_validator("alert_cooldown", "list_price_ttl", "spot_price_ttl", mode="before")(_duration)
    _lists = field_validator("regions", mode="before")(_csv)
    _known_region_shape = field_validator("regions")(_region_names)

    _thresholds_json = field_validator("owner_thresholds", mode="before")(_json_object("owner to thresholds"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> CostSettings:
        return load_settings(cls, environ, overrides)

    def owner_limits(self, owner: str) -> OwnerThresholds | None:
        return self.owner_thresholds.get(owner) or self.owner_thresholds.get("*")


def cost_env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in CostSettings.model_fields]


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

    _durations = field_validator("spot_checkpoint_wait", "spot_event_delivery_lag", mode="before")(_duration)
    _lists = field_validator("regions", "spot_hooks", mode="before")(_csv)
    _known_region_shape = field_validator("regions")(_region_names)

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
