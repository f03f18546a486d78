"""Spot handler speed: time from the handler's start to the checkpoint command, cold and warm.

    python -m bench.spot_checkpoint

A moto server on loopback plays AWS; each invocation is a warning for a different spot instance (so the
idempotency record never short-cuts it). "cold" is the first invocation of a freshly imported handler
(clients and the idempotency layer are built then); "warm" are the ones after. Loopback calls are faster
than AWS's regional endpoints (a few ms against 10-30 ms), so the report also counts the calls made before
the command: on AWS each adds its round trip.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WARM_RUNS = 30


def main() -> None:
    sys.path.insert(0, str(ROOT / "layers"))
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from trainctl import stack_resources, tags
    from trainctl.aws import ClientFactory
    from trainctl.cli.main import LocalContext, load_handler
    from trainctl.clock import format_instant, system_clock
    from trainctl.sandbox import moto_server

    with moto_server():
        factory = ClientFactory()
        resources = stack_resources.ensure_on_emulator(factory, ("us-east-1",))
        ec2 = factory.ec2("us-east-1")
        instances = ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            InstanceType="g5.xlarge",
            MinCount=WARM_RUNS + 1,
            MaxCount=WARM_RUNS + 1,
            InstanceMarketOptions={"MarketType": "spot"},
            BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100, "DeleteOnTermination": True}}],
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]},
            ],
        )["Instances"]
        os.environ.update(
            {
                "TRAINCTL_REGIONS": "us-east-1",
                "TRAINCTL_TOPIC_ARN": resources.topic_arn,
                "TRAINCTL_SPOT_CHECKPOINT_WAIT": "0s",
            }
        )
        template = json.loads((ROOT / "events" / "spot_interruption" / "warning.json").read_text())
        started = time.perf_counter()
        handler = load_handler("spot_interruption")
        import_ms = (time.perf_counter() - started) * 1000
        samples: list[dict[str, Any]] = []
        for instance in instances:
            event = json.loads(json.dumps(template).replace("i-0000000000000000a", instance["InstanceId"]))
            event["time"] = format_instant(system_clock())
            result = handler.lambda_handler(event, LocalContext(function_name="trainctl-spot_interruption"))
            step = next(s for s in result["steps"] if s["step"] == "checkpoint-command")
            samples.append({"at_ms": step["at_ms"], "took_ms": step["took_ms"]})
    cold, warm = samples[0], samples[1:]
    warm_at = [s["at_ms"] for s in warm]
    print("spot_interruption: checkpoint command issued after the handler started (moto server on loopback)")
    print(f"{'':<10} {'issued at ms':>13} {'SendCommand ms':>15}")
    print(f"{'cold':<10} {cold['at_ms']:>13.1f} {cold['took_ms']:>15.1f}")
    print(
        f"{'warm p50':<10} {statistics.median(warm_at):>13.1f} {statistics.median(s['took_ms'] for s in warm):>15.1f}"
    )
    print(f"{'warm max':<10} {max(warm_at):>13.1f} {max(s['took_ms'] for s in warm):>15.1f}")
    print(f"handler module import in this process: {import_ms:.0f} ms (fresh-interpreter figures: bench.cold_start)")
    print("before the command the handler makes 2 calls: the idempotency PutItem and DescribeInstances")


if __name__ == "__main__":
    main()
