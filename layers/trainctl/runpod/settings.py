"""RunPod's settings: each field is one TRAINCTL_ variable (the key itself is not a setting: see providers.keys)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, field_validator

from trainctl.core.settings_loader import ENV_PREFIX, csv_values, load_settings

# RunPod's own REST API v2; the documentation serves it from https://api.runpod.io under /v2.
DEFAULT_API_URL = "https://api.runpod.io/v2"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class RunpodSettings(BaseModel):
    """Where RunPod's API is, what of the account is in trainctl's scope, and how a pod's name says its owner."""

    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    runpod_api_url: str = DEFAULT_API_URL
    # Neither pods nor network volumes have tags: scope is a name prefix or explicit ids; unset means nothing.
    runpod_name_prefix: str | None = None
    runpod_ids: tuple[str, ...] = ()
    # A regular expression with a named group `owner`, searched in the name, e.g. ^train-(?P<owner>[a-z]+)-
    runpod_owner_pattern: str | None = None
    # The Secrets Manager secret that holds the API key (its name or ARN); the key is never a setting.
    runpod_key_secret: str | None = None
    # No longer read: trainctl reads the serverless endpoints and what they mount. Still accepted, so that a
    # deployment that set it keeps loading; it never lets a volume an endpoint might mount be deleted.
    runpod_no_endpoints: bool = False

    _lists = field_validator("runpod_ids", mode="before")(csv_values)

    @field_validator("runpod_api_url")
    @classmethod
    def _https_or_loopback(cls, value: str) -> str:
        # The key travels in a header: only over TLS, or to an emulator on this machine.
        loopback = value.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:"))
        if not (value.startswith("https://") or loopback):
            raise ValueError("must be an https:// URL (or http:// on a loopback address, for an emulator)")
        return value.rstrip("/")

    @field_validator("runpod_ids")
    @classmethod
    def _ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for one in value:
            if not _ID.match(one):
                raise ValueError(f"{one!r} is not a RunPod id (letters, digits, _ and - only)")
        return value

    @field_validator("runpod_owner_pattern")
    @classmethod
    def _owner_group(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a regular expression: {exc}") from exc
        if "owner" not in compiled.groupindex:
            raise ValueError("needs a named group `owner`, e.g. ^train-(?P<owner>[a-z]+)-")
        return value

    @property
    def scoped(self) -> bool:
        """Whether anything of RunPod is in scope at all."""
        return bool(self.runpod_name_prefix) or bool(self.runpod_ids)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: object) -> RunpodSettings:
        """Read TRAINCTL_RUNPOD_* variables; an invalid one raises SettingsError naming it."""
        return load_settings(cls, environ, overrides)


def runpod_env_names() -> list[str]:
    return [ENV_PREFIX + name.upper() for name in RunpodSettings.model_fields]
