"""The providers' published storage prices, dated and sourced, as the AWS price file keeps its figures.

Only what a provider's own documentation states is here; what it does not publish is listed as a gap, never
guessed. A pod's or VM's hourly price is not here: RunPod's API reports it per pod (`cost`), and Lyceum publishes
no price per hardware profile.
"""

from __future__ import annotations

from dataclasses import dataclass

# Read on this date from the source named with each figure.
AS_OF = "2026-12-06"
RUNPOD_BILLING_URL = "https://docs.runpod.io/get-started/billing-information"
RUNPOD_STORAGE_URL = "https://docs.runpod.io/pods/storage"


@dataclass(frozen=True, slots=True)
class PublishedPrice:
    """One published figure: USD per unit, where it was read and when."""

    usd: float
    unit: str
    source: str
    as_of: str = AS_OF


# "For storage below 1TB, you'll pay $0.07 per GB per month. Above 1TB, the rate drops to $0.05 per GB per month."
RUNPOD_NETWORK_VOLUME = PublishedPrice(0.07, "GB-month", RUNPOD_BILLING_URL)
RUNPOD_NETWORK_VOLUME_OVER_1_TB = PublishedPrice(0.05, "GB-month", RUNPOD_BILLING_URL)
# RunPod sizes volumes in GB; the page's 1 TB is read as 1,000 GB.
RUNPOD_NETWORK_VOLUME_TIER_GB = 1000
# "stopped Pods are charged $0.20 per GB per month for volume storage" (twice the running rate of $0.10).
RUNPOD_STOPPED_VOLUME_DISK = PublishedPrice(0.20, "GB-month", RUNPOD_BILLING_URL)

# What the documentation leaves open, said wherever it matters.
RUNPOD_TIER_GAP = (
    "RunPod's page does not say whether the lower rate above 1 TB applies to the whole volume or only to the GB "
    "above it; trainctl charges the first 1,000 GB at the higher rate, an upper bound"
)
RUNPOD_STOPPED_DISK_GAP = (
    "RunPod bills a stopped pod's volume disk at $0.20 per GB-month, but the pod answer trainctl reads gives no "
    "volume disk size"
)
LYCEUM_PRICE_GAP = "Lyceum publishes no hourly price per hardware profile, and its `billed` field names no unit"
