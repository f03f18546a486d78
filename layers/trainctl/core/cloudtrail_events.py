"""The CloudTrail API calls age_guard parses: the parts of the detail it reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainctl.core.envelopes import Envelope


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
