"""Pre-warm state transitions and Lambda invocations per run, and cost price look-ups cold and warm.

    python -m bench.workflow_runs

The pre-warm workflow is the definition the stack synthesises, run on moto's Step Functions interpreter
with its Lambda tasks dispatched in-process; the cost check runs against the sandbox fleet.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from bench.report import Table


def run_prewarm(factory: Any, machine: str, lambdas: Any, request: dict[str, Any]) -> dict[str, Any]:
    from trainctl.cli.local_lambda import forget_finished_workers

    forget_finished_workers()
    sfn = factory.client("stepfunctions", "us-east-1")
    before = len(lambdas.invocations)
    arn = sfn.start_execution(stateMachineArn=machine, name=uuid.uuid4().hex, input=json.dumps(request))["executionArn"]
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        time.sleep(0.1)
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return {
        "status": described["status"],
        "transitions": sum(1 for e in events if e["type"].endswith("StateEntered")),
        "events": len(events),
        "lambdas": len(lambdas.invocations) - before,
    }


def initialised_at_once(model: Any, **_: Any) -> Any:
    """DescribeVolumeStatus, which moto lacks, answered in AWS's documented shape: initialised."""
    import types

    if model.name != "DescribeVolumeStatus":
        return None
    details = {"InitializationType": "provisioned-rate", "Progress": 100, "EstimatedTimeToCompleteInSeconds": 0}
    answer = {
        "VolumeStatuses": [{"VolumeStatus": {"Status": "ok"}, "InitializationStatusDetails": details}],
        "ResponseMetadata": {"HTTPStatusCode": 200, "RequestId": "bench"},
    }
    return types.SimpleNamespace(status_code=200, headers={}, raw=None), answer


def prewarm_table() -> Table:
    from moto import mock_aws

    from trainctl.aws.clients import ClientFactory
    from trainctl.cli import stack_resources
    from trainctl.cli.local_lambda import failing_sdk_call, lambda_tasks_in_process
    from trainctl.core import tags

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        factory = ClientFactory("us-east-1")
        resources = stack_resources.ensure_on_emulator(factory, ("us-east-1",))
        assert resources.prewarm_state_machine and resources.prewarm_instance_profile
        factory.client("s3", "us-east-1").create_bucket(Bucket="datasets")
        factory.client("s3", "us-east-1").put_object(Bucket="datasets", Key="d/shard-0", Body=b"x" * 1024)
        ec2 = factory.ec2("us-east-1")
        mine = ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            MinCount=1,
            MaxCount=1,
            Placement={"AvailabilityZone": "us-east-1a"},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
        )["Instances"][0]["InstanceId"]

        def volume() -> str:
            # In scope and unclaimed: a volume pre-warm may fill.
            return str(
                ec2.create_volume(
                    Size=100,
                    AvailabilityZone="us-east-1a",
                    TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
                )["VolumeId"]
            )

        base = {"volume": None, "s3_uri": "s3://datasets/d/", "mount_point": "/mnt/prewarm", "snapshot": False}
        cases = {
            "new worker": {**base, "volume_id": volume(), "instance_id": None},
            "new worker, snapshot after": {**base, "volume_id": volume(), "instance_id": None, "snapshot": True},
            "existing instance": {**base, "volume_id": volume(), "instance_id": mine},
            "invalid input (refused)": {**base, "volume_id": "vol-0123456789abcdef0", "instance_id": None},
        }
        env = {"TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN": resources.prewarm_instance_profile}
        table = Table(
            "Pre-warm workflow: state transitions and Lambda invocations per run",
            ["run", "status", "state transitions", "history events", "Lambda invocations"],
        )
        snapshot_id = ec2.create_snapshot(VolumeId=volume())["SnapshotId"]
        restore = {
            "volume": {"snapshot_id": snapshot_id, "zone": "us-east-1a", "initialization_rate": 300},
            "s3_uri": None,
        }
        cases["from a snapshot, no worker"] = restore
        import boto3

        boto3._get_default_session().events.register_first("before-call", initialised_at_once)
        with lambda_tasks_in_process(env) as lambdas:
            for name, request in cases.items():
                row = run_prewarm(factory, resources.prewarm_state_machine, lambdas, request)
                table.rows.append([name, row["status"], row["transitions"], row["events"], row["lambdas"]])
            with failing_sdk_call("AttachVolume"):
                row = run_prewarm(
                    factory, resources.prewarm_state_machine, lambdas, {**cases["new worker"], "volume_id": volume()}
                )
            table.rows.append(
                ["attach fails (compensated)", row["status"], row["transitions"], row["events"], row["lambdas"]]
            )
        boto3._get_default_session().events.unregister("before-call", initialised_at_once)
        table.notes.append(
            "- The definition the stack synthesises, on moto's Step Functions interpreter; its two Lambda tasks "
            "run in-process. Standard workflows are billed per state transition."
        )
        table.notes.append(
            "- From a snapshot: CreateVolume at 300 MiB/s, then DescribeVolumeStatus polled until 100 %; moto has "
            "no DescribeVolumeStatus, so a stub answers in AWS's documented shape, complete at the first poll. "
            "Each further poll on AWS adds 5 to 7 transitions (back off, bound, [cap,] wait, check, 1 or 2 choices; "
            "2 s doubling to 60 s)."
        )
        return table


def cost_table() -> Table:
    from trainctl.aws.clients import ClientFactory
    from trainctl.cli import stack_resources
    from trainctl.cli.sandbox_fleet import SANDBOX_REGIONS, moto_server, seed_training_fleet
    from trainctl.core.clock import system_clock
    from trainctl.core.settings import CostSettings
    from trainctl.cost.run import price_book_for, run_cost_check

    with moto_server():
        factory = ClientFactory()
        stack_resources.ensure_on_emulator(factory, SANDBOX_REGIONS)
        seed_training_fleet(factory, SANDBOX_REGIONS, system_clock())
        settings = CostSettings(regions=SANDBOX_REGIONS)
        book = price_book_for(factory, settings, system_clock, use_table=True, use_api=False)
        table = Table(
            "Cost check of the sandbox fleet: price look-ups per run, by link of the price chain",
            ["cache", "look-ups by link", "API calls"],
        )
        for label in ("cold (new function)", "warm (same function)"):
            before = factory.calls.total
            result = run_cost_check(factory, settings, system_clock, book)
            links = ", ".join(f"{link} {n}" for link, n in sorted(result.lookups.items()))
            table.rows.append([label, links, factory.calls.total - before])
        table.notes.append(
            "- The Price List API is not reachable from an emulator; on AWS a cold miss in the table asks it once "
            "per price and writes the answer back to the table."
        )
        return table


def prepare() -> None:
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    import logging

    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)


def main() -> None:
    prepare()
    print(prewarm_table().markdown())
    print(cost_table().markdown())


if __name__ == "__main__":
    main()
