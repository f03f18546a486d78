from datetime import UTC, datetime, timedelta

from trainctl.aws.clients import ClientFactory
from trainctl.aws.utilisation import read_utilisation


def put(factory: ClientFactory, namespace: str, metric: str, instance_id: str, value: float, at: datetime) -> None:
    factory.cloudwatch("us-east-1").put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Timestamp": at - timedelta(minutes=m),
                "Value": value,
            }
            for m in (5, 30, 60)
        ],
    )


def test_reads_peaks_of_cpu_network_and_gpu_for_many_instances_in_batches(factory: ClientFactory) -> None:
    now = datetime.now(UTC)
    ids = [f"i-{n:04d}" for n in range(130)]  # more than one GetMetricData call holds (125 instances)
    for instance_id in (ids[0], ids[129]):
        put(factory, "AWS/EC2", "CPUUtilization", instance_id, 3.0, now)
        put(factory, "AWS/EC2", "NetworkIn", instance_id, 3000.0, now)
        put(factory, "AWS/EC2", "NetworkOut", instance_id, 0.0, now)
    put(factory, "CWAgent", "nvidia_smi_utilization_gpu", ids[129], 77.0, now)
    before = factory.calls.by_operation["cloudwatch:GetMetricData"]
    usage = read_utilisation(factory.cloudwatch("us-east-1"), ids, timedelta(hours=2), now)
    assert factory.calls.by_operation["cloudwatch:GetMetricData"] - before == 2
    assert usage[ids[0]].cpu_percent == 3.0
    assert usage[ids[0]].network_bytes_per_second == 10.0
    assert usage[ids[0]].gpu_percent is None
    assert usage[ids[129]].gpu_percent == 77.0
    assert usage[ids[50]].cpu_percent is None  # no evidence is reported as none, not as zero
