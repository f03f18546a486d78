"""The organization run's settings: which accounts and regions the hub covers, and how it reaches them.

Each field is one TRAINCTL_ variable. A single-account deployment leaves TRAINCTL_ORG_UNITS unset and is what it
always was; the organization mode is these settings, not a second product.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainctl.core.settings_loader import ENV_PREFIX, csv_values, load_settings, region_names
from trainctl.core.sweep_settings import SweepSettings

ACCOUNT_ID = re.compile(r"\d{12}")
# Organizations' own pattern for an OU id: ou-, the root's 4-32 characters, -, then 8-32 more.
UNIT_ID = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}")
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}")
# Gentle on EC2's per-account request buckets: children of one account's regions share no bucket, but a hub
# that sweeps many accounts at once should not look like a flood to anyone.
DEFAULT_CONCURRENCY = 10


def account_ids(value: tuple[str, ...]) -> tuple[str, ...]:
    for account in value:
        if not ACCOUNT_ID.fullmatch(account):
            # The shape only, never the value: a setting's text is not pasted into a message line.
            raise ValueError("each account id must be exactly 12 digits, such as 123456789012")
    return tuple(dict.fromkeys(value))


def unit_ids(value: tuple[str, ...]) -> tuple[str, ...]:
    for unit in value:
        if not UNIT_ID.fullmatch(unit):
            raise ValueError("each organizational unit id must look like ou-ab12-cd34ef56")
    return tuple(dict.fromkeys(value))


class OrganizationSettings(BaseModel):
    """Opt-in by organizational unit, a hub-side deny-list, and enforcement switched on by unit or by account."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    # The covered organizational units: their accounts, and those of every unit below them, are swept.
    org_units: tuple[str, ...] = ()
    # Never swept, whatever the units say: the hub's deny-list, honoured even against a misconfigured unit list.
    org_exclude_accounts: tuple[str, ...] = ()
    # Swept although outside the covered units, such as the management account, where StackSets never deploy.
    org_include_accounts: tuple[str, ...] = ()
    # The regions swept in every covered account; empty means TRAINCTL_REGIONS.
    org_regions: tuple[str, ...] = ()
    # The role each spoke holds for the hub (the StackSet creates it); the hub assumes it by this name.
    org_spoke_role: str = "trainctl-spoke"
    # Enforcement per unit (and every unit below it) or per account; every other account stays dry-run.
    org_enforce_units: tuple[str, ...] = ()
    org_enforce_accounts: tuple[str, ...] = ()
    # How many account-regions the Distributed Map sweeps at once.
    org_max_concurrency: int = Field(default=DEFAULT_CONCURRENCY, ge=1, le=1000)
    # The organization's cost run: each account's burn against its own thresholds (unset: the single account's
    # TRAINCTL_HOURLY_THRESHOLD_USD and TRAINCTL_DAILY_THRESHOLD_USD), and the whole organization's (unset: unchecked).
    org_account_hourly_usd: float | None = Field(default=None, gt=0)
    org_account_daily_usd: float | None = Field(default=None, gt=0)
    org_hourly_usd: float | None = Field(default=None, gt=0)
    org_daily_usd: float | None = Field(default=None, gt=0)

    _lists = field_validator(
        "org_units",
        "org_exclude_accounts",
        "org_include_accounts",
        "org_regions",
        "org_enforce_units",
        "org_enforce_accounts",
        mode="before",
    )(csv_values)
    _accounts = field_validator("org_exclude_accounts", "org_include_accounts", "org_enforce_accounts")(account_ids)
    _units = field_validator("org_units", "org_enforce_units")(unit_ids)
    _regions = field_validator("org_regions")(region_names)

    @field_validator("org_spoke_role")
    @classmethod
    def _role_name(cls, value: str) -> str:
        if not ROLE_NAME.fullmatch(value):
            raise ValueError("must be an IAM role name: up to 64 letters, digits and +=,.@_-")
        return value

    @property
    def enabled(self) -> bool:
        """Whether this deployment covers an organization at all."""
        return bool(self.org_units) or bool(self.org_include_accounts)

    def regions_or(self, fallback: tuple[str, ...]) -> tuple[str, ...]:
        return self.org_regions or fallback

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> OrganizationSettings:
        """Read TRAINCTL_ORG_* variables; an invalid one raises SettingsError naming it."""
        return load_settings(cls, environ, overrides)


def hub_settings(environ: Mapping[str, str]) -> tuple[OrganizationSettings, SweepSettings]:
    """What the organization's functions run by: the accounts and regions covered, and the sweep's own settings."""
    return OrganizationSettings.from_env(environ), SweepSettings.from_env(environ)


def organization_env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in OrganizationSettings.model_fields]
