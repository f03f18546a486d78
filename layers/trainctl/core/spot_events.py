"""The spot warnings and rebalance recommendations spot_interruption parses, beside instance state changes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trainctl.core.envelopes import INSTANCE_ID_PATTERN, Envelope, InstanceStateChange


class SpotWarningDetail(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True, populate_by_name=True)

    instance_id: str = Field(alias="instance-id", pattern=INSTANCE_ID_PATTERN)
    instance_action: Literal["terminate", "stop", "hibernate"] = Field(alias="instance-action")


class SpotInterruptionWarning(Envelope):
    model_config = ConfigDict(defer_build=True)
    detail_type: Literal["EC2 Spot Instance Interruption Warning"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: SpotWarningDetail


class RebalanceDetail(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="ignore", frozen=True, populate_by_name=True)

    instance_id: str = Field(alias="instance-id", pattern=INSTANCE_ID_PATTERN)


class RebalanceRecommendation(Envelope):
    model_config = ConfigDict(defer_build=True)
    detail_type: Literal["EC2 Instance Rebalance Recommendation"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: RebalanceDetail


SpotEvent = SpotInterruptionWarning | RebalanceRecommendation | InstanceStateChange
BY_DETAIL_TYPE: dict[str, type[SpotInterruptionWarning] | type[RebalanceRecommendation] | type[InstanceStateChange]] = {
    "EC2 Spot Instance Interruption Warning": SpotInterruptionWarning,
    "EC2 Instance Rebalance Recommendation": RebalanceRecommendation,
    "EC2 Instance State-change Notification": InstanceStateChange,
}
