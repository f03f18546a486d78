"""EventBridge's envelope, and the one several handlers parse: instance state changes.

Apart from trainctl.core.events so that a handler loads only the models of the events it is wired to; a schedule's
envelope lives in trainctl.core.schedule_events, as only a schedule a person adds by hand sends one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field


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
