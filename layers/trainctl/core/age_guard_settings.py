"""age_guard's settings: where it may stamp, and the owner and scope rules."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainctl.core import tags
from trainctl.core.settings_loader import ENV_PREFIX, csv_values, json_object, load_settings, region_names


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

    _lists = field_validator("regions", "scope_principals", "scope_launch_templates", mode="before")(csv_values)
    _known_region_shape = field_validator("regions")(region_names)

    _owner_map_json = field_validator("owner_map", mode="before")(json_object("pattern to owner"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AgeGuardSettings:
        return load_settings(cls, environ, {})


def age_guard_env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in AgeGuardSettings.model_fields]
