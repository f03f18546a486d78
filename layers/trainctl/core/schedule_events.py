"""A schedule's envelope: only a schedule a person adds by hand sends one.

Apart from trainctl.core.envelopes so that no handler builds it at import: the stack's own schedules send the
target's request without an envelope, so a handler meets this model only on the call that brings one.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from trainctl.core.envelopes import Envelope


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
