"""EventBridge's envelope, and the envelopes several handlers parse: schedules and instance state changes.

Apart from trainctl.core.events so that a handler loads only the models of the events it is wired to.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, field_validator


class Envelope(EventBridgeModel):
    """EventBridge's envelope, where the fields its documentation lets go absent take their documented default.

    AWS's own documentation examples and `sam local generate-event` leave some out; a first test with them works.
    """

    # Only its subclasses parse events, each built on its first use: building this one too would be wasted.
    model_config = ConfigDict(defer_build=True)

    # "By default, this is set to 0 (zero) in all events." (EventBridge User Guide, Event structure reference)
    version: str = "0"
    # "The service generating the event determines whether to include these ARNs." (the same reference)
    resources: list[str] = Field(default_factory=list)
    # PutEventsRequestEntry.Time: "Defaults to the time the service receives the event when omitted."
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))


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


# EC2's documented instance ids: `i-` and 8 (older) or 17 lowercase hexadecimal characters. Pydantic's patterns
# run on Rust's regex engine, where `$` is the end of the text (no trailing newline slips through).
INSTANCE_ID_PATTERN = r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$"


class StateChangeDetail(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True, populate_by_name=True)

    instance_id: str = Field(alias="instance-id", pattern=INSTANCE_ID_PATTERN)
    state: Literal["pending", "running", "stopping", "stopped", "shutting-down", "terminated"]


class InstanceStateChange(Envelope):
    model_config = ConfigDict(defer_build=True)
    detail_type: Literal["EC2 Instance State-change Notification"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: StateChangeDetail
