"""TRAINCTL_* variables as the command line reads them: every known name, a warning for an unknown one, and all
the settings checked at once where a command depends on them."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import cache

from pydantic import BaseModel

from trainctl.core import settings as settings_module
from trainctl.core.settings import ENV_PREFIX
from trainctl.lyceum.settings import LyceumSettings
from trainctl.organization.settings import OrganizationSettings
from trainctl.runpod.settings import RunpodSettings

# Read outside the settings models: by the command line, by a function's handler, or by the tests.
OTHER_NAMES = {
    "TRAINCTL_OWNER": "the owner tag of volumes made by hand (else $USER)",
    "TRAINCTL_TRANSFER_STAGING_URI": "where `trainctl transfer` stages files between a laptop and an instance",
    "TRAINCTL_DEBUG": "the command line shows the traceback of an unexpected error",
    "TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN": "the pre-warm workers' instance profile (the prewarm_plan function's)",
    "TRAINCTL_TRACE_AWS_CALLS": "trace every AWS call (the functions')",
    "TRAINCTL_TEST_CALLS_OUT": "where the test suite writes the AWS calls each module made",
}


def person(environ: Mapping[str, str]) -> str | None:
    """Who runs the command line, as trainctl:owner names people: TRAINCTL_OWNER, else $USER."""
    return environ.get("TRAINCTL_OWNER") or environ.get("USER") or None


def settings_models() -> list[type[BaseModel]]:
    """Every settings model of trainctl.core.settings: each field is one TRAINCTL_<FIELD> variable."""
    return [
        value
        for value in vars(settings_module).values()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value is not BaseModel
        and callable(getattr(value, "from_env", None))
    ]


@cache
def known_names() -> frozenset[str]:
    # The providers' and the organization's settings live in their rooms, not in trainctl.core.settings.
    models: list[type[BaseModel]] = [*settings_models(), RunpodSettings, LyceumSettings, OrganizationSettings]
    names = {ENV_PREFIX + field.upper() for model in models for field in model.model_fields}
    return frozenset(names | set(OTHER_NAMES))


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per TRAINCTL_* variable nothing reads, naming the nearest known one."""
    warnings = []
    known = sorted(known_names())
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else "; `trainctl --help` and the README list the settings"
        warnings.append(f"{name} is not a trainctl setting and is ignored{hint}")
    return warnings


def check_settings(environ: Mapping[str, str]) -> None:
    """Load every settings model whose variables are set: a malformed one (TRAINCTL_OWNER_MAP that is not a
    JSON object, say) is refused now, by name, rather than ignored by this command and broken in a deploy."""
    for model in settings_models():
        fields = {ENV_PREFIX + field.upper() for field in model.model_fields}
        if any(environ.get(name, "") != "" for name in fields):
            getattr(model, "from_env")(environ)  # noqa: B009 - every model has one; its signature differs
