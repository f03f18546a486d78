"""Sweep at scale on the local emulator: wall time and API calls by operation, dry-run and enforced.

    python -m bench.sweep_scale [--instances N] [--volumes N] [--snapshots N]

A benchmark, not a test: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections import Counter
from datetime import timedelta

import boto3

from trainctl import stack_resources, tags
from trainctl.aws import ClientFactory
from trainctl.cleanup import SweepResult, effects_for, read_inventories, run_sweep
from trainctl.clock import fixed_clock, system_clock
from trainctl.sandbox import moto_server
from trainctl.settings import SweepSettings
from trainctl.sweep import Observations, plan_sweep

REGION = "us-east-1"


def seed(factory: ClientFactory, instances: int, volumes: int, snapshots: int) -> float:
    ec2 = factory.ec2(REGION)
    started = time.perf_counter()
    managed = [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "bench"}]
    launched: list[str] = []
    while len(launched) < instances:
        count = min(100, instances - len(launched))
        response = ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            MinCount=count,
            MaxCount=count,
            InstanceType="g5.xlarge",
            TagSpecifications=[{"ResourceType": "instance", "Tags": managed}],
        )
        launched.extend(i["InstanceId"] for i in response["Instances"])
    ec2.stop_instances(InstanceIds=launched[: instances // 2])
    volume_ids = []
    for n in range(volumes):
        extra = [{"Key": tags.PERSISTENT, "Value": "true"}] if n % 10 == 0 else []
        volume_ids.append(
            ec2.create_volume(
                Size=100,
                AvailabilityZone=f"{REGION}a",
                TagSpecifications=[{"ResourceType": "volume", "Tags": managed + extra}],
            )["VolumeId"]
        )
    for n in range(snapshots):
        ec2.create_snapshot(
            VolumeId=volume_ids[n % len(volume_ids)], TagSpecifications=[{"ResourceType": "snapshot", "Tags": managed}]
        )
    return time.perf_counter() - started


def timed(
    factory: ClientFactory, settings: SweepSettings, at, resources
) -> tuple[SweepResult, float, float, Counter[str]]:
    before = factory.calls.by_operation.copy()
    effects = effects_for(factory, settings)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_sweep(
        factory,
        settings,
        fixed_clock(at),
        ledger=effects.ledger,
        notifier=effects.notifier,
    )
    return result, time.perf_counter() - wall, time.process_time() - cpu, factory.calls.by_operation - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--volumes", type=int, default=2000)
    parser.add_argument("--snapshots", type=int, default=500)
    args = parser.parse_args()
    with moto_server() as endpoint:
        factory = ClientFactory(boto3.Session(region_name=REGION))
        resources = stack_resources.ensure_on_emulator(factory, (REGION,))
        seconds = seed(factory, args.instances, args.volumes, args.snapshots)
        total = args.instances + args.volumes + args.snapshots
        print(f"emulator {endpoint}: seeded {total} resources in {seconds:.1f}s")
        base = SweepSettings(
            regions=(REGION,),
            snapshot_retention=timedelta(days=7),
            max_actions=100_000,
            max_action_share=1.0,
            training_check_timeout=timedelta(seconds=2),
            ledger_table=resources.ledger_table,
            topic_arn=resources.topic_arn,
        )
        t0 = system_clock() + timedelta(days=8)
        # trainctl's own share: the pure decisions over an inventory already read.
        read_started = time.perf_counter()
        inventories = read_inventories(factory, base.regions)
        read_seconds = time.perf_counter() - read_started
        decide_started = time.perf_counter()
        for _ in range(10):
            plan_sweep(inventories, Observations(), base, t0)
        decide_ms = (time.perf_counter() - decide_started) * 100
        print(f"inventory read (emulator-bound): {read_seconds:.1f}s; decisions (pure): {decide_ms:.1f} ms per sweep")
        runs = [
            ("dry-run", base, t0),
            ("enforced: mark", base.model_copy(update={"dry_run": False}), t0),
            ("enforced: act", base.model_copy(update={"dry_run": False}), t0 + timedelta(days=1, minutes=1)),
        ]
        print(f"{'sweep':<16} {'wall s':>8} {'cpu s':>7} {'calls':>6}  actions / calls by operation")
        for name, settings, at in runs:
            result, wall, cpu, calls = timed(factory, settings, at, resources)
            summary = result.summary()
            print(f"{name:<16} {wall:>8.1f} {cpu:>7.1f} {sum(calls.values()):>6}  {summary['actions']}")
            print(f"{'':<42}{dict(sorted(calls.items()))}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the process (emulator included): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
