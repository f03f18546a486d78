"""Spot handler speed: time from the handler's start to the checkpoint command issued, first and warm.

    python -m bench.spot_checkpoint

Each invocation is a warning for a different spot instance (so the idempotency record never short-cuts
it), run in this process against moto, once on bare loopback and once behind the AWS-like endpoint's
per-call latency (bench.aws_like; 50 ms by default, which EC2 and DynamoDB in-region usually beat).
"first" is the first invocation of a freshly imported handler: clients and the idempotency layer are
built then. Before the command the handler makes two calls: the idempotency PutItem and DescribeInstances.

The forwarded case is a warning a member account of an organization forwarded to the hub (issue 29): before the
command the hub also reads its records of the account (Query, BatchGetItem), assumes the spoke role and checks which
account answered (AssumeRole, GetCallerIdentity), and then acts with the spoke's clients. Its whole handling, to the
owner told, is timed against the two minutes a warning gives.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.report import Table

ROOT = Path(__file__).resolve().parents[1]
WARM_RUNS = 30
TARGET_MS = 1000
# EC2 reclaims a warned spot instance two minutes after the warning.
BUDGET_MS = 120_000
HUB = "123456789012"
MEMBER = "210987654321"
SPOKE_ROLE = "trainctl-spoke"


@contextlib.contextmanager
def _endpoint(moto: str, latency: float) -> Iterator[str]:
    if latency <= 0:
        yield moto
        return
    from bench.aws_like import AwsLike

    with AwsLike(moto, latency=latency, serve_ec2=False) as env:
        yield env.endpoint


def _member_clients(factory: Any) -> Any:
    """The set-up's own clients in the member account (moto's STS acts in the account of the role assumed)."""
    from trainctl.aws.clients import ClientFactory, Credentials

    raw = factory.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/{SPOKE_ROLE}", RoleSessionName="bench-set-up"
    )["Credentials"]
    return ClientFactory(credentials=Credentials(raw["AccessKeyId"], raw["SecretAccessKey"], raw["SessionToken"]))


def _onboard_member(factory: Any, table: str) -> None:
    """The hub's records of the member as the organization run leaves them: onboarded, swept enforced."""
    from trainctl.core.clock import system_clock
    from trainctl.organization.record import AccountRecords, AccountRun

    records = AccountRecords(factory.dynamodb(), table)
    # Its first sweep (a dry-run) an hour ago onboarded it; the newest, enforced, half an hour ago.
    for ago, dry_run in ((60, True), (30, False)):
        at = system_clock() - timedelta(minutes=ago)
        records.record_run(AccountRun(MEMBER, "us-east-1", at, f"bench-{ago}", dry_run, "done"), {})


def measure(latency: float, *, forwarded: bool = False) -> dict[str, Any]:
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
        owner = factory
        if forwarded:
            owner = _member_clients(factory)
            _onboard_member(factory, resources.ledger_table)
            os.environ.update(
                {
                    "TRAINCTL_ORG_UNITS": "ou-ab12-cd34ef56",
                    "TRAINCTL_ORG_ENFORCE_ACCOUNTS": MEMBER,
                    "TRAINCTL_ORG_SPOKE_ROLE": SPOKE_ROLE,
                    "TRAINCTL_LEDGER_TABLE": resources.ledger_table,
                }
            )
        instances = owner.ec2("us-east-1").run_instances(
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
        totals: list[float] = []
        for instance in instances:
            event = json.loads(json.dumps(template).replace("i-0000000000000000a", instance["InstanceId"]))
            event["time"] = format_instant(system_clock())
            if forwarded:
                event["account"] = MEMBER
            started = time.monotonic()
            result = handler.lambda_handler(event, LocalContext(function_name="trainctl-spot_interruption"))
            totals.append((time.monotonic() - started) * 1000)
            assert result["status"] == "handled", result
            step = next(s for s in result["steps"] if s["step"] == "checkpoint-command")
            # "at" is when the step began; the command is issued when its SendCommand returns.
            samples.append(step["at_ms"] + step["took_ms"])
    return {
        "first": samples[0],
        "p50": statistics.median(samples[1:]),
        "max": max(samples[1:]),
        "whole_first": totals[0],
        "whole_max": max(totals[1:]),
    }


def table() -> Table:
    result = Table(
        "Spot handler: handler start to checkpoint command issued (SendCommand returned), and the whole handling",
        [
            "warning",
            "per-call latency",
            "first invocation ms",
            "warm p50 ms",
            "warm max ms",
            f"warm under {TARGET_MS} ms",
            "whole handling, first / warm max ms",
            f"within {BUDGET_MS // 1000} s",
        ],
    )
    for forwarded in (False, True):
        for latency in (0.0, 0.05):
            saved = dict(os.environ)
            try:
                figures = measure(latency, forwarded=forwarded)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            label = "none (moto on loopback)" if latency == 0 else f"{latency * 1000:.0f} ms (AWS-like endpoint)"
            ok = "yes" if figures["max"] < TARGET_MS else "no"
            whole = f"{figures['whole_first']:.0f} / {figures['whole_max']:.0f}"
            within = "yes" if max(figures["whole_first"], figures["whole_max"]) < BUDGET_MS else "no"
            kind = "a member's, forwarded" if forwarded else "the hub's own"
            result.rows.append([kind, label, figures["first"], figures["p50"], figures["max"], ok, whole, within])
            time.sleep(0.1)
    result.notes.append(
        "- Three calls end with the command issued: the idempotency PutItem, DescribeInstances, SendCommand."
    )
    result.notes.append(
        "- A member's warning adds, before them, the hub's records of the account (Query, BatchGetItem), AssumeRole "
        "and GetCallerIdentity: the spoke role, checked to answer from the member. A warm invocation reuses the "
        "spoke's clients (for up to 10 minutes of its 15-minute session): the first assumes the role and builds them."
    )
    return result


def main() -> None:
    print(table().markdown())


if __name__ == "__main__":
    main()
