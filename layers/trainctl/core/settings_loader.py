"""How a TRAINCTL_* variable becomes a typed setting: the loader and the validators every settings model shares."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from trainctl.core.durations import InvalidDuration, parse_duration
from trainctl.core.errors import SettingsError

ENV_PREFIX = "TRAINCTL_"
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")


def duration_value(value: object) -> object:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except InvalidDuration as exc:
            raise ValueError(str(exc)) from exc
    return value


def region_names(value: tuple[str, ...]) -> tuple[str, ...]:
    for region in value:
        if not _REGION.fullmatch(region):
            raise ValueError(f"{region!r} is not a region name such as us-east-1")
    # A region named twice would be swept twice in one run, each sweep acting on the other's reads.
    return tuple(dict.fromkeys(value))


def json_object(what: str) -> Callable[[object], object]:
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


def csv_values(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def describe_validation_error(exc: ValidationError, *, prefix: str, upper: bool = True) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        problems.append(f"{prefix}{field.upper() if upper else field}: {error['msg']} (got {error.get('input')!r})")
    return "invalid setting: " + "; ".join(problems)
