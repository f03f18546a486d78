"""Scenario (i), issue 29: an organization dry-run over 200 accounts x 4 regions, beside a serial loop.

    python -m bench.organization [--accounts 200] [--regions 4] [--latency 0.05] [--concurrency 10,40,100]

moto serves the Organization (200 member accounts under three covered units, a spoke role in each) and the hub's
ledger; the AWS-like endpoint (bench.aws_like) stands in front of it with the per-call latency and EC2's request
buckets, here one set per account and region as AWS keeps them, and answers each account's EC2 calls from that
account's own in-memory fleet. Most accounts are small; a few hold 50,000 resources in their home region, built
in memory and swept for real (no modelling from the single-account figures).

One process of its own (the "Lambda") runs the deployed handlers: organization_plan once, then organization_sweep
for every item, one after another. That loop is the serial comparator (what c7n-org in one process, or aws-nuke
in a shell loop, does), measured end to end. Each child's real duration from that loop is then scheduled as the
Distributed Map runs children: in item order, at most `max_concurrency` at once, each new execution environment
paying the handler's measured cold import once. Step Functions' own time to start a child is not modelled: AWS
publishes no figure for it.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fleet
from bench.aws_like import (
    NON_MUTATING,
    READ_PREFIXES,
    AwsLike,
    BucketSpec,
    Ec2Error,
    Fleet,
    RegionFleet,
    TokenBucket,
)
from bench.report import Table

ROOT = Path(__file__).resolve().parents[1]
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1")
UNITS = ("research", "platform", "product")
SPOKE_ROLE = "trainctl-spoke"
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}'
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
# The organization_sweep function's memory as infra/organization.py deploys it: Lambda bills GB-seconds.
SWEEP_MEMORY_GB = 1.0
WALL_TARGET_SECONDS = 15 * 60
# The longest a Lambda invocation runs (AWS Lambda Developer Guide, "Lambda quotas").
LAMBDA_LIMIT_SECONDS = 15 * 60
DEFAULT_CONCURRENCIES = (10, 40, 100)
_ACCESS_KEY = re.compile(r"Credential=([^/]+)/")


@dataclass(frozen=True)
class AccountMix:
    """Most accounts small in every region; a few large ones hold most of their fleet in their home region."""

    large: int = 4
    large_resources: int = 50_000
    medium: int = 16
    medium_resources: int = 2_000
    small_resources: int = 40

    def sizes(self, index: int, regions: Sequence[str]) -> dict[str, int]:
        """Resources per region of the account at `index`: its home region (the first) holds the big share."""
        home = self.small_resources
        if index < self.large:
            home = self.large_resources
        elif index < self.large + self.medium:
            home = self.medium_resources
        return {region: home if n == 0 else self.small_resources for n, region in enumerate(regions)}


# -- the endpoint: one fleet and one set of request buckets per account -----------------------------------------


class OrganizationEndpoint(AwsLike):
    """The AWS-like endpoint with an account dimension: each request is answered from, and throttled by, the
    account its credentials act in (moto's STS says which: an assumed role's keys act in the role's account)."""

    def __init__(self, moto_endpoint: str, *, latency: float, non_mutating: BucketSpec = NON_MUTATING) -> None:
        super().__init__(moto_endpoint, latency=latency, non_mutating=non_mutating)
        self._fleets: dict[str, Fleet] = {}
        self._account_buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._accounts_of_keys: dict[str, str] = {}
        self._request = threading.local()

    def load_accounts(self, fleets: dict[str, dict[str, RegionFleet]]) -> None:
        for account, regions in fleets.items():
            account_fleet = Fleet(self.fleet._xml)
            account_fleet.account = account
            account_fleet.load(regions)
            account_fleet.prerender()
            self._fleets[account] = account_fleet

    def reset_stats(self) -> None:
        super().reset_stats()
        with self._buckets_lock:
            self._account_buckets.clear()

    def _account_of(self, headers: dict[str, str]) -> str:
        found = _ACCESS_KEY.search(next((v for k, v in headers.items() if k.lower() == "authorization"), ""))
        key = found.group(1) if found else ""
        if key not in self._accounts_of_keys:
            from moto.iam.models import get_account_id_from

            self._accounts_of_keys[key] = get_account_id_from(key)
        return self._accounts_of_keys[key]

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        self._request.account = self._account_of(headers)
        return super().handle(method, path, headers, body)

    def _bucket(self, region: str, action: str) -> TokenBucket:
        key = (self._request.account, region, action)
        with self._buckets_lock:
            if key not in self._account_buckets:
                spec = self._specs[0] if action.startswith(READ_PREFIXES) else self._specs[1]
                self._account_buckets[key] = TokenBucket(spec)
            return self._account_buckets[key]

    def _ec2(self, region: str, action: str, params: dict[str, str]) -> str:
        account_fleet = self._fleets.get(self._request.account)
        if account_fleet is None:
            raise Ec2Error("AuthFailure", "the bench has no fleet for this account")
        if action in ("DescribeInstances", "DescribeVolumes", "DescribeSnapshots", "DescribeImages"):
            return account_fleet.describe(region, action, params)
        if action in (
            "CreateTags",
            "DeleteTags",
            "DeleteVolume",
            "DeleteSnapshot",
            "StopInstances",
            "TerminateInstances",
        ):
            # A dry-run writes nothing: any of these would be a fault of the run, shown as an error.
            raise Ec2Error("DryRunWrote", f"the organization dry-run called {action}")
        return self._ec2_facts(action, params)


# -- the organization on moto -----------------------------------------------------------------------------------


@dataclass
class Organization:
    units: dict[str, str]
    accounts: list[str]
    sizes: dict[str, dict[str, int]]

    @property
    def resources(self) -> int:
        return sum(sum(regions.values()) for regions in self.sizes.values())


def build_organization(moto_endpoint: str, accounts: int, regions: Sequence[str], mix: AccountMix) -> Organization:
    """The Organization, its member accounts and their spoke roles, made on moto directly (no latency, not counted)."""
    import boto3

    session = boto3.Session(**{k.lower(): v for k, v in CREDENTIALS.items() if k != "AWS_DEFAULT_REGION"})
    org = session.client("organizations", region_name=REGIONS[0], endpoint_url=moto_endpoint)
    sts = session.client("sts", region_name=REGIONS[0], endpoint_url=moto_endpoint)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    units = {
        name: org.create_organizational_unit(ParentId=root, Name=name)["OrganizationalUnit"]["Id"] for name in UNITS
    }
    made: list[str] = []
    sizes: dict[str, dict[str, int]] = {}
    for index in range(accounts):
        name = f"team-{index:03d}"
        account = org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        unit = units[UNITS[index % len(UNITS)]]
        org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=unit)
        raw = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="set-up"
        )
        keys = raw["Credentials"]
        iam = boto3.client(
            "iam",
            region_name=REGIONS[0],
            endpoint_url=moto_endpoint,
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
        )
        iam.create_role(RoleName=SPOKE_ROLE, AssumeRolePolicyDocument=TRUST)
        made.append(str(account))
        sizes[str(account)] = mix.sizes(index, regions)
    return Organization(units, made, sizes)


def build_fleets(organization: Organization) -> dict[str, dict[str, RegionFleet]]:
    now = datetime.now(UTC)
    return {
        account: {
            region: fleet.build_region(region, size, now, seed=n)[0] for n, (region, size) in enumerate(regions.items())
        }
        for account, regions in organization.sizes.items()
    }


# -- the children, one after another, in a process of their own ------------------------------------------------


def run_children(output: Path) -> None:
    """The "Lambda": the plan handler once, then the child handler for each item in turn, each one timed."""
    started = time.perf_counter()
    sys.path[:0] = [str(ROOT / "layers"), str(ROOT)]
    from trainctl.cli.local_run import LocalContext, load_handler

    plan = load_handler("organization_plan")
    sweep = load_handler("organization_sweep")
    imported = time.perf_counter()
    planned = plan.lambda_handler(
        {"task": "organization_plan"}, LocalContext(function_name="trainctl-organization_plan")
    )
    plan_seconds = time.perf_counter() - imported
    children = []
    for item in planned["items"]:
        began = time.perf_counter()
        outcome = sweep.lambda_handler(item, LocalContext(function_name="trainctl-organization_sweep"))
        seconds = time.perf_counter() - began
        summary = outcome.get("summary") or {}
        children.append(
            {
                "account": outcome["account"],
                "region": outcome["region"],
                "seconds": seconds,
                "outcome": outcome["outcome"],
                "dry_run": outcome["dry_run"],
                "error": outcome.get("error"),
                "scanned": summary.get("scanned", 0),
                "candidates": summary.get("candidates", 0),
                "notes": outcome.get("notes", []),
            }
        )
    output.write_text(
        json.dumps(
            {
                "import_seconds": imported - started,
                "plan_seconds": plan_seconds,
                "loop_seconds": time.perf_counter() - imported,
                "children": children,
            }
        )
    )


# -- the Distributed Map's schedule -----------------------------------------------------------------------------


def map_schedule(durations: Sequence[float], concurrency: int, cold_start: float) -> float:
    """When the last child ends, children started in item order as soon as one of `concurrency` slots is free;
    each slot's first child also pays a cold start (a new execution environment)."""
    if concurrency < 1:
        raise ValueError("the Distributed Map runs at least one child at a time")
    free_at: list[float] = []  # when each busy slot is next free
    for seconds in durations:
        if len(free_at) < concurrency:
            heapq.heappush(free_at, cold_start + seconds)
        else:
            heapq.heappush(free_at, heapq.heappop(free_at) + seconds)
    return max(free_at, default=0.0)


# -- the measurement --------------------------------------------------------------------------------------------


@dataclass
class OrganizationRun:
    accounts: int
    regions: tuple[str, ...]
    resources: int
    mix: AccountMix
    import_seconds: float
    plan_seconds: float
    loop_seconds: float
    children: list[dict[str, Any]]
    calls: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    emulator_seconds: float = 0.0
    exit_code: int = 0
    setup_seconds: float = 0.0

    @property
    def durations(self) -> list[float]:
        return [float(c["seconds"]) for c in self.children]

    @property
    def lambda_seconds(self) -> float:
        return self.plan_seconds + sum(self.durations)

    @property
    def surfaced(self) -> int:
        """Children that surfaced throttling: an error or a note naming it."""
        words = ("RequestLimitExceeded", "Throttl", "rate exceeded")
        return sum(
            1
            for c in self.children
            if any(w in text for w in words for text in [str(c.get("error") or ""), *map(str, c.get("notes", []))])
        )

    def map_wall(self, concurrency: int) -> float:
        return self.plan_seconds + map_schedule(self.durations, concurrency, self.import_seconds)


def measure(
    accounts: int = 200,
    region_count: int = 4,
    latency: float = 0.05,
    mix: AccountMix | None = None,
) -> OrganizationRun:
    from trainctl.aws.clients import ClientFactory
    from trainctl.cli import stack_resources
    from trainctl.cli.sandbox_fleet import moto_server
    from trainctl.core import names

    mix = mix or AccountMix()
    regions = REGIONS[:region_count]
    os.environ.update(CREDENTIALS)
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with moto_server() as moto, OrganizationEndpoint(moto, latency=latency) as env:
        began = time.perf_counter()
        stack_resources.ensure_on_emulator(ClientFactory(REGIONS[0]), (REGIONS[0],))
        organization = build_organization(moto, accounts, regions, mix)
        env.load_accounts(build_fleets(organization))
        setup = time.perf_counter() - began
        print(f"(i) organization of {accounts} accounts x {len(regions)} regions built in {setup:.0f} s", flush=True)
        environment = {
            **os.environ,
            **CREDENTIALS,
            **names.FUNCTION_ENVIRONMENT,
            "AWS_ENDPOINT_URL": env.endpoint,
            "TRAINCTL_DRY_RUN": "true",
            "TRAINCTL_REGIONS": ",".join(regions),
            "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
            "TRAINCTL_ORG_UNITS": ",".join(organization.units.values()),
            "TRAINCTL_ORG_SPOKE_ROLE": SPOKE_ROLE,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        env.reset_stats()
        with tempfile.TemporaryDirectory(prefix="bench-organization-") as tmp:
            output = Path(tmp) / "children.json"
            log = Path(tmp) / "children.log"
            with log.open("w") as out:
                process = subprocess.run(
                    [sys.executable, "-m", "bench.organization", "--run-children", str(output)],
                    env=environment,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    check=False,
                )
            if not output.exists():
                tail = log.read_text()[-2000:]
                raise SystemExit(f"the organization run wrote no result (exit {process.returncode}):\n{tail}")
            result = json.loads(output.read_text())
        stats = env.stats()
    return OrganizationRun(
        accounts=accounts,
        regions=regions,
        resources=organization.resources,
        mix=mix,
        import_seconds=result["import_seconds"],
        plan_seconds=result["plan_seconds"],
        loop_seconds=result["loop_seconds"],
        children=result["children"],
        calls=stats.calls,
        throttled=stats.throttled,
        errors=stats.errors,
        emulator_seconds=stats.emulator_seconds,
        exit_code=process.returncode,
        setup_seconds=setup,
    )


# -- the report -------------------------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min ({seconds:,.0f} s)"


def _by_service(calls: Counter[str]) -> str:
    services: Counter[str] = Counter()
    for name, count in calls.items():
        services[name.split(":", 1)[0]] += count
    return ", ".join(f"{service} {count:,}" for service, count in services.most_common())


def table(run: OrganizationRun, concurrencies: Sequence[int], latency: float) -> Table:
    failed = [c for c in run.children if c["outcome"] != "done"]
    calls = sum(run.calls.values())
    throttled = sum(run.throttled.values())
    slowest = max(run.children, key=lambda c: c["seconds"]) if run.children else None
    result = Table(
        f"Organization dry-run: {run.accounts} accounts x {len(run.regions)} regions ({len(run.children)} children), "
        f"{run.resources:,} resources, {latency * 1000:.0f} ms a call",
        ["run", "wall", f"under {WALL_TARGET_SECONDS // 60} min", "Lambda-seconds", "GB-seconds (1,024 MB)"],
    )
    for concurrency in concurrencies:
        wall = run.map_wall(concurrency)
        cold = min(concurrency, len(run.children)) * run.import_seconds
        result.rows.append(
            [
                f"Distributed Map, max_concurrency {concurrency}" + (" (the default)" if concurrency == 10 else ""),
                _minutes(wall),
                "yes" if wall < WALL_TARGET_SECONDS else "no",
                round(run.lambda_seconds + cold),
                round((run.lambda_seconds + cold) * SWEEP_MEMORY_GB),
            ]
        )
    serial = run.loop_seconds  # the plan, then every child, one after another
    result.rows.append(
        [
            "serial loop, one process (c7n-org, aws-nuke in a shell loop)",
            _minutes(serial),
            "yes" if serial < WALL_TARGET_SECONDS else "no",
            round(serial + run.import_seconds),
            round((serial + run.import_seconds) * SWEEP_MEMORY_GB),
        ]
    )
    mix = run.mix
    others = run.accounts - mix.large - mix.medium
    result.notes += [
        f"- The mix: {mix.large} accounts of {mix.large_resources:,} resources in their home region, {mix.medium} of "
        f"{mix.medium_resources:,}, {others} small; every other region of every account holds {mix.small_resources}. "
        "Every fleet is built in memory and swept for real through the endpoint: no child's time is modelled.",
        f"- API calls: {calls:,} ({_by_service(run.calls)}); {calls / max(1, len(run.children)):.1f} a child.",
        f"- Throttling: {throttled} RequestLimitExceeded answered by the per-account, per-region buckets; "
        f"{run.surfaced} surfaced by a child. Failed children: {len(failed)}"
        + (f" ({'; '.join(str(c['error']) for c in failed[:3])})" if failed else "")
        + ".",
        f"- Each child's time, measured in the serial loop: median {statistics.median(run.durations or [0.0]):.2f} s"
        + (
            f", longest {slowest['seconds']:.1f} s ({slowest['scanned']:,} resources scanned)"
            if slowest is not None
            else ""
        )
        + f"; the plan step {run.plan_seconds:.1f} s; the handlers' cold import {run.import_seconds:.2f} s, paid "
        "once per execution environment (one per concurrency slot).",
        "- The Distributed Map's wall time is the plan plus the children's measured times scheduled in item order at "
        "the concurrency; Step Functions' own start-up per child is not modelled (no published figure was found). "
        "Children "
        "of different accounts, or of one account's regions, share no EC2 request bucket, so running them at once "
        "meets no more throttling than the loop did; the hub's own DynamoDB, STS and Organizations calls are not "
        "throttled here.",
        f"- Emulator time (answering, without the latency): {run.emulator_seconds:.0f} s. Setting up the "
        f"organization on moto (not measured above): {run.setup_seconds:.0f} s.",
    ]
    if serial > LAMBDA_LIMIT_SECONDS:
        result.notes.append(
            f"- The serial loop's {serial / 60:.1f} min is past the {LAMBDA_LIMIT_SECONDS // 60} minutes one Lambda "
            'invocation may run (AWS Lambda Developer Guide, "Lambda quotas"): it could only run outside Lambda.'
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--regions", type=int, default=4, choices=range(1, len(REGIONS) + 1))
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", default=",".join(map(str, DEFAULT_CONCURRENCIES)))
    parser.add_argument("--run-children", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_children is not None:
        run_children(args.run_children)
        return
    run = measure(args.accounts, args.regions, args.latency)
    print(table(run, [int(c) for c in args.concurrency.split(",")], args.latency).markdown())


if __name__ == "__main__":
    main()
