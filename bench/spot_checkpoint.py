"""Spot handler speed: time from the handler's start to the checkpoint command issued, first and warm.

    python -m bench.spot_checkpoint

Each invocation is a warning for a different spot instance (so the idempotency record never short-cuts
it), run in this process against moto, once on bare loopback and once behind the AWS-like endpoint's
per-call latency (bench.aws_like; 50 ms by default, which EC2 and DynamoDB in-region usually beat).
"first" is the first invocation of a freshly imported handler: clients and the idempotency layer are
built then. Before the command the handler makes two calls: the idempotency PutItem and DescribeInstances.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.report import Table

ROOT = Path(__file__).resolve().parents[1]
WARM_RUNS = 30
TARGET_MS = 1000


@contextlib.contextmanager
def _endpoint(moto: str, latency: float) -> Iterator[str]:
    if latency <= 0:
        yield moto
        return
    from bench.aws_like import AwsLike

    with AwsLike(moto, latency=latency, serve_ec2=False) as env:
        yield env.endpoint


def measure(latency: float) -> dict[str, Any]:
    # Before any trainctl import: the shared Logger takes its level when it is built.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from trainctl.aws.clients import ClientFactory
    from trainctl.cli import stack_resources
    from trainctl.cli.local_run import LocalContext, load_handler
    from trainctl.cli.sandbox_fleet import moto_server
    from trainctl.core import tags
    from trainctl.core.clock import format_instant, system_clock

    with moto_server() as moto, _endpoint(moto, latency) as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        factory = ClientFactory()
        resources = stack_resources.ensure_on_emulator(factory, ("us-east-1",))
        instances = factory.ec2("us-east-1").run_instances(
            ImageId="ami-0abcdef1234567890",
            InstanceType="g5.xlarge",
            MinCount=WARM_RUNS + 1,
            MaxCount=WARM_RUNS + 1,
            InstanceMarketOptions={"MarketType": "spot"},
            BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100, "DeleteOnTermination": True}}],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
        )["Instances"]
        os.environ.update(
            {
                "TRAINCTL_REGIONS": "us-east-1",
                "TRAINCTL_TOPIC_ARN": resources.topic_arn,
                "TRAINCTL_SPOT_CHECKPOINT_WAIT": "0s",
            }
        )
        template = json.loads((ROOT / "events" / "spot_interruption" / "warning.json").read_text())
        handler = load_handler("spot_interruption")
        samples: list[float] = []
        for instance in instances:
            event = json.loads(json.dumps(template).replace("i-0000000000000000a", instance["InstanceId"]))
            event["time"] = format_instant(system_clock())
            result = handler.lambda_handler(event, LocalContext(function_name="trainctl-spot_interruption"))
            step = next(s for s in result["steps"] if s["step"] == "checkpoint-command")
            # "at" is when the step began; the command is issued when its SendCommand returns.
            samples.append(step["at_ms"] + step["took_ms"])
    return {"first": samples[0], "p50": statistics.median(samples[1:]), "max": max(samples[1:])}


def table() -> Table:
    result = Table(
        "Spot handler: handler start to checkpoint command issued (SendCommand returned)",
        ["per-call latency", "first invocation ms", "warm p50 ms", "warm max ms", f"warm under {TARGET_MS} ms"],
    )
    for latency in (0.0, 0.05):
        saved = dict(os.environ)
        try:
            figures = measure(latency)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        label = "none (moto on loopback)" if latency == 0 else f"{latency * 1000:.0f} ms (AWS-like endpoint)"
        ok = "yes" if figures["max"] < TARGET_MS else "no"
        result.rows.append([label, figures["first"], figures["p50"], figures["max"], ok])
        time.sleep(0.1)
    result.notes.append(
        "- Three calls end with the command issued: the idempotency PutItem, DescribeInstances, SendCommand."
    )
    return result


def main() -> None:
    print(table().markdown())


if __name__ == "__main__":
    main()
