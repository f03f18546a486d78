"""Event models parsed at the edge of every handler: unknown shapes are refused before anything happens."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d\Z")  # \Z: `$` would let a trailing newline through


def _region_names_only(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    for region in value or ():
        if not _REGION.match(region):
            raise ValueError(f"{region!r} is not a region name")
    return tuple(dict.fromkeys(value)) if value is not None else None  # named twice, swept once


# What Powertools' parse raises for an event that does not fit; anything else is a bug and must surface.
REFUSALS = (ValidationError, InvalidModelTypeError)


class InvalidEvent(ValueError):
    """The event does not have a shape this function accepts; nothing was done."""


class Envelope(EventBridgeModel):
    """EventBridge's envelope, where the fields its documentation lets go absent take their documented default.

    AWS's own documentation examples and `sam local generate-event` leave some out; a first test with them works.
    """

    # "By default, this is set to 0 (zero) in all events." (EventBridge User Guide, Event structure reference)
    version: str = "0"
    # "The service generating the event determines whether to include these ARNs." (the same reference)
    resources: list[str] = Field(default_factory=list)
    # PutEventsRequestEntry.Time: "Defaults to the time the service receives the event when omitted."
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))


class SweepRequest(BaseModel):
    """What the EventBridge Scheduler schedule sends: the target's own input, no envelope."""

    model_config = ConfigDict(defer_build=True, extra="forbid", frozen=True)

    task: Literal["cleanup_sweep"]
    # An event may only ask for less: a dry-run, or fewer regions. Enforcement is a deploy setting.
    dry_run: bool | None = None
    regions: tuple[str, ...] | None = Field(default=None, min_length=1)

    _region_names = field_validator("regions")(_region_names_only)


class ScheduledEvent(Envelope):
    """A schedule's envelope, which runs with the deployment's settings: nothing in it is read.

    Two services send it: an EventBridge rule (`source: aws.events`, `detail: {}`), and an EventBridge Scheduler
    schedule that sets no Input (`source: aws.scheduler`, `detail: "{}"`, a string), as a schedule a person adds
    by hand does. The stack's own schedules set Input: the target's request, without an envelope.
    """

    model_config = ConfigDict(defer_build=True)

    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
    source: Literal["aws.events", "aws.scheduler"]
    # PutEventsRequestEntry.Detail is not required; the reference says detail "can be {}".
    detail: dict[str, Any] = Field(default_factory=dict)

    @field_validator("detail", mode="before")
    @classmethod
    def _scheduler_sends_a_string(cls, value: Any) -> Any:
        # Scheduler's detail is JSON text ("{}"); a rule's is an object. Either way it must be an object.
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
            if not isinstance(value, dict):
                raise ValueError("detail is neither an object nor the JSON text of one")
        return value


def parse_sweep_trigger(event: object) -> SweepRequest:
    if not isinstance(event, dict):
        raise InvalidEvent(f"cleanup_sweep expects a JSON object, got {type(event).__name__}")
    try:
        if "detail-type" in event:
            parse(event=event, model=ScheduledEvent)
            return SweepRequest(task="cleanup_sweep")
        parsed: SweepRequest = parse(event=event, model=SweepRequest)
        return parsed
    except REFUSALS as exc:
        raise InvalidEvent(f"cleanup_sweep refused the event: {exc}") from exc


# EC2's documented instance ids: `i-` and 8 (older) or 17 lowercase hexadecimal characters. Pydantic's patterns
# run on Rust's regex engine, where `$` is the end of the text (no trailing newline slips through).
_INSTANCE_ID = r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$"


class CloudTrailDetail(BaseModel):
    """The parts of an "AWS API Call via CloudTrail" detail that age_guard reads; the rest is ignored."""

    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True, populate_by_name=True)

    event_name: str = Field(alias="eventName", pattern=r"^[A-Za-z]{1,64}$")
    event_source: Literal["ec2.amazonaws.com"] = Field(alias="eventSource")
    event_time: datetime = Field(alias="eventTime")
    aws_region: str = Field(alias="awsRegion", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    user_identity: dict[str, Any] = Field(alias="userIdentity")
    request_parameters: dict[str, Any] | None = Field(default=None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(default=None, alias="responseElements")
    error_code: str | None = Field(default=None, alias="errorCode")
    recipient_account_id: str | None = Field(default=None, alias="recipientAccountId")


class CloudTrailApiCall(Envelope):
    model_config = ConfigDict(defer_build=True)
    detail_type: Literal["AWS API Call via CloudTrail"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: CloudTrailDetail


class StateChangeDetail(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True, populate_by_name=True)

    instance_id: str = Field(alias="instance-id", pattern=_INSTANCE_ID)
    state: Literal["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]


class InstanceStateChange(Envelope):
    model_config = ConfigDict(defer_build=True)
    detail_type: Literal["EC2 Instance State-change Notification"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: StateChangeDetail


def parse_age_guard_event(event: object) -> CloudTrailApiCall | InstanceStateChange:
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
            change: InstanceStateChange = parse(event=event, model=InstanceStateChange)
            return change
        if detail_type == "Scheduled Event":
            parse(event=event, model=ScheduledEvent)
            return CostRequest(task="cost_alerts")
        if detail_type is not None:
            raise InvalidEvent(f"cost_alerts does not handle detail-type {str(detail_type)[:80]!r}")
        request: CostRequest = parse(event=event, model=CostRequest)
        return request
    except REFUSALS as exc:
        raise InvalidEvent(f"cost_alerts refused the event: {exc}") from exc


class SpotWarningDetail(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True, populate_by_name=True)

    instance_id: str = Field(alias="instance-id", pattern=_INSTANCE_ID)
    instance_action: Literal["terminate", "stop", "hibernate"] = Field(alias="instance-action")


class SpotInterruptionWarning(Envelope):
    model_config = ConfigDict(defer_build=True)
    detail_type: Literal["EC2 Spot Instance Interruption Warning"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: SpotWarningDetail


class RebalanceDetail(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True, populate_by_name=True)

    instance_id: str = Field(alias="instance-id", pattern=_INSTANCE_ID)


class RebalanceRecommendation(Envelope):
    model_config = ConfigDict(defer_build=True)
    detail_type: Literal["EC2 Instance Rebalance Recommendation"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: RebalanceDetail


SpotEvent = SpotInterruptionWarning | RebalanceRecommendation | InstanceStateChange
_SPOT_MODELS: dict[str, type[SpotInterruptionWarning] | type[RebalanceRecommendation] | type[InstanceStateChange]] = {
    "EC2 Spot Instance Interruption Warning": SpotInterruptionWarning,
    "EC2 Instance Rebalance Recommendation": RebalanceRecommendation,
    "EC2 Instance State-change Notification": InstanceStateChange,
}


def parse_spot_event(event: object) -> SpotEvent:
    if not isinstance(event, dict):
        raise InvalidEvent(f"spot_interruption expects a JSON object, got {type(event).__name__}")
    model = _SPOT_MODELS.get(str(event.get("detail-type")))
    if model is None:
        raise InvalidEvent(f"spot_interruption does not handle detail-type {str(event.get('detail-type'))[:80]!r}")
    try:
        parsed: SpotEvent = parse(event=event, model=model)
        return parsed
    except REFUSALS as exc:
        raise InvalidEvent(f"spot_interruption refused the event: {exc}") from exc
