"""Idle evidence from CloudWatch: CPU, network and (CloudWatch agent) GPU, in batched GetMetricData calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import access_error
from trainctl.core.errors import AwsAccessError
from trainctl.core.observations import Utilisation
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

PERMISSIONS = needs("cloudwatch:GetMetricData")

MAX_QUERIES_PER_CALL = 500
CONCURRENT_CALLS = 4
PERIOD_SECONDS = 300
# The agent must publish this metric with an InstanceId dimension (append_dimensions in its config).
GPU_NAMESPACE = "CWAgent"
GPU_METRIC = "nvidia_smi_utilization_gpu"

_QUERIES: tuple[tuple[str, str, str, str], ...] = (
    ("cpu", "AWS/EC2", "CPUUtilization", "Maximum"),
    ("netin", "AWS/EC2", "NetworkIn", "Sum"),
    ("netout", "AWS/EC2", "NetworkOut", "Sum"),
    ("gpu", GPU_NAMESPACE, GPU_METRIC, "Maximum"),
)


def _query(index: int, instance_id: str, kind: str, namespace: str, metric: str, stat: str) -> dict[str, Any]:
    return {
        "Id": f"q{index}_{kind}",
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            },
            "Period": PERIOD_SECONDS,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def read_utilisation(
    cloudwatch: CloudWatchClient, instance_ids: Sequence[str], window: timedelta, now: datetime
) -> dict[str, Utilisation]:
    """Peak CPU and GPU percent and peak network bytes/s per instance over the window."""
    per_call = MAX_QUERIES_PER_CALL // len(_QUERIES)

    def read_batch(start: int) -> dict[str, dict[str, float]]:
        batch = instance_ids[start : start + per_call]
        queries = [
            _query(start + offset, instance_id, kind, namespace, metric, stat)
            for offset, instance_id in enumerate(batch)
            for kind, namespace, metric, stat in _QUERIES
        ]
        found: dict[str, dict[str, float]] = {}
        try:
            pages = cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries,  # type: ignore[arg-type]
                StartTime=now - window,
                EndTime=now,
            )
            for page in pages:
                for result in page.get("MetricDataResults", []):
                    values = result.get("Values", [])
                    if not values:
                        continue
                    index_text, kind = result["Id"][1:].split("_", 1)
                    instance_peaks = found.setdefault(instance_ids[int(index_text)], {})
                    instance_peaks[kind] = max(instance_peaks.get(kind, float("-inf")), *values)
        except ClientError as exc:
            raise access_error("GetMetricData", exc) from exc
        return found

    peaks: dict[str, dict[str, float]] = {instance_id: {} for instance_id in instance_ids}
    # Batches are independent: a few in flight at once (GetMetricData allows 50 a second).
    with ThreadPoolExecutor(max_workers=CONCURRENT_CALLS) as pool:
        for batch_peaks in pool.map(read_batch, range(0, len(instance_ids), per_call)):
            for instance_id, kinds in batch_peaks.items():
                peaks[instance_id].update(kinds)
    usage: dict[str, Utilisation] = {}
    for instance_id, found in peaks.items():
        network = None
        if "netin" in found or "netout" in found:
            network = (found.get("netin", 0.0) + found.get("netout", 0.0)) / PERIOD_SECONDS
        usage[instance_id] = Utilisation(
            cpu_percent=found.get("cpu"),
            network_bytes_per_second=network,
            gpu_percent=found.get("gpu"),
        )
    return usage


# EBS publishes a volume's metrics only while it is attached to an instance: any datapoint means it was attached.
_EBS_ACTIVITY: tuple[tuple[str, str], ...] = (
    ("idle", "VolumeIdleTime"),
    ("reads", "VolumeReadOps"),
    ("writes", "VolumeWriteOps"),
)


def volumes_attached_since(
    cloudwatch: CloudWatchClient, since: Mapping[str, datetime], now: datetime
) -> dict[str, datetime]:
    """The volumes EBS reported any datapoint for since their given instant, each with its earliest datapoint.

    CloudTrail may not have told trainctl of an attach yet: EBS's own metrics say so without it.
    """
    volume_ids = list(since)
    per_call = MAX_QUERIES_PER_CALL // len(_EBS_ACTIVITY)
    attached: dict[str, datetime] = {}
    for start in range(0, len(volume_ids), per_call):
        batch = volume_ids[start : start + per_call]
        queries = [
            {
                "Id": f"v{start + offset}_{kind}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/EBS",
                        "MetricName": metric,
                        "Dimensions": [{"Name": "VolumeId", "Value": volume_id}],
                    },
                    "Period": PERIOD_SECONDS,
                    "Stat": "SampleCount",
                },
                "ReturnData": True,
            }
            for offset, volume_id in enumerate(batch)
            for kind, metric in _EBS_ACTIVITY
        ]
        # A datapoint stands for the period that starts at its timestamp: one overlapping the instant counts.
        earliest = min(since[v] for v in batch) - timedelta(seconds=PERIOD_SECONDS)
        try:
            pages = cloudwatch.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries,  # type: ignore[arg-type]
                StartTime=earliest,
                EndTime=now,
            )
            for page in pages:
                for result in page.get("MetricDataResults", []):
                    if result.get("StatusCode") in ("InternalError", "Forbidden"):
                        # A query CloudWatch could not answer is no evidence the volume stayed detached.
                        raise AwsAccessError("GetMetricData", str(result["StatusCode"]), "an EBS query failed")
                    volume_id = volume_ids[int(result["Id"][1:].split("_", 1)[0])]
                    period = timedelta(seconds=PERIOD_SECONDS)
                    seen = [t for t in result.get("Timestamps", []) if t + period > since[volume_id]]
                    if seen:
                        attached[volume_id] = min([*seen, attached.get(volume_id, min(seen))])
        except ClientError as exc:
            raise access_error("GetMetricData", exc) from exc
    return attached
