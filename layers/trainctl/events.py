"""Event models parsed at the edge of every handler: unknown shapes are refused before anything happens."""

from __future__ import annotations

import re
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class InvalidEvent(ValueError):
    """The event does not have a shape this function accepts; nothing was done."""


class SweepRequest(BaseModel):
    """What the EventBridge Scheduler schedule sends: the target's own input, no envelope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["cleanup_sweep"]
    # An event may only ask for less: a dry-run, or fewer regions. Enforcement is a deploy setting.
    dry_run: bool | None = None
    regions: tuple[str, ...] | None = Field(default=None, min_length=1)

    @field_validator("regions")
    @classmethod
    def _region_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for region in value or ():
            if not _REGION.match(region):
                raise ValueError(f"{region!r} is not a region name")
        return value


class ScheduledEvent(EventBridgeModel):
    """The classic EventBridge rule envelope, for deployments that schedule with a rule."""

    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    source: Literal["aws.events"]
    detail: dict[str, Any]


_SWEEP_TRIGGER: TypeAdapter[SweepRequest | ScheduledEvent] = TypeAdapter(SweepRequest | ScheduledEvent)


def parse_sweep_trigger(event: object) -> SweepRequest:
    if not isinstance(event, dict):
        raise InvalidEvent(f"cleanup_sweep expects a JSON object, got {type(event).__name__}")
    try:
        if "detail-type" in event:
            parse(event=event, model=ScheduledEvent)
            return SweepRequest(task="cleanup_sweep")
        parsed: SweepRequest = parse(event=event, model=SweepRequest)
        return parsed
    except ValidationError as exc:
        raise InvalidEvent(f"cleanup_sweep refused the event: {exc}") from exc
    except Exception as exc:  # Powertools wraps pydantic's error in its own
        raise InvalidEvent(f"cleanup_sweep refused the event: {exc}") from exc
