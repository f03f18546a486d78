"""The organization run's two requests, parsed at the edge: the plan's trigger, and one Distributed Map item."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainctl.core.events import InvalidEvent

# Shapes only: an event's text is never pasted into a message line. pydantic's regex engine has no \Z, and its
# `$` is the end of the text (a trailing newline does not pass).
_ACCOUNT = r"^\d{12}$"
_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
# A cost run's id, which the plan makes (uuid4's hex): its children's results are kept under it.
_RUN = r"^[0-9a-f]{32}$"


class OrganizationPlanRequest(BaseModel):
    """What the organization run's schedule sends: at most a request for less (a dry-run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["organization_plan"] = "organization_plan"
    dry_run: bool | None = None
    # The sweep (one item per account and region) or the cost check (one item per account, all its regions).
    capability: Literal["sweep", "cost"] = "sweep"


class OrganizationItem(BaseModel):
    """One child of the Distributed Map: one account in one region, and whether the plan made it a dry-run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(pattern=_ACCOUNT)
    region: str = Field(pattern=_REGION)
    dry_run: bool = True


class OrganizationCostItem(BaseModel):
    """One child of the cost run: one account, priced in every covered region, its result kept under the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capability: Literal["cost"]
    account: str = Field(pattern=_ACCOUNT)
    run: str = Field(pattern=_RUN)


class OrganizationCostTotal(BaseModel):
    """The cost run's last step: the plan's accounts, whose children's results it sums and checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["organization_cost_total"]
    run: str = Field(pattern=_RUN)
    covered: tuple[Annotated[str, Field(pattern=_ACCOUNT)], ...]
    excluded: dict[Annotated[str, Field(pattern=_ACCOUNT)], str] = Field(default_factory=dict)


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


def parse_plan_step(event: object) -> OrganizationPlanRequest | OrganizationCostTotal:
    """organization_plan's two steps: the plan, and the cost run's total after its children."""
    if isinstance(event, dict) and event.get("task") == "organization_cost_total":
        try:
            return OrganizationCostTotal.model_validate(event)
        except ValidationError as exc:
            raise _problems("organization_plan", exc) from exc
    return parse_plan_request(event)


def parse_item(event: object) -> OrganizationItem | OrganizationCostItem:
    if not isinstance(event, dict):
        raise InvalidEvent(f"organization_sweep expects a JSON object, got {type(event).__name__}")
    try:
        if "capability" in event:
            return OrganizationCostItem.model_validate(event)
        return OrganizationItem.model_validate(event)
    except ValidationError as exc:
        raise _problems("organization_sweep", exc) from exc
