"""One child of the organization run, parsed at the edge: a Distributed Map item (sweep or cost).

The plan step's own requests are in trainctl.organization.plan_events: neither function builds the other's models
at its cold start. The shapes and the refusal both use are here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, model_validator

from trainctl.core.errors import InvalidEvent

# Shapes only: an event's text is never pasted into a message line. pydantic's regex engine has no \Z, and its
# `$` is the end of the text (a trailing newline does not pass).
ACCOUNT = r"^\d{12}$"
_REGION = r"^[a-z]{2}(-[a-z]+)+-\d$"
# A cost run's id, which the plan makes (uuid4's hex): its children's results are kept under it.
RUN = r"^[0-9a-f]{32}$"


class OrganizationItem(BaseModel):
    """One child of the Distributed Map: one account in one region, and whether the plan made it a dry-run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(pattern=ACCOUNT)
    region: str = Field(pattern=_REGION)
    dry_run: StrictBool = True  # "false" as text is not the plan's word
    # Only the plan's own reasons: the child names it in its summary and the account's record.
    why_dry_run: Literal["first-sweep", "deployment-dry-run", "not-enforced"] | None = None

    @model_validator(mode="after")
    def _a_reason_only_for_a_dry_run(self) -> OrganizationItem:
        if self.why_dry_run is not None and not self.dry_run:
            raise ValueError("why_dry_run is given for an item that is not a dry-run")
        return self


class OrganizationCostItem(BaseModel):
    """One child of the cost run: one account, priced in every covered region, its result kept under the run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capability: Literal["cost"]
    account: str = Field(pattern=ACCOUNT)
    run: str = Field(pattern=RUN)


def refusal(function: str, exc: ValidationError) -> InvalidEvent:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in exc.errors())
    return InvalidEvent(f"{function} refused the event: {problems}")


def parse_item(event: object) -> OrganizationItem | OrganizationCostItem:
    if not isinstance(event, dict):
        raise InvalidEvent(f"organization_sweep expects a JSON object, got {type(event).__name__}")
    try:
        if "capability" in event:
            return OrganizationCostItem.model_validate(event)
        return OrganizationItem.model_validate(event)
    except ValidationError as exc:
        raise refusal("organization_sweep", exc) from exc
