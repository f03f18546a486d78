"""Scenario (a): the sweep, trainctl against Cloud Custodian, on the same fleet in the same run.

    python -m bench.sweep_compare [--sizes 1000,10000,50000] [--regions 1,2] [--latency 0.05]

For each fleet size and region count, each tool gets a freshly built, identical fleet behind the AWS-like
endpoint (bench.aws_like) and runs three times, each run a process of its own: a dry-run, an enforced run
that marks, and an enforced run one grace period later that acts. Measured per run: wall time (process
start to exit, imports included), CPU time and peak memory of the tool's process (wait4), API calls by
action and throttling responses (counted at the endpoint), throttling errors the tool surfaced, and what
it found or did; the emulator's own time (answering, without the simulated latency) is shown beside it.
After the act run the fleet is checked: "left" counts candidates still there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import custodian, fleet
from bench.aws_like import AwsLike
from bench.report import Table
from trainctl.aws.clients import ClientFactory

ROOT = Path(__file__).resolve().parents[1]
REGION_SETS = {1: ("us-east-1",), 2: ("us-east-1", "us-west-2")}
MODES = ("dry-run", "mark", "act")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class Comparison:
    resources: int
    regions: int
    mode: str
    trainctl_wall: float
    custodian_wall: float
    trainctl_calls: int
    custodian_calls: int
    trainctl_surfaced: int
    custodian_surfaced: int
    trainctl_throttled: int

    @property
    def speedup(self) -> float:
        return self.custodian_wall / self.trainctl_wall


@dataclass
class Run:
    tool: str
    mode: str
    wall: float
    cpu: float
    peak_mib: float
    calls: Counter[str]
    throttled: int
    surfaced: int
    outcome: str
    emulator: float
    exit_code: int


def _peak_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _wait(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float, int]:
    """Wall and CPU time from wait4; peak memory from VmHWM, sampled every 20 ms while the process lives
    (wait4's ru_maxrss would start from this process's own size, which a spawned child inherits)."""
    peak = [0]
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                value = _peak_kib(process.pid)
                if value is not None:
                    peak[0] = max(peak[0], value)
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, peak[0] / 1024, process.returncode


def run_trainctl(env: AwsLike, mode: str, regions: tuple[str, ...], work: Path, topic_arn: str) -> Run:
    output = work / f"trainctl-{mode}.json"
    argv = [sys.executable, "-m", "bench.run_trainctl", "--mode", mode, "--output", str(output)]
    for region in regions:
        argv += ["--region", region]
    process_env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": env.endpoint, "TRAINCTL_TOPIC_ARN": topic_arn}
    env.reset_stats()
    wall, cpu, peak, code = _wait(argv, process_env, work / f"trainctl-{mode}.log")
    stats = env.stats()
    result: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    surfaced = sum("RequestLimitExceeded" in f for f in result.get("failed", []))
    actions = result.get("actions", {})
    outcomes = result.get("outcomes", {})
    if mode == "dry-run":
        outcome = ", ".join(f"{a} {n}" for a, n in sorted(actions.items())) or "nothing"
    else:
        outcome = ", ".join(f"{o} {n}" for o, n in sorted(outcomes.items())) or "nothing"
    return Run(
        "trainctl",
        mode,
        wall,
        cpu,
        peak,
        stats.calls,
        sum(stats.throttled.values()),
        surfaced,
        outcome,
        stats.emulator_seconds,
        code,
    )


def run_custodian(env: AwsLike, mode: str, regions: tuple[str, ...], work: Path) -> Run:
    phase = "act" if mode == "act" else "mark"
    policy_file = custodian.write_policies(work, phase)
    output = work / f"custodian-{mode}"
    argv = custodian.command(policy_file, output, work / f"custodian-{mode}.cache", regions, dry_run=mode == "dry-run")
    process_env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": env.endpoint}
    env.reset_stats()
    log = work / f"custodian-{mode}.log"
    wall, cpu, peak, code = _wait(argv, process_env, log)
    stats = env.stats()
    errors = [line for line in log.read_text().splitlines() if ":ERROR " in line or "Error" in line]
    surfaced = sum("RequestLimitExceeded" in line for line in errors)
    matched = custodian.matched(output)
    short = {name.removeprefix("trainctl-").removesuffix("-act"): n for name, n in matched.items() if n}
    outcome = ", ".join(f"{name} {n}" for name, n in sorted(short.items())) or "nothing"
    if errors:
        outcome += f"; {len(errors)} error lines"
    return Run(
        "custodian",
        mode,
        wall,
        cpu,
        peak,
        stats.calls,
        sum(stats.throttled.values()),
        surfaced,
        outcome,
        stats.emulator_seconds,
        code,
    )


def left_behind(env: AwsLike, expected: fleet.Expected) -> int:
    """Candidates by construction still in the fleet after the act run: not terminated, not deleted."""
    return sum(1 for resource_id in expected.candidate_ids if env.fleet.is_alive(resource_id))


def _calls_text(calls: Counter[str]) -> str:
    return ", ".join(f"{name.split(':', 1)[1]} {n}" for name, n in sorted(calls.items(), key=lambda kv: -kv[1]))


def measure(sizes: list[int], region_counts: list[int], latency: float) -> tuple[list[Table], list[Comparison]]:
    from trainctl.cli.sandbox_fleet import moto_server

    os.environ.update(CREDENTIALS)
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    if not custodian.CUSTODIAN.exists():
        raise SystemExit(
            f"Cloud Custodian is not installed: python -m venv .venv-custodian && "
            f".venv-custodian/bin/pip install {custodian.REQUIREMENT}"
        )
    tables = []
    comparisons = []
    with moto_server() as moto, AwsLike(moto, latency=latency) as env:
        factory = ClientFactory("us-east-1")
        sns = factory.client("sns", "us-east-1")
        # The ledger table and the topic the stack would own, created on moto directly (not counted).
        from trainctl.cli import stack_resources
        from trainctl.core import names

        stack_resources.ensure_on_emulator(factory, ("us-east-1",))
        topic_arn = sns.create_topic(Name=names.SWEEP_TOPIC)["TopicArn"]
        for count in region_counts:
            regions = REGION_SETS[count]
            for size in sizes:
                table = Table(
                    f"Sweep of {size:,} resources in {count} region{'s' if count > 1 else ''}",
                    [
                        "tool",
                        "run",
                        "wall s",
                        "CPU s",
                        "peak MiB",
                        "API calls",
                        "throttled (seen / surfaced)",
                        "found / done",
                        "emulator s",
                        "calls by action",
                    ],
                )
                runs: dict[tuple[str, str], Run] = {}
                for tool in ("trainctl", "custodian"):
                    built, expected = fleet.build(size, regions)
                    env.load_fleet(built)
                    # A new account's ledger: the fleets reuse ids, and an earlier act run, clocked a grace period
                    # ahead, would be a recorded sweep that never saw this fleet's marks (so none could be trusted).
                    factory.client("dynamodb", "us-east-1").delete_table(TableName=names.LEDGER_TABLE)
                    stack_resources.ensure_on_emulator(factory, ("us-east-1",))
                    with tempfile.TemporaryDirectory(prefix=f"bench-{tool}-") as tmp:
                        work = Path(tmp)
                        for mode in MODES:
                            if tool == "trainctl":
                                run = run_trainctl(env, mode, regions, work, topic_arn)
                            else:
                                run = run_custodian(env, mode, regions, work)
                            runs[(tool, mode)] = run
                            outcome = run.outcome + ("" if run.exit_code == 0 else f"; exit {run.exit_code}")
                            if mode == "act":
                                outcome += f"; left {left_behind(env, expected)} of {expected.actions}"
                            table.rows.append(
                                [
                                    tool,
                                    mode,
                                    run.wall,
                                    run.cpu,
                                    round(run.peak_mib),
                                    sum(run.calls.values()),
                                    f"{run.throttled} / {run.surfaced}",
                                    outcome,
                                    run.emulator,
                                    _calls_text(run.calls),
                                ]
                            )
                            print(table.rows[-1], flush=True)
                for mode in MODES:
                    ours, theirs = runs[("trainctl", mode)], runs[("custodian", mode)]
                    comparison = Comparison(
                        size,
                        count,
                        mode,
                        ours.wall,
                        theirs.wall,
                        sum(ours.calls.values()),
                        sum(theirs.calls.values()),
                        ours.surfaced,
                        theirs.surfaced,
                        ours.throttled,
                    )
                    comparisons.append(comparison)
                    table.notes.append(
                        f"- {mode}: trainctl {comparison.speedup:.1f}x as fast as Custodian in wall time, "
                        f"{comparison.trainctl_calls} API calls against {comparison.custodian_calls}."
                    )
                table.notes.append(
                    f"- The fleet: {expected.actions} candidates by construction ({expected.stopped_long} stopped "
                    f"long ago, {expected.unattached} unattached, {expected.old_snapshots - expected.ami_snapshots} "
                    f"old snapshots; {expected.ami_snapshots} more old ones behind AMIs)."
                )
                tables.append(table)
    return tables, comparisons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--regions", default="1,2")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(c) for c in args.regions.split(",")]
    tables, _ = measure(sizes, counts, args.latency)
    for table in tables:
        print(table.markdown())


if __name__ == "__main__":
    main()
