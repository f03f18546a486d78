"""The organization plan step's requests, parsed at the edge: the run's trigger, and the cost run's total."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainctl.core.errors import InvalidEvent
from trainctl.organization.events import ACCOUNT, RUN, refusal


class OrganizationPlanRequest(BaseModel):
    """What the organization run's schedule sends: at most a request for less (a dry-run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["organization_plan"] = "organization_plan"
    dry_run: bool | None = None
    # The sweep (one item per account and region) or the cost check (one item per account, all its regions).
    capability: Literal["sweep", "cost"] = "sweep"


class OrganizationCostTotal(BaseModel):
    """The cost run's last step: the plan's accounts, whose children's results it sums and checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["organization_cost_total"]
    run: str = Field(pattern=RUN)
    covered: tuple[Annotated[str, Field(pattern=ACCOUNT)], ...]
    excluded: dict[Annotated[str, Field(pattern=ACCOUNT)], str] = Field(default_factory=dict)


def parse_plan_request(event: object) -> OrganizationPlanRequest:
    if not isinstance(event, dict):
        raise InvalidEvent(f"organization_plan expects a JSON object, got {type(event).__name__}")
    try:
        return OrganizationPlanRequest.model_validate(event)
    except ValidationError as exc:
        raise refusal("organization_plan", exc) from exc


def parse_plan_step(event: object) -> OrganizationPlanRequest | OrganizationCostTotal:
    """organization_plan's two steps: the plan, and the cost run's total after its children."""
    if isinstance(event, dict) and event.get("task") == "organization_cost_total":
        try:
            return OrganizationCostTotal.model_validate(event)
        except ValidationError as exc:
            raise refusal("organization_plan", exc) from exc
    return parse_plan_request(event)
