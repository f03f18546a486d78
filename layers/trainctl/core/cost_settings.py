"""cost_alerts' settings: thresholds, alert pacing and the price chain."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainctl.core.settings_loader import (
    ENV_PREFIX,
    csv_values,
    duration_value,
    json_object,
    load_settings,
    region_names,
)


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
    # Set by the stack: the providers whose own functions record their burn for this check (providers.burn).
    recorded_providers: tuple[Literal["runpod", "lyceum"], ...] = ()
    # A provider's recorded burn older than this is unknown, named, never $0.
    provider_burn_max_age: timedelta = timedelta(minutes=45)

    _durations = field_validator(
        "alert_cooldown", "list_price_ttl", "spot_price_ttl", "provider_burn_max_age", mode="before"
    )(duration_value)
    _lists = field_validator("regions", "recorded_providers", mode="before")(csv_values)
    _known_region_shape = field_validator("regions")(region_names)

    _thresholds_json = field_validator("owner_thresholds", mode="before")(json_object("owner to thresholds"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> CostSettings:
        return load_settings(cls, environ, overrides)

    def owner_limits(self, owner: str) -> OwnerThresholds | None:
        return self.owner_thresholds.get(owner) or self.owner_thresholds.get("*")


def cost_env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in CostSettings.model_fields]
