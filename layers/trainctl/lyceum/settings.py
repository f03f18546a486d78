"""Lyceum's settings: where its API is, what is in scope, and how an owner is read from a VM's name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainctl.core.settings_loader import csv_values, duration_value, load_settings

# Lyceum's published base URL for every external API call.
DEFAULT_API_URL = "https://api.lyceum.technology/api/v2/external"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class LyceumSettings(BaseModel):
    """TRAINCTL_LYCEUM_*: unset prefix and no ids mean nothing of Lyceum's is in scope."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    lyceum_api_url: str = DEFAULT_API_URL
    # A VM (or a run's file name) starting with this is in scope; None: only the listed ids are.
    lyceum_name_prefix: str | None = Field(default=None, min_length=1, max_length=128)
    # VM and run ids in scope whatever their names, comma-separated.
    lyceum_ids: tuple[str, ...] = ()
    # A regular expression with a named group `owner`, searched in a VM's name: "^team-(?P<owner>[a-z]+)-".
    lyceum_owner_pattern: re.Pattern[str] | None = None
    # A VM older than this (from its created_at) is marked, then terminated after the grace period; unset: no ttl.
    lyceum_vm_ttl: timedelta | None = None
    # A run longer than this (from its submission) is marked, then aborted after the grace period; unset: no cap.
    lyceum_run_max_wall_clock: timedelta | None = None
    # Cost alerts when the organisation's remaining credits (GET /billing/credits) fall under this; unset: none.
    lyceum_min_credits: float | None = Field(default=None, ge=0)
    # The Secrets Manager secret that holds the API key (its name or ARN); the key is never a setting.
    lyceum_key_secret: str | None = None

    _lists = field_validator("lyceum_ids", mode="before")(csv_values)
    _durations = field_validator("lyceum_vm_ttl", "lyceum_run_max_wall_clock", mode="before")(duration_value)

    @field_validator("lyceum_vm_ttl", "lyceum_run_max_wall_clock")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("lyceum_api_url")
    @classmethod
    def _https_or_loopback(cls, value: str) -> str:
        # The key travels in a header: never in clear text beyond this machine.
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and parts.hostname in _LOOPBACK:
            return value
        raise ValueError("must be an https:// URL (http:// only on the loopback, for the emulator)")

    @field_validator("lyceum_ids")
    @classmethod
    def _ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not _ID.match(item):
                raise ValueError("ids are letters, digits, _ and - only")
        return value

    @field_validator("lyceum_owner_pattern", mode="before")
    @classmethod
    def _owner_group(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                value = re.compile(value)
            except re.error as exc:
                raise ValueError(f"is not a regular expression ({exc})") from None
        if isinstance(value, re.Pattern) and "owner" not in value.groupindex:
            raise ValueError("needs a named group `owner`, as in ^team-(?P<owner>[a-z]+)-")
        return value

    @property
    def configured(self) -> bool:
        """Whether anything of Lyceum's can be in scope at all."""
        return self.lyceum_name_prefix is not None or bool(self.lyceum_ids)


def load_lyceum_settings(environ: Mapping[str, str], **overrides: object) -> LyceumSettings:
    return load_settings(LyceumSettings, environ, overrides)
