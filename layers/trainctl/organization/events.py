"""The organization run's two requests, parsed at the edge: the plan's trigger, and one Distributed Map item."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainctl.core.events import InvalidEvent

# Shapes only: an event's text is never pasted into a message line. pydantic's regex engine has no \Z, and its
# `$` is the end of the text (a trailing newline does not pass).
_ACCOUNT = r"^\d{12}$"
_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"


class OrganizationPlanRequest(BaseModel):
    """What the organization run's schedule sends: at most a request for less (a dry-run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["organization_plan"] = "organization_plan"
    dry_run: bool | None = None


class OrganizationItem(BaseModel):
    """One child of the Distributed Map: one account in one region, and whether the plan made it a dry-run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(pattern=_ACCOUNT)
    region: str = Field(pattern=_REGION)
    dry_run: bool = True


def _problems(function: str, exc: ValidationError) -> InvalidEvent:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())
    return InvalidEvent(f"{function} refused the event: {problems}")


def parse_plan_request(event: object) -> OrganizationPlanRequest:
    if not isinstance(event, dict):
        raise InvalidEvent(f"organization_plan expects a JSON object, got {type(event).__name__}")
    try:
        return OrganizationPlanRequest.model_validate(event)
    except ValidationError as exc:
        raise _problems("organization_plan", exc) from exc


def parse_item(event: object) -> OrganizationItem:
    if not isinstance(event, dict):
        raise InvalidEvent(f"organization_sweep expects a JSON object, got {type(event).__name__}")
    try:
        return OrganizationItem.model_validate(event)
    except ValidationError as exc:
        raise _problems("organization_sweep", exc) from exc
