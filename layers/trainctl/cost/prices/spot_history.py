"""Spot prices per zone from DescribeSpotPriceHistory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from trainctl.core.clock import ensure_utc, format_instant
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

from trainctl.cost.prices.model import Price, PriceNotFound, SpotKey

PERMISSIONS = needs("ec2:DescribeSpotPriceHistory")


class SpotPriceHistory:
    def __init__(self, ec2_for_region: Callable[[str], EC2Client]) -> None:
        self._ec2_for_region = ec2_for_region

    def price(self, key: SpotKey, at: datetime) -> Price:
        response = self._ec2_for_region(key.region).describe_spot_price_history(
            InstanceTypes=[key.instance_type],  # type: ignore[list-item]
            AvailabilityZone=key.availability_zone,
            ProductDescriptions=["Linux/UNIX"],
            StartTime=at,
            EndTime=at,
        )
        history = [
            h
            for h in response.get("SpotPriceHistory", [])
            if h.get("AvailabilityZone") == key.availability_zone and h.get("InstanceType") == key.instance_type
        ]
        if not history:
            raise PriceNotFound(f"no spot price history for {key.instance_type} in {key.availability_zone}")
        newest = max(history, key=lambda h: ensure_utc(h["Timestamp"]))
        return Price.flat(
            float(newest["SpotPrice"]), "hour", "spot-price-history", format_instant(ensure_utc(newest["Timestamp"]))
        )


# ---------------------------------------------------------------------------------------------------- the chain
