"""Event models parsed at the edge of every handler: unknown shapes are refused before anything happens.

The schedules' own requests live here; EventBridge's envelopes live beside it (trainctl.core.envelopes,
schedule_events, cloudtrail_events, spot_events), each loaded by the parser that meets one: a handler imports only
the models of the events it is wired to.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from pydantic import BaseModel, ConfigDict, Field, field_validator

# Re-exported for the handlers that parse here; it lives in errors so that the others build none of these models.
from trainctl.core.errors import InvalidEvent as InvalidEvent  # noqa: PLC0414

if TYPE_CHECKING:
    from trainctl.core.cloudtrail_events import CloudTrailApiCall
    from trainctl.core.envelopes import InstanceStateChange
    from trainctl.core.spot_events import SpotEvent

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d\Z")  # \Z: `$` would let a trailing newline through


def _region_names_only(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    for region in value or ():
        if not _REGION.match(region):
            raise ValueError(f"{region!r} is not a region name")
    return tuple(dict.fromkeys(value)) if value is not None else None  # named twice, swept once


# What Powertools' parse raises for an event that does not fit; anything else is a bug and must surface.
REFUSALS = (ValidationError, InvalidModelTypeError)


class SweepRequest(BaseModel):
    """What the EventBridge Scheduler schedule sends: the target's own input, no envelope."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    task: Literal["cleanup_sweep"]
    # An event may only ask for less: a dry-run, or fewer regions. Enforcement is a deploy setting.
    dry_run: bool | None = None
    regions: tuple[str, ...] | None = Field(default=None, min_length=1)

    _region_names = field_validator("regions")(_region_names_only)


def parse_sweep_trigger(event: object) -> SweepRequest:
    if not isinstance(event, dict):
        raise InvalidEvent(f"cleanup_sweep expects a JSON object, got {type(event).__name__}")
    try:
        if "detail-type" in event:
            # Not in the cold start: only a schedule added by hand sends an envelope, the stack's send the request.
            from trainctl.core.schedule_events import ScheduledEvent

            parse(event=event, model=ScheduledEvent)
            return SweepRequest(task="cleanup_sweep")
        parsed: SweepRequest = parse(event=event, model=SweepRequest)
        return parsed
    except REFUSALS as exc:
        raise InvalidEvent(f"cleanup_sweep refused the event: {exc}") from exc


def parse_age_guard_event(event: object) -> CloudTrailApiCall | InstanceStateChange:
    # Here, not at the top: the other functions' cold start builds no class of age_guard's events.
    from trainctl.core.cloudtrail_events import CloudTrailApiCall
    from trainctl.core.envelopes import InstanceStateChange

    if not isinstance(event, dict):
        raise InvalidEvent(f"age_guard expects a JSON object, got {type(event).__name__}")
    detail_type = event.get("detail-type")
    model: type[CloudTrailApiCall] | type[InstanceStateChange]
    if detail_type == "AWS API Call via CloudTrail":
        model = CloudTrailApiCall
    elif detail_type == "EC2 Instance State-change Notification":
        model = InstanceStateChange
    else:
        raise InvalidEvent(f"age_guard does not handle detail-type {str(detail_type)[:80]!r}")
    try:
        parsed: CloudTrailApiCall | InstanceStateChange = parse(event=event, model=model)
        return parsed
    except REFUSALS as exc:
        raise InvalidEvent(f"age_guard refused the event: {exc}") from exc


class CostRequest(BaseModel):
    """What the cost schedule sends; an event may narrow the regions, nothing else."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    task: Literal["cost_alerts"]
    regions: tuple[str, ...] | None = Field(default=None, min_length=1)

    _region_names = field_validator("regions")(_region_names_only)


def parse_cost_event(event: object) -> CostRequest | InstanceStateChange:
    """A scheduled check, or an instance state change to record for accumulated cost."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"cost_alerts expects a JSON object, got {type(event).__name__}")
    detail_type = event.get("detail-type")
    try:
        if detail_type == "EC2 Instance State-change Notification":
            # The stack's cost schedule sends its request alone: only a state change needs the envelope (and
            # Powertools' EventBridgeModel under it), built on the first one, not in every cold start.
            from trainctl.core.envelopes import InstanceStateChange

            change: InstanceStateChange = parse(event=event, model=InstanceStateChange)
            return change
        if detail_type == "Scheduled Event":
            # Not in the cold start: only a schedule added by hand sends an envelope, the stack's send the request.
            from trainctl.core.schedule_events import ScheduledEvent

            parse(event=event, model=ScheduledEvent)
            return CostRequest(task="cost_alerts")
        if detail_type is not None:
            raise InvalidEvent(f"cost_alerts does not handle detail-type {str(detail_type)[:80]!r}")
        request: CostRequest = parse(event=event, model=CostRequest)
        return request
    except REFUSALS as exc:
        raise InvalidEvent(f"cost_alerts refused the event: {exc}") from exc


def parse_spot_event(event: object) -> SpotEvent:
    # Here, not at the top: the other functions' cold start builds no class of the spot events.
    from trainctl.core.spot_events import BY_DETAIL_TYPE

    if not isinstance(event, dict):
        raise InvalidEvent(f"spot_interruption expects a JSON object, got {type(event).__name__}")
    model = BY_DETAIL_TYPE.get(str(event.get("detail-type")))
    if model is None:
        raise InvalidEvent(f"spot_interruption does not handle detail-type {str(event.get('detail-type'))[:80]!r}")
    try:
        parsed: SpotEvent = parse(event=event, model=model)
        return parsed
    except REFUSALS as exc:
        raise InvalidEvent(f"spot_interruption refused the event: {exc}") from exc
