"""The providers' sweep on a large account behind the emulators: RunPod's 2,000 pods and 500 network volumes, and
a Lyceum account, each call answered after a fixed latency, RunPod's under a per-minute quota.

    python -m bench.providers [--pods 2000] [--volumes 500] [--latency 0.05] [--quota 300] [--vms 500]

RunPod publishes its rate limits as three windows (a minute, an hour, a day) announced in the RateLimit and
RateLimit-Policy headers, with 429 and Retry-After past them, but no figures: the quota here is the emulator's
(per minute only), chosen so that the enforced sweep meets it. Lyceum documents no rate limit; a few 429s with
Retry-After are scripted into its acting sweep all the same.

The sweeps run in this process, as the deployed sweep function runs them (`run_runpod_sweep`, `run_lyceum_sweep`),
on an injected clock: the first sight, the mark once the rules hold (idle for the whole window, exited longer
than the stopped-max-age, unmounted for the grace period, past the time-to-live), the grace, then the acts after
the grace and the delivery lag, with the blast-radius cap lifted so that every candidate is acted on. The waits
for the rate limit are real: the client sleeps what Retry-After says. The ledger is DynamoDB on a local moto
server with no latency added; its calls are counted apart.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.report import Table

DEFAULT_PODS = 2000
DEFAULT_VOLUMES = 500
DEFAULT_QUOTA = 1200
DEFAULT_VMS = 500
GRACE = timedelta(hours=2)
LAG = timedelta(minutes=15)
WINDOW = timedelta(hours=2)
# While the sweep acts, a script of the same RunPod user reads a pod from a few workers as fast as the answers come,
# reads no RateLimit header and tries again a second after a refusal. The quota is per user: the sweep's last
# RateLimit header is stale whenever the script took the window's last calls, and the sweep's next call is a 429.
NEIGHBOUR_WORKERS = 4
NEIGHBOUR_RETRY_S = 1.0
# Scripted into Lyceum's acting sweep: Lyceum documents no rate limit, so these test the client, not a quota.
LYCEUM_SCRIPTED_429 = 3
PROBES = 3


@dataclass
class Sweep:
    """One sweep's figures."""

    label: str
    after: timedelta
    dry_run: bool
    wall_s: float
    provider_calls: int
    rate_limited: int
    waited_s: float
    ledger_calls: int
    ledger_s: float
    actions: Counter[str]
    error: str | None
    failed: int
    rate_limit_surfaced: int


@dataclass
class Account:
    """What one provider's bench measured, and how the account was made."""

    provider: str
    made: str
    sweeps: list[Sweep] = field(default_factory=list)
    rejected_by_emulator: int = 0
    per_call_ms: float = 0.0
    neighbour_calls: int = 0


class LedgerTime:
    """Seconds spent in the ledger's DynamoDB calls (moto's time, not the provider's), from botocore's events."""

    def __init__(self, dynamodb: Any) -> None:
        self.seconds = 0.0
        self._started: float | None = None
        dynamodb.meta.events.register("before-call.dynamodb", self._before)
        dynamodb.meta.events.register("after-call.dynamodb", self._after)

    def _before(self, **_: Any) -> None:
        self._started = time.perf_counter()

    def _after(self, **_: Any) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None


@contextlib.contextmanager
def neighbour(url: str, key: str) -> Iterator[list[int]]:
    """A script of the same account: `NEIGHBOUR_WORKERS` workers calling `url` back to back until the block ends,
    each pausing a second after a refusal; yields the calls made."""
    import urllib3

    done = threading.Event()
    made = [0]
    lock = threading.Lock()

    def spend() -> None:
        pool = urllib3.PoolManager(retries=False)
        while not done.is_set():
            answer = pool.request("GET", url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0)
            with lock:
                made[0] += 1
            if answer.status != 200:
                done.wait(NEIGHBOUR_RETRY_S)

    workers = [threading.Thread(target=spend, daemon=True) for _ in range(NEIGHBOUR_WORKERS)]
    for worker in workers:
        worker.start()
    try:
        yield made
    finally:
        done.set()
        for worker in workers:
            worker.join(timeout=30)


def _figures(
    label: str,
    after: timedelta,
    dry_run: bool,
    sweep: Callable[[], Any],
    counts: Any,
    factory: Any,
    ledger_time: LedgerTime,
) -> Sweep:
    """One sweep, timed; its provider calls from the client's counts, its ledger calls from the factory's."""
    calls, limited, waited, before = counts.calls, counts.rate_limited, counts.waited_s, factory.calls.total
    ledger_before = ledger_time.seconds
    started = time.perf_counter()
    result = sweep()
    wall = time.perf_counter() - started
    decisions = result.result.decisions
    surfaced = [
        d for d in decisions if "rate limit" in d.detail.lower() or "429" in d.detail or "rate limited" in d.detail
    ]
    return Sweep(
        label=label,
        after=after,
        dry_run=dry_run,
        wall_s=wall,
        provider_calls=counts.calls - calls,
        rate_limited=counts.rate_limited - limited,
        waited_s=counts.waited_s - waited,
        ledger_calls=factory.calls.total - before,
        ledger_s=ledger_time.seconds - ledger_before,
        actions=Counter(d.action for d in decisions if d.action != "keep"),
        error=result.error,
        failed=sum(1 for d in decisions if d.outcome == "failed"),
        rate_limit_surfaced=len(surfaced) + (1 if result.error and "rate limit" in result.error else 0),
    )


@contextlib.contextmanager
def _ledger() -> Iterator[Any]:
    # Before any trainctl import: the shared Logger takes its level when it is built.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from trainctl.aws.clients import ClientFactory
    from trainctl.cli import stack_resources
    from trainctl.cli.sandbox_fleet import moto_server

    with moto_server():
        factory = ClientFactory()
        stack_resources.ensure_on_emulator(factory, ("us-east-1",))
        yield factory


def _settings(dry_run: bool, stopped_max_age: timedelta = GRACE) -> Any:
    from trainctl.core import names
    from trainctl.core.sweep_settings import SweepSettings

    return SweepSettings(
        regions=("us-east-1",),
        dry_run=dry_run,
        grace_period=GRACE,
        event_delivery_lag=LAG,
        idle_window=WINDOW,
        stopped_max_age=stopped_max_age,
        max_actions=100_000,
        max_action_share=1.0,
        training_document=names.TRAINING_DOCUMENT,
    )


def _schedule() -> list[tuple[str, timedelta, bool]]:
    """First sight, a preview, the mark, the grace, a preview of the acts, the acts."""
    acts = GRACE + WINDOW + LAG
    # The acting sweep runs on the idle window's rhythm: a sample one window back stands at its start.
    acting = WINDOW * -(-acts // WINDOW)
    return [
        ("dry-run, first sight (empty ledger)", timedelta(0), True),
        ("enforced, first sight", timedelta(0), False),
        ("enforced: candidates marked", WINDOW, False),
        ("enforced: in the grace period", acting - WINDOW, False),
        ("dry-run: the acts previewed", acting, True),
        ("enforced: marked candidates acted on", acting, False),
    ]


def measure_runpod(pods: int, volumes: int, latency: float, quota: int) -> Account:
    """A RunPod account: busy, idle, locked, exited and out-of-scope pods; mounted and orphaned volumes."""
    from trainctl.aws.notifications import InMemoryNotifier
    from trainctl.cli.runpod_emulator import EMULATOR_KEY, RunpodEmulator
    from trainctl.core import names
    from trainctl.providers.sweep import ProviderLedger
    from trainctl.runpod.client import connect
    from trainctl.runpod.run import run_runpod_sweep
    from trainctl.runpod.settings import RunpodSettings

    start = datetime(2031, 3, 2, 9, 0, tzinfo=UTC)
    at = [start]
    emulator = RunpodEmulator(per_minute=quota, now=lambda: at[0])
    idle, exited, locked, outside = pods // 10, pods // 20, pods // 20, pods // 20
    busy = pods - idle - exited - locked - outside
    orphans = volumes // 10
    mounted = [emulator.seed_volume(f"train-data-{i:04d}", size_gb=100 + i % 400) for i in range(volumes - orphans)]
    for i in range(orphans):
        emulator.seed_volume(f"train-scratch-{i:04d}", size_gb=50)
    for i in range(busy):
        util = (40.0 + i % 55, 60.0 + i % 35)
        mounts = (mounted[i],) if i < len(mounted) else ()
        emulator.seed_pod(f"train-u{i % 40:02d}-job{i:04d}", gpu_util=util, volume_ids=mounts, age=timedelta(hours=8))
    for i in range(idle):
        emulator.seed_pod(f"train-u{i % 40:02d}-idle{i:04d}", gpu_util=(float(i % 4),), age=timedelta(hours=8))
    for i in range(locked):
        emulator.seed_pod(f"train-u{i % 40:02d}-held{i:04d}", gpu_util=(0.0,), locked=True, age=timedelta(hours=8))
    for i in range(exited):
        emulator.seed_pod(f"train-u{i % 40:02d}-done{i:04d}", status="EXITED", age=timedelta(days=3))
    for i in range(outside):
        emulator.seed_pod(f"personal-{i:04d}", gpu_util=(0.0,), age=timedelta(days=3))
    made = (
        f"{pods:,} pods ({busy:,} busy, {idle:,} idle, {locked:,} locked and idle, {exited:,} exited, {outside:,} "
        f"out of scope) and {volumes:,} network volumes ({volumes - orphans:,} mounted, {orphans:,} mounted by "
        f"no pod); {latency * 1000:.0f} ms a call; a quota of {quota:,} calls a minute"
    )
    account = Account("runpod", made)
    emulator.latency_s = latency
    with _ledger() as factory, emulator.serving() as url:
        runpod = RunpodSettings(
            runpod_api_url=url,
            runpod_name_prefix="train-",
            runpod_owner_pattern=r"^train-(?P<owner>u[0-9]+)-",
            runpod_no_endpoints=True,
        )
        # The largest answer (every pod), timed alone before the sweeps spend the quota.
        probe = connect(runpod, EMULATOR_KEY)
        started = time.perf_counter()
        for _ in range(PROBES):
            probe.list_pods()
        account.per_call_ms = (time.perf_counter() - started) / PROBES * 1000
        client = connect(runpod, EMULATOR_KEY)
        dynamodb = factory.dynamodb()
        ledger_time = LedgerTime(dynamodb)
        ledger = ProviderLedger(dynamodb, names.LEDGER_TABLE, "runpod")
        notifier = InMemoryNotifier()
        a_pod = f"{url}/pods/{next(iter(emulator.pods))}"
        for label, after, dry_run in _schedule():
            at[0] = start + after
            settings = _settings(dry_run)
            print(f"  runpod: {label} (+{after})", flush=True)

            def sweep(settings: Any = settings, when: datetime = at[0]) -> Any:
                return run_runpod_sweep(
                    client,
                    runpod,
                    settings,
                    lambda: when,
                    ledger=ledger,
                    notifier=None if settings.dry_run else notifier,
                )

            shared = label.startswith("enforced: marked")
            with neighbour(a_pod, EMULATOR_KEY) if shared else contextlib.nullcontext([0]) as made:
                figures = _figures(label, after, dry_run, sweep, client.http.counts, factory, ledger_time)
            account.sweeps.append(figures)
            account.neighbour_calls += made[0]
    account.rejected_by_emulator = emulator.rejected_429
    return account


def measure_lyceum(vms: int, latency: float) -> Account:
    """A Lyceum account: VMs in and past a 72-hour time-to-live, runs within and past a 24-hour cap."""
    from trainctl.aws.notifications import InMemoryNotifier
    from trainctl.cli.lyceum_emulator import EMULATOR_KEY, LyceumEmulator, serve
    from trainctl.core import names
    from trainctl.lyceum.client import LyceumClient
    from trainctl.lyceum.run import run_lyceum_sweep
    from trainctl.lyceum.settings import LyceumSettings
    from trainctl.providers.sweep import ProviderLedger

    start = datetime(2031, 3, 2, 9, 0, tzinfo=UTC)
    at = [start]
    emulator = LyceumEmulator(clock=lambda: at[0])
    expired, outside = vms // 5, vms // 20
    runs = vms // 10
    for i in range(vms - expired - outside):
        emulator.add_vm(f"team-u{i % 40:02d}-vm{i:04d}", created_at=start - timedelta(hours=1 + i % 60))
    for i in range(expired):
        emulator.add_vm(f"team-u{i % 40:02d}-old{i:04d}", created_at=start - timedelta(hours=80 + i % 100))
    for i in range(outside):
        emulator.add_vm(f"personal-{i:04d}", created_at=start - timedelta(days=20))
    for i in range(runs):
        hours = 30 if i % 2 else 3
        emulator.add_run(created_at=start - timedelta(hours=hours), file_name=f"team-train{i:04d}.py")
    made = (
        f"{vms:,} VMs ({expired:,} past a 72h time-to-live, {outside:,} out of scope) and {runs:,} live runs "
        f"({runs // 2:,} past a 24h cap); {latency * 1000:.0f} ms a call; no quota (Lyceum documents none), "
        f"{LYCEUM_SCRIPTED_429} scripted 429s with Retry-After: 1 in the acting sweep"
    )
    account = Account("lyceum", made)
    emulator.latency_s = latency
    with _ledger() as factory, serve(emulator) as url:
        lyceum = LyceumSettings(
            lyceum_api_url=url,
            lyceum_name_prefix="team-",
            lyceum_owner_pattern=r"^team-(?P<owner>u[0-9]+)-",
            lyceum_vm_ttl=timedelta(hours=72),
            lyceum_run_max_wall_clock=timedelta(hours=24),
        )
        client = LyceumClient.connect(url, EMULATOR_KEY)
        dynamodb = factory.dynamodb()
        ledger_time = LedgerTime(dynamodb)
        ledger = ProviderLedger(dynamodb, names.LEDGER_TABLE, "lyceum")
        notifier = InMemoryNotifier()
        acting = GRACE + LAG
        for label, after, dry_run in [
            ("dry-run (empty ledger)", timedelta(0), True),
            ("enforced: candidates marked", timedelta(0), False),
            ("dry-run: the acts previewed", acting, True),
            ("enforced: marked candidates acted on", acting, False),
        ]:
            at[0] = start + after
            settings = _settings(dry_run)
            print(f"  lyceum: {label} (+{after})", flush=True)
            if label.startswith("enforced: marked"):
                emulator.throttle(1, times=LYCEUM_SCRIPTED_429, path="/vms/")

            def sweep(settings: Any = settings, when: datetime = at[0]) -> Any:
                return run_lyceum_sweep(
                    client,
                    lyceum,
                    settings,
                    lambda: when,
                    ledger=ledger,
                    notifier=None if settings.dry_run else notifier,
                )

            account.sweeps.append(_figures(label, after, dry_run, sweep, client.http.counts, factory, ledger_time))
    account.rejected_by_emulator = sum(1 for c in emulator.calls if c.status == 429)
    return account


def _hours(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"+{minutes // 60}:{minutes % 60:02d}"


def table(account: Account, title: str) -> Table:
    result = Table(
        title,
        [
            "sweep",
            "at",
            "decided (not keep)",
            "provider calls",
            "429 met",
            "waited s",
            "ledger calls",
            "ledger s",
            "wall s",
            "errors surfaced",
        ],
    )
    for s in account.sweeps:
        decided = ", ".join(f"{n:,} {action}" for action, n in sorted(s.actions.items())) or "none"
        surfaced = s.failed + s.rate_limit_surfaced + (1 if s.error else 0)
        result.rows.append(
            [
                s.label,
                _hours(s.after),
                decided,
                f"{s.provider_calls:,}",
                s.rate_limited,
                f"{s.waited_s:.1f}",
                f"{s.ledger_calls:,}",
                f"{s.ledger_s:.1f}",
                f"{s.wall_s:.1f}",
                "none" if not surfaced else f"{surfaced} ({s.error or 'failed actions'})",
            ]
        )
    return result


def runpod_table(account: Account, latency: float, quota: int) -> Table:
    result = table(account, f"RunPod: {account.made.split(';')[0]}")
    enforced = account.sweeps[-1]
    honoured = enforced.rate_limited > 0 and all(s.error is None and s.rate_limit_surfaced == 0 for s in account.sweeps)
    result.notes += [
        f"- The account: {account.made}. RunPod publishes three rate-limit windows (a minute, an hour, a day) and "
        f"the headers that announce them, but no figures: {quota:,} calls a minute is the emulator's setting, so "
        "the waits measure this emulator, not RunPod.",
        f"- While the sweep acted, a script of the same user read a pod from {NEIGHBOUR_WORKERS} workers as fast as "
        f"the answers came, reading no RateLimit header and pausing {NEIGHBOUR_RETRY_S:g} s after each refusal "
        f"({account.neighbour_calls:,} calls). The quota is per user: the sweep's last RateLimit header was stale "
        "whenever the script took a window's last calls, as it is for any client that shares its user's quota. "
        "The acting "
        f"sweep met {enforced.rate_limited} 429s and waited {enforced.waited_s:.0f} s in all, each wait what a "
        "Retry-After asked, or, before a call, until the reset of a window its last RateLimit header said was "
        f"spent; the emulator refused {account.rejected_by_emulator} calls (the sweep's and its neighbour's), "
        f"and no sweep surfaced a rate-limit error: {'yes' if honoured else 'NO'}.",
        f"- One call of the largest answer (GET /pods, every pod) took {account.per_call_ms:.0f} ms end to end "
        f"against {latency * 1000:.0f} ms of configured latency. Each list "
        "is one call (the documentation names no paging); a stop, a termination and a deletion are one call each "
        "and one read-back (a deletion's read-back lists the volumes); a read is three lists (pods, network volumes, "
        "serverless endpoints), and a deletion is preceded by two more (pods and endpoints, read again).",
        "- Marks on an injected clock: grace 2h, delivery lag 15m, idle window 2h (samples from every sweep), "
        "stopped-max-age 2h, the blast-radius cap lifted. The ledger is DynamoDB on a local moto server with no "
        "latency added, its calls and time counted apart ('ledger s'); moto answers a Query by sorting the whole "
        "table, which DynamoDB does not, so the ledger's time grows with the table here (the marks' histories "
        "are read before a preview and an act). Notices went to an in-memory notifier.",
    ]
    return result


def lyceum_table(account: Account) -> Table:
    result = table(account, f"Lyceum: {account.made.split(';')[0]}")
    result.notes.append(
        f"- The account: {account.made}. A termination is one call and a status read-back; an abort one call and "
        "a list of the live runs."
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=DEFAULT_PODS)
    parser.add_argument("--volumes", type=int, default=DEFAULT_VOLUMES)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--quota", type=int, default=DEFAULT_QUOTA)
    parser.add_argument("--vms", type=int, default=DEFAULT_VMS)
    args = parser.parse_args()
    runpod = measure_runpod(args.pods, args.volumes, args.latency, args.quota)
    print(runpod_table(runpod, args.latency, args.quota).markdown())
    lyceum = measure_lyceum(args.vms, args.latency)
    print(lyceum_table(lyceum).markdown())


if __name__ == "__main__":
    main()
