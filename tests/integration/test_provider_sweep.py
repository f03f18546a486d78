"""The providers' sweep against the RunPod and Lyceum emulators and moto's ledger, stepped hour by hour on an
injected clock: every rule and protection, the mark, grace and act cycle with marks only in the ledger, a stop
that raced its user's own, a revoked key, an outage beside a working AWS sweep, unreadable answers, and the key
kept out of everything trainctl writes or prints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import run_cli
from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.cli import stack_resources
from trainctl.cli.lyceum_emulator import EMULATOR_KEY as LYCEUM_KEY
from trainctl.cli.lyceum_emulator import LyceumEmulator, serve
from trainctl.cli.runpod_emulator import EMULATOR_KEY as RUNPOD_KEY
from trainctl.cli.runpod_emulator import RunpodEmulator
from trainctl.cli.sandbox_fleet import free_loopback_port
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock, format_instant
from trainctl.core.sweep_settings import SweepSettings
from trainctl.lyceum.client import LyceumClient
from trainctl.lyceum.run import run_lyceum_sweep
from trainctl.lyceum.settings import LyceumSettings
from trainctl.providers.sweep import ProviderLedger, ProviderSweepResult
from trainctl.runpod.client import connect
from trainctl.runpod.run import run_runpod_sweep
from trainctl.runpod.settings import RunpodSettings
from trainctl.sweep.record import DynamoDbLedger
from trainctl.sweep.rules import Decision
from trainctl.sweep.run import run_sweep

REGION = "us-east-1"
HOUR = timedelta(hours=1)
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
GRACE = timedelta(hours=24)
LAG = timedelta(minutes=15)
SETTINGS = SweepSettings(
    regions=(REGION,),
    dry_run=False,
    grace_period=GRACE,
    event_delivery_lag=LAG,
    idle_window=timedelta(hours=2),
    stopped_max_age=timedelta(hours=6),
    max_action_share=1.0,
    training_document=names.TRAINING_DOCUMENT,
)
OWNER_PATTERN = r"^train-(?P<owner>[a-z]+)-"


@dataclass
class Clock:
    at: datetime = T0

    def __call__(self) -> datetime:
        return self.at


@dataclass
class World:
    factory: ClientFactory
    clock: Clock
    runpod: RunpodEmulator
    runpod_url: str
    lyceum: LyceumEmulator
    lyceum_url: str
    notifier: InMemoryNotifier = field(default_factory=InMemoryNotifier)

    def runpod_settings(self, **changes: Any) -> RunpodSettings:
        values: dict[str, Any] = {
            "runpod_api_url": self.runpod_url,
            "runpod_name_prefix": "train-",
            "runpod_owner_pattern": OWNER_PATTERN,
        }
        return RunpodSettings(**{**values, **changes})

    def sweep_runpod(
        self, settings: SweepSettings = SETTINGS, runpod: RunpodSettings | None = None, key: str = RUNPOD_KEY
    ) -> ProviderSweepResult:
        runpod = runpod or self.runpod_settings()
        client = connect(runpod, key, sleep=lambda _s: None)
        ledger = ProviderLedger(self.factory.dynamodb(), names.LEDGER_TABLE, "runpod")
        return run_runpod_sweep(client, runpod, settings, self.clock, ledger=ledger, notifier=self.notifier)

    def sweep_lyceum(self, settings: SweepSettings = SETTINGS, **changes: Any) -> ProviderSweepResult:
        lyceum = LyceumSettings(
            **{
                "lyceum_api_url": self.lyceum_url,
                "lyceum_name_prefix": "team-",
                "lyceum_owner_pattern": r"^team-(?P<owner>[a-z]+)-",
                "lyceum_vm_ttl": timedelta(hours=72),
                "lyceum_run_max_wall_clock": timedelta(hours=24),
                **changes,
            }
        )
        client = LyceumClient.connect(lyceum.lyceum_api_url, LYCEUM_KEY, sleep=lambda _s: None)
        ledger = ProviderLedger(self.factory.dynamodb(), names.LEDGER_TABLE, "lyceum")
        return run_lyceum_sweep(client, lyceum, settings, self.clock, ledger=ledger, notifier=self.notifier)

    def hourly(self, hours: int, sweep: Any) -> list[ProviderSweepResult]:
        """One sweep an hour, as the deployed schedule runs it."""
        results = []
        for _ in range(hours):
            self.clock.at += HOUR
            results.append(sweep())
        return results

    def ledger_text(self) -> str:
        items = self.factory.dynamodb().scan(TableName=names.LEDGER_TABLE)["Items"]
        return json.dumps(items)


@pytest.fixture
def world(factory: ClientFactory) -> Iterator[World]:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    clock = Clock()
    runpod = RunpodEmulator(now=clock)
    lyceum = LyceumEmulator(clock=clock)
    with runpod.serving() as runpod_url, serve(lyceum) as lyceum_url:
        yield World(factory, clock, runpod, runpod_url, lyceum, lyceum_url)


def of(result: ProviderSweepResult, provider_id: str, provider: str = "runpod") -> Decision:
    found = [d for d in result.result.decisions if d.resource_id == f"{provider}:{provider_id}"]
    assert len(found) == 1, [d.resource_id for d in result.result.decisions]
    return found[0]


def actions_of(results: list[ProviderSweepResult], provider_id: str, provider: str = "runpod") -> list[str]:
    return [d.action for r in results for d in r.result.decisions if d.resource_id == f"{provider}:{provider_id}"]


# -- RunPod: the rules through the whole cycle ---------------------------------------------------------------


def test_an_idle_pod_is_marked_once_idle_for_the_whole_window_and_stopped_after_grace_and_lag(world: World) -> None:
    idle = world.runpod.seed_pod("train-ana-llama", gpu_util=(0.0, 1.0), age=timedelta(hours=10))
    busy = world.runpod.seed_pod("train-bo-bert", gpu_util=(80.0,), age=timedelta(hours=10))
    first = world.sweep_runpod()
    assert first.error is None and [d.resource_id for d in first.result.decisions] == []  # one sample is no window
    results = world.hourly(2, world.sweep_runpod)
    marked = of(results[-1], idle)
    assert (marked.action, marked.announced, marked.outcome, marked.owner) == ("mark", "stop", "done", "ana")
    assert marked.cleanup_after == world.clock.at + GRACE
    due = world.clock.at + GRACE
    results = world.hourly(24, world.sweep_runpod)
    assert set(actions_of(results, idle)) == {"keep"}  # the grace ends at the last of these; the lag is not over
    assert world.runpod.pods[idle].status == "RUNNING"
    stopped = of(world.hourly(1, world.sweep_runpod)[0], idle)
    assert world.clock.at >= due + LAG
    assert (stopped.action, stopped.outcome) == ("stop", "done")
    assert world.runpod.pods[idle].status == "EXITED"
    assert world.runpod.pods[busy].status == "RUNNING"
    told = [text for _, text in world.notifier.messages if idle in text]
    assert len(told) == 2 and "mark" in told[0] and "stop" in told[1]  # one notice per mark and one for its act


def test_a_pod_used_during_its_grace_loses_its_mark_and_starts_again(world: World) -> None:
    pod = world.runpod.seed_pod("train-ana-llama", gpu_util=(0.0,), age=timedelta(hours=10))
    results = [world.sweep_runpod(), *world.hourly(2, world.sweep_runpod)]
    assert actions_of(results, pod) == ["mark"]
    world.runpod.pods[pod].gpu_util = (70.0,)
    assert of(world.hourly(1, world.sweep_runpod)[0], pod).action == "unmark"
    world.runpod.pods[pod].gpu_util = (0.0,)
    # Idle again: a fresh window of samples, then a fresh mark and a full grace; nothing is stopped meanwhile.
    results = world.hourly(26, world.sweep_runpod)
    assert "stop" not in actions_of(results, pod)
    # The busy sample stays in the window for two sweeps; the third sees a whole idle window again.
    assert [actions_of([r], pod) for r in results[:3]] == [[], [], ["mark"]]
    assert world.runpod.pods[pod].status == "RUNNING"


def test_a_gpu_reading_missing_in_grace_keeps_the_mark_without_a_notice(world: World) -> None:
    pod = world.runpod.seed_pod("train-ana-llama", gpu_util=(0.0,), age=timedelta(hours=10))
    world.sweep_runpod()
    world.hourly(2, world.sweep_runpod)
    told = len(world.notifier.messages)
    world.runpod.pods[pod].gpu_util = ()
    world.runpod.pods[pod].gpu_memory_util = ()
    unseen = of(world.hourly(1, world.sweep_runpod)[0], pod)
    assert (unseen.action, unseen.outcome) == ("keep", "unobserved")
    assert len(world.notifier.messages) == told


def test_an_exited_pod_is_terminated_once_exited_longer_than_the_max_age_counted_from_first_sight(
    world: World,
) -> None:
    pod = world.runpod.seed_pod("train-cy-old", status="EXITED", age=timedelta(days=30))
    results = [world.sweep_runpod(), *world.hourly(6, world.sweep_runpod)]
    # RunPod does not say when it exited: the six hours count from this sweep's first sight of it.
    assert actions_of(results, pod) == ["mark"]
    assert of(results[-1], pod).announced == "terminate"
    results = world.hourly(25, world.sweep_runpod)
    assert actions_of(results, pod)[-1] == "terminate" and results[-1].result.decisions[0].outcome == "done"
    assert pod not in world.runpod.pods


def test_a_locked_pod_is_protected_and_never_stopped(world: World) -> None:
    pod = world.runpod.seed_pod("train-ana-lock", gpu_util=(0.0,), locked=True, age=timedelta(hours=10))
    results = [world.sweep_runpod(), *world.hourly(30, world.sweep_runpod)]
    assert set(actions_of(results, pod)) == {"keep"}
    assert of(results[-1], pod).protections == ("locked",)
    assert world.runpod.pods[pod].status == "RUNNING"


def test_an_orphaned_network_volume_is_deleted_after_grace_since_first_seen_unmounted_and_a_mounted_one_stays(
    world: World,
) -> None:
    orphan = world.runpod.seed_volume("train-ana-data")
    used = world.runpod.seed_volume("train-bo-data")
    world.runpod.seed_pod("train-bo-job", gpu_util=(90.0,), volume_ids=(used,), age=timedelta(hours=10))
    results = [world.sweep_runpod(), *world.hourly(24, world.sweep_runpod)]
    assert actions_of(results, orphan) == ["mark"]
    results = world.hourly(25, world.sweep_runpod)
    assert actions_of(results, orphan)[-1] == "delete"
    assert orphan not in world.runpod.volumes and used in world.runpod.volumes
    assert actions_of(results, used) == []


def test_with_endpoints_unread_an_orphaned_volume_is_kept_as_mounts_unknown(world: World) -> None:
    orphan = world.runpod.seed_volume("train-ana-data")
    world.runpod.endpoints_refused = 500
    results = [world.sweep_runpod()]
    results += world.hourly(60, world.sweep_runpod)
    assert set(actions_of(results, orphan)) == {"keep"}
    assert of(results[-1], orphan).protections == ("mounts-unknown",)
    assert orphan in world.runpod.volumes


def test_an_unreadable_pod_is_named_and_kept_while_the_rest_are_decided_and_no_volume_is_judged_unmounted(
    world: World,
) -> None:
    world.runpod.seed_raw_pod({"id": "pododd1", "name": "train-x", "status": "SLEEPING"})
    world.runpod.seed_raw_pod("not even an object")
    exited = world.runpod.seed_pod("train-cy-old", status="EXITED", age=timedelta(days=30))
    orphan = world.runpod.seed_volume("train-ana-data")
    results = [world.sweep_runpod(), *world.hourly(40, world.sweep_runpod)]
    last = results[-1]
    assert last.error is None
    assert of(last, "pododd1").protections == ("unreadable",)
    assert of(last, "pod #2").protections == ("unreadable",)
    assert "terminate" in actions_of(results, exited)
    assert actions_of(results, orphan) == []  # the unmounted clock never started: mounts are unknown
    assert orphan in world.runpod.volumes


def test_the_blast_radius_is_per_provider(world: World) -> None:
    pods = [world.runpod.seed_pod(f"train-cy-{n}", status="EXITED", age=timedelta(days=30)) for n in range(4)]
    capped = SETTINGS.model_copy(update={"max_actions": 1})
    results = [world.sweep_runpod(capped), *world.hourly(31, lambda: world.sweep_runpod(capped))]
    assert len([p for p in pods if p not in world.runpod.pods]) == 1  # the first sweep past grace and lag
    assert sum("blast-radius" in d.protections for d in results[-1].result.decisions) == 3
    # The rest stay marked and candidates: one a sweep, without a fresh mark or a fresh grace.
    results += world.hourly(3, lambda: world.sweep_runpod(capped))
    assert all(p not in world.runpod.pods for p in pods)
    assert all(sum(d.action == "terminate" for d in r.result.decisions) <= 1 for r in results)


def test_a_stop_that_races_the_users_own_stop_is_reported_done_not_failed(world: World) -> None:
    pod = world.runpod.seed_pod("train-ana-llama", gpu_util=(0.0,), age=timedelta(hours=10))
    world.sweep_runpod()
    world.hourly(26, world.sweep_runpod)
    world.runpod.race_user_stop(pod)
    raced = of(world.hourly(1, world.sweep_runpod)[0], pod)
    assert (raced.action, raced.outcome) == ("stop", "done")
    assert "already stopped" in raced.detail
    assert world.runpod.pods[pod].status == "EXITED"


def test_a_dry_run_decides_the_same_and_writes_nothing(world: World) -> None:
    world.runpod.seed_volume("train-ana-data")
    world.runpod.seed_pod("train-cy-old", status="EXITED", age=timedelta(days=30))
    dry = world.sweep_runpod(SETTINGS.model_copy(update={"dry_run": True}))
    assert dry.result.dry_run and dry.error is None
    assert json.loads(world.ledger_text()) == []
    assert world.notifier.messages == []
    assert all(d.outcome == "dry-run" for d in dry.result.decisions)


# -- RunPod: a revoked key, an outage, and the key kept out of everything ------------------------------------


def test_a_revoked_key_is_one_clear_error_and_the_mark_waits_in_the_ledger(world: World) -> None:
    world.runpod.echo_key_in_errors = True
    pod = world.runpod.seed_pod("train-cy-old", status="EXITED", age=timedelta(days=30))
    world.sweep_runpod()
    world.hourly(6, world.sweep_runpod)
    world.runpod.revoke_key()
    refused = world.hourly(1, world.sweep_runpod)[0]
    assert refused.error is not None and refused.error.startswith("runpod: ")
    assert "key was refused" in refused.error
    assert refused.result.decisions == () and not refused.result.recorded
    assert pod in world.runpod.pods
    everything = world.ledger_text() + json.dumps(refused.to_json()) + json.dumps(world.notifier.messages)
    assert RUNPOD_KEY not in everything


def test_the_key_is_never_in_the_ledger_notices_or_output_also_when_echoed(world: World) -> None:
    # A provider that echoes the key in a pod's name: the answer is redacted before anything reads it.
    world.runpod.seed_pod(f"train-ana-{RUNPOD_KEY}", status="EXITED", age=timedelta(days=30))
    results = [world.sweep_runpod(), *world.hourly(32, world.sweep_runpod)]
    assert any(d.action == "terminate" for r in results for d in r.result.decisions)
    everything = world.ledger_text() + json.dumps([r.to_json() for r in results]) + json.dumps(world.notifier.messages)
    assert RUNPOD_KEY not in everything


def test_a_provider_outage_leaves_the_aws_sweep_untouched_and_aws_marks_ignore_provider_sweeps(
    world: World,
) -> None:
    ec2 = world.factory.ec2(REGION)
    created = format_instant(T0 - timedelta(days=3))
    spec = [
        {
            "ResourceType": "volume",
            "Tags": [{"Key": k, "Value": v} for k, v in {tags.MANAGED: "true", tags.CREATED_AT: created}.items()],
        }
    ]
    volume = ec2.create_volume(Size=10, AvailabilityZone=f"{REGION}a", TagSpecifications=spec)["VolumeId"]
    world.runpod.seed_pod("train-cy-old", status="EXITED", age=timedelta(days=30))
    aws_ledger = DynamoDbLedger(world.factory.dynamodb(), names.LEDGER_TABLE)

    def aws_sweep() -> Any:
        return run_sweep(world.factory, SETTINGS, fixed_clock(world.clock.at), ledger=aws_ledger, notifier=None)

    assert [d.action for d in aws_sweep().decisions if d.resource_id == volume] == ["mark"]
    # RunPod's own sweeps run between AWS's and are recorded in their own partition, not as AWS sweeps.
    for _ in range(25):
        world.clock.at += HOUR
        assert world.sweep_runpod().error is None
    dead = world.runpod_settings(runpod_api_url=f"http://127.0.0.1:{free_loopback_port()}/v2")
    down = world.sweep_runpod(runpod=dead)
    assert down.error is not None and "runpod" in down.error and "no answer" in down.error
    deleted = [d for d in aws_sweep().decisions if d.resource_id == volume]
    assert [(d.action, d.outcome) for d in deleted] == [("delete", "done")]


def test_the_command_line_sweeps_aws_and_reports_a_provider_outage_as_its_own_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_RUNPOD_NAME_PREFIX", "train-")
    monkeypatch.setenv("TRAINCTL_RUNPOD_API_URL", f"http://127.0.0.1:{free_loopback_port()}/v2")
    monkeypatch.setenv("RUNPOD_API_KEY", RUNPOD_KEY)
    monkeypatch.delenv("LYCEUM_API_KEY", raising=False)
    at = format_instant(world.clock.at)
    result = run_cli(world.factory, ["sweep", "--region", REGION, "--at", at, "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert {"dry_run", "at", "regions", "summary", "decisions"} <= set(report)
    assert report["regions"] == [REGION, "runpod"]
    (runpod,) = [p for p in report["providers"] if p["provider"] == "runpod"]
    assert runpod["error"].startswith("runpod: ") and "no answer" in runpod["error"]
    assert RUNPOD_KEY not in result.output


def test_the_command_line_sweeps_only_the_providers_asked_for_and_refuses_an_unconfigured_one(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.runpod.seed_pod("train-cy-old", status="EXITED", age=timedelta(days=30))
    monkeypatch.setenv("TRAINCTL_RUNPOD_NAME_PREFIX", "train-")
    monkeypatch.setenv("TRAINCTL_RUNPOD_API_URL", world.runpod_url)
    monkeypatch.setenv("RUNPOD_API_KEY", RUNPOD_KEY)
    at = format_instant(world.clock.at)
    result = run_cli(world.factory, ["sweep", "--provider", "runpod", "--region", REGION, "--at", at, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["regions"] == ["runpod"] and report["dry_run"] is True
    assert [p["provider"] for p in report["providers"]] == ["runpod"]
    assert all(d["resource_id"].startswith("runpod:") for d in report["decisions"])
    refused = run_cli(world.factory, ["sweep", "--provider", "lyceum", "--region", REGION, "--at", at])
    assert refused.exit_code == 2 and "TRAINCTL_LYCEUM_NAME_PREFIX" in refused.output
    unknown = run_cli(world.factory, ["sweep", "--provider", "gcp", "--region", REGION, "--at", at])
    assert unknown.exit_code == 2 and "aws, runpod or lyceum" in unknown.output


# -- Lyceum -------------------------------------------------------------------------------------------------


def test_a_lyceum_vm_past_its_ttl_is_terminated_after_notice_and_a_run_past_its_cap_is_aborted(
    world: World,
) -> None:
    story = world.lyceum.seed_story()
    first = world.sweep_lyceum()
    assert first.error is None
    assert (of(first, story["past_ttl"], "lyceum").action, of(first, story["past_ttl"], "lyceum").owner) == (
        "mark",
        "alice",
    )
    assert of(first, story["run_past_cap"], "lyceum").action == "mark"
    # Lyceum reports no utilisation: the idle VM is not a candidate, nor the fresh one or the one out of scope.
    decided = {d.resource_id for d in first.result.decisions}
    assert {f"lyceum:{story[k]}" for k in ("idle", "fresh", "out_of_scope", "run_fresh")}.isdisjoint(decided)
    assert story["past_ttl"] in world.lyceum.vms  # notice first: nothing ended at the mark
    results = world.hourly(25, world.sweep_lyceum)
    assert actions_of(results, story["past_ttl"], "lyceum")[-1] == "terminate"
    assert story["past_ttl"] not in world.lyceum.vms
    assert world.lyceum.runs[story["run_past_cap"]]["status"] == "aborted"
    assert story["idle"] in world.lyceum.vms and story["out_of_scope"] in world.lyceum.vms


def test_a_lyceum_terminate_and_abort_take_their_marks_off_and_each_owner_hears_twice_only(world: World) -> None:
    story = world.lyceum.seed_story()
    ended = {story["past_ttl"]: "terminate", story["run_past_cap"]: "terminate"}
    results = [world.sweep_lyceum(), *world.hourly(28, world.sweep_lyceum)]
    for resource, act in ended.items():
        said = [(d.action, d.outcome) for r in results for d in r.result.decisions if d.resource_id.endswith(resource)]
        # Kept through the grace period, ended once, then nothing: no withdrawal to announce.
        assert [a for a in said if a[0] != "keep"] == [("mark", "done"), (act, "done")], said
        assert said[-1] == (act, "done"), said  # three sweeps after the act decide nothing about it
        told = [text for _, text in world.notifier.messages if resource in text]
        assert len(told) == 2, told  # one notice for the mark, one for its outcome
    assert story["past_ttl"] not in world.lyceum.vms and world.lyceum.runs[story["run_past_cap"]]["status"] == "aborted"
    ledger = ProviderLedger(world.factory.dynamodb(), names.LEDGER_TABLE, "lyceum")
    assert ledger.marks_written([f"lyceum:{r}" for r in ended]) == {}  # fulfilled: taken off, as on AWS


def test_a_revoked_lyceum_key_is_lyceums_error_alone(world: World) -> None:
    world.lyceum.echo_key_in_errors = True
    world.lyceum.seed_story()
    world.lyceum.revoke(LYCEUM_KEY)
    refused = world.sweep_lyceum()
    working = world.sweep_runpod()
    assert refused.error is not None and refused.error.startswith("lyceum: ")
    assert working.error is None
    assert LYCEUM_KEY not in json.dumps(refused.to_json()) + world.ledger_text()


def test_an_unreadable_lyceum_vm_is_kept_by_name_and_the_rest_decided(world: World) -> None:
    past = world.lyceum.add_vm("team-alice-a", created_at=T0 - timedelta(days=5))
    world.lyceum.add_raw_vm({"vm_id": "vm-odd", "name": "team-x", "status": "sleeping"}, "vm-odd")
    result = world.sweep_lyceum()
    assert of(result, "vm-odd", "lyceum").protections == ("unreadable",)
    assert of(result, past, "lyceum").action == "mark"
