"""RunPod and Lyceum in the time-lapse: their emulators on loopback for the run, on the simulated clock, swept by the
deployed provider_sweep handler on the stack's provider schedule, with stories whose truth the oracle judges.

The emulators read the time as the handlers do (datetime.now, which the time-lapse's clock moves), so a pod's
uptime and a VM's age follow the story. Each configured provider runs on the sweep's schedule, as infra.providers
deploys it (`{"task": "provider_sweep", "provider": ...}`), a few minutes after the AWS sweep; its key is read from
Secrets Manager (moto) as deployed. Its decisions join the AWS sweep's in the record under the provider's ledger
ids (`runpod:<id>`, `lyceum:<id>`), so the oracle judges them by the same bounds: an act no earlier than a full
grace after the resource became a candidate, no later than

    since (+ idle window) + grace + delivery lag + 2 sweep periods

and never on a resource in use or never a candidate.

Stories: a forgotten idle pod (stopped), a busy pod and a locked idle pod (never touched), a pod exited long ago
(terminated once exited for TRAINCTL_STOPPED_MAX_AGE), an orphaned network volume (deleted once unmounted for the
grace, and a grace after its mark), a volume a serverless endpoint mounts (kept), a Lyceum VM past its
time-to-live (terminated after notice) and one out of scope (never touched).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from bench.timelapse.cast import DAY, HOUR, Story, truths_of
from bench.timelapse.harness import REGION, Record, TimeLapse, World
from bench.timelapse.oracle import DESTRUCTIVE, Judgement, Promise, Truth, judge
from trainctl.cli.lyceum_emulator import EMULATOR_KEY as LYCEUM_KEY
from trainctl.cli.lyceum_emulator import LyceumEmulator, serve
from trainctl.cli.runpod_emulator import EMULATOR_KEY as RUNPOD_KEY
from trainctl.cli.runpod_emulator import RunpodEmulator
from trainctl.providers.sweep import ledger_id

FUNCTION = "provider_sweep"
# What a deployment that sweeps both providers sets (the secrets are the ones the stack names).
PROVIDER_SETTINGS: dict[str, Any] = {
    "runpod_name_prefix": "train-",
    "runpod_owner_pattern": "^train-(?P<owner>[a-z]+)-",
    "runpod_key_secret": "trainctl/runpod-api-key",
    "lyceum_name_prefix": "team-",
    "lyceum_owner_pattern": "^team-(?P<owner>[a-z]+)-",
    "lyceum_key_secret": "trainctl/lyceum-api-key",
    "lyceum_vm_ttl": "72h",
}
# The provider sweeps start a few minutes after the AWS sweep's tick, as separately created schedules do.
PROVIDER_PHASE = timedelta(minutes=4)
LYCEUM_TTL = timedelta(hours=72)


class ProviderWorld:
    """The two emulators, served on loopback while the time-lapse runs, and the provider sweeps on its agenda."""

    def __init__(self) -> None:
        self.runpod = RunpodEmulator()
        self.lyceum = LyceumEmulator()
        self.urls: dict[str, str] = {}
        # What a story learns when trainctl acts on its resource (ledger id -> told the action and its instant).
        self.on_done: dict[str, Callable[[str, datetime], None]] = {}

    @contextlib.contextmanager
    def serving(self) -> Iterator[ProviderWorld]:
        with self.runpod.serving() as runpod_url, serve(self.lyceum) as lyceum_url:
            self.urls = {"runpod": runpod_url, "lyceum": lyceum_url}
            yield self

    def overrides(self) -> dict[str, Any]:
        """The stack's provider settings, with the API URLs of the emulators serving now."""
        return {
            **PROVIDER_SETTINGS,
            "runpod_api_url": self.urls["runpod"],
            "lyceum_api_url": self.urls["lyceum"],
        }

    def deploy(self, world: World) -> None:
        """What the stack deploys for the providers, inside the running time-lapse: each provider's environment,
        its key in Secrets Manager, its handler, and its schedule's ticks on the agenda."""
        lapse: TimeLapse = world._lapse
        config = lapse.stack.config
        secrets = lapse.harness.client("secretsmanager", REGION)
        keys = {"runpod": RUNPOD_KEY, "lyceum": LYCEUM_KEY}
        for provider in config.providers:
            os.environ.update(config.provider_environment(provider))
            secret = config.runpod.runpod_key_secret if provider == "runpod" else config.lyceum.lyceum_key_secret
            secrets.create_secret(Name=secret, SecretString=keys[provider])
        handler = lapse._handler(FUNCTION)
        handler.provider_settings.cache_clear()
        handler.api_key.cache_clear()
        lapse.handlers[FUNCTION] = handler
        expression = config.options.sweep_schedule
        period = lapse.stack.schedule_of("cleanup_sweep").period
        at = lapse.start + lapse.sweep_phase + PROVIDER_PHASE
        while at < lapse.end:
            for provider in config.providers:
                lapse.agenda.add(at, f"schedule {expression} -> {FUNCTION} {provider}", self._tick(lapse, provider))
            at += period

    def _tick(self, lapse: TimeLapse, provider: str) -> Callable[[], None]:
        def tick() -> None:
            invocation = lapse.invoke(FUNCTION, {"task": FUNCTION, "provider": provider}, trigger=provider)
            if not invocation.result:
                return
            lapse._keep_decisions(invocation.at, invocation.result)
            for decision in invocation.result.get("decisions", []):
                told = self.on_done.get(decision["resource_id"])
                if told and decision["action"] in DESTRUCTIVE and decision.get("outcome") == "done":
                    told(decision["action"], invocation.at)

        return tick


class ProviderStory(Story):
    """A person's resources at a provider: seeded in its emulator at `when`, judged under their ledger ids."""

    def __init__(self, world: World, providers: ProviderWorld, user: str, story: str) -> None:
        super().__init__(world, user, story)
        self.providers = providers


class ForgottenPod(ProviderStory):
    """A RunPod pod left running with its GPUs idle: stopped within idle window + grace + lag + 2 periods; then,
    never started again, terminated once seen exited for the stopped max age."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "ana", "forgotten RunPod pod")
        self.at(when, self.start)

    def start(self) -> None:
        pod = self.providers.runpod.seed_pod("train-ana-llama", gpu_util=(0.0, 1.0), age=2 * HOUR)
        truth = self.truth(ledger_id("runpod", pod), "instance")
        truth.promises.append(Promise("idle RunPod pod stopped", self.world.now, "stop", idle=True))
        stopped_max_age = self.world.stack.sweep_setting("stopped_max_age")

        def stopped(action: str, at: datetime) -> None:
            if action == "stop":  # the next sweep sees it exited: its clock starts then, a sweep period later
                period = self.world.stack.schedule_of("cleanup_sweep").period
                since = at + period + stopped_max_age
                truth.promises.append(Promise("stopped RunPod pod terminated", since, "terminate"))

        self.providers.on_done[truth.resource_id] = stopped


class BusyPod(ProviderStory):
    """A pod training the whole run: never touched."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "bo", "busy RunPod pod")
        self.at(when, self.start)

    def start(self) -> None:
        pod = self.providers.runpod.seed_pod("train-bo-bert", gpu_util=(91.0, 88.0), age=HOUR)
        self.truth(ledger_id("runpod", pod), "instance").begin_use(self.world.now)


class LockedPod(ProviderStory):
    """An idle pod its owner locked: RunPod refuses to stop it, and trainctl never tries."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "di", "locked RunPod pod")
        self.at(when, self.start)

    def start(self) -> None:
        pod = self.providers.runpod.seed_pod("train-di-eval", gpu_util=(0.0,), locked=True, age=3 * HOUR)
        # Locked is its owner saying it is in use, whatever its GPUs show.
        self.truth(ledger_id("runpod", pod), "instance").begin_use(self.world.now)


class LongExitedPod(ProviderStory):
    """A pod exited and forgotten: terminated once seen exited for the stopped max age."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "cy", "long-exited RunPod pod")
        self.at(when, self.start)

    def start(self) -> None:
        pod = self.providers.runpod.seed_pod("train-cy-sweep", status="EXITED", age=2 * DAY)
        truth = self.truth(ledger_id("runpod", pod), "instance")
        # RunPod says not when a pod exited: the clock starts when a sweep first sees it exited.
        stopped_max_age = self.world.stack.sweep_setting("stopped_max_age")
        truth.promises.append(Promise("exited RunPod pod terminated", self.world.now + stopped_max_age, "terminate"))


class OrphanedVolume(ProviderStory):
    """A network volume nothing mounts: a candidate once unmounted for the grace, deleted a grace after its mark."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "gus", "orphaned RunPod volume")
        self.at(when, self.start)

    def start(self) -> None:
        volume = self.providers.runpod.seed_volume("train-gus-scratch", size_gb=200)
        truth = self.truth(ledger_id("runpod", volume), "volume")
        grace = self.world.stack.sweep_setting("grace_period")
        truth.promises.append(Promise("orphaned RunPod volume deleted", self.world.now + grace, "delete"))


class EndpointVolume(ProviderStory):
    """A network volume only a serverless endpoint's workers mount: kept (`endpoint-mounted`)."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "eve", "RunPod volume an endpoint mounts")
        self.at(when, self.start)

    def start(self) -> None:
        volume = self.providers.runpod.seed_volume("train-eve-weights", size_gb=80)
        self.providers.runpod.seed_endpoint("train-eve-serve", volume_ids=(volume,))
        self.truth(ledger_id("runpod", volume), "volume").begin_use(self.world.now)


class LyceumPastTtl(ProviderStory):
    """A Lyceum VM older than its time-to-live: terminated after notice (Lyceum has no stop)."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "alice", "Lyceum VM past its ttl")
        self.at(when, self.start)

    def start(self) -> None:
        now = self.world.now
        vm = self.providers.lyceum.add_vm("team-alice-finetune", created_at=now - LYCEUM_TTL - 8 * HOUR, billed=212.4)
        truth = self.truth(ledger_id("lyceum", vm), "instance")
        truth.promises.append(Promise("Lyceum VM past its ttl terminated", now, "terminate"))


class LyceumTeamVms(ProviderStory):
    """Three VMs a team uses for two days and terminates itself, well within the ttl: never touched. They are also
    why the VM past its ttl can be acted on at all: the blast radius allows a quarter of the VMs in scope a sweep,
    and a quarter of one VM is none."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "carol", "Lyceum VMs used and ended in their ttl")
        self.at(when, self.start)

    def start(self) -> None:
        for n in range(3):
            vm = self.providers.lyceum.add_vm(f"team-carol-eval{n}", created_at=self.world.now, hardware_profile="h100")
            truth = self.truth(ledger_id("lyceum", vm), "instance")
            truth.begin_use(self.world.now)
            self.at(self.world.now + 2 * DAY + n * HOUR, self._ended(vm, truth))

    def _ended(self, vm: str, truth: Truth) -> Callable[[], None]:
        def end() -> None:
            with self.providers.lyceum.lock:
                self.providers.lyceum.vms.pop(vm, None)
            truth.end_use(self.world.now)
            truth.ended_by_others = self.world.now

        return end


class LyceumOutOfScope(ProviderStory):
    """A VM outside the name prefix, long past any ttl: never touched."""

    def __init__(self, world: World, providers: ProviderWorld, when: datetime) -> None:
        super().__init__(world, providers, "dave", "Lyceum VM out of scope")
        self.at(when, self.start)

    def start(self) -> None:
        vm = self.providers.lyceum.add_vm("personal-dave", created_at=self.world.now - 9 * DAY)
        self.truth(ledger_id("lyceum", vm), "instance").begin_use(self.world.now)


def provider_cast(world: World, providers: ProviderWorld) -> list[Story]:
    """The providers deployed in the running time-lapse, and their stories, a few hours apart from the start."""
    providers.deploy(world)
    start = world.start
    return [
        ForgottenPod(world, providers, start + 1 * HOUR),
        BusyPod(world, providers, start + 1 * HOUR),
        LockedPod(world, providers, start + 2 * HOUR),
        LongExitedPod(world, providers, start + 3 * HOUR),
        OrphanedVolume(world, providers, start + 5 * HOUR),
        EndpointVolume(world, providers, start + 5 * HOUR),
        LyceumTeamVms(world, providers, start + 6 * HOUR),
        LyceumPastTtl(world, providers, start + 8 * HOUR),
        LyceumOutOfScope(world, providers, start + 8 * HOUR),
    ]


def with_providers(cast: Callable[[World], list[Story]], providers: ProviderWorld) -> Callable[[World], list[Story]]:
    """A cast builder that also deploys the providers and tells their stories."""
    return lambda world: [*cast(world), *provider_cast(world, providers)]


def provider_time_lapse(
    *,
    days: float,
    seed: int,
    cast: Callable[[World], list[Story]],
    overrides: dict[str, Any] | None = None,
    quiet: bool = True,
) -> tuple[Record, Judgement, float]:
    """One time-lapse of `cast` with the providers' stories beside it: the record, the oracle's judgement and the
    wall time in seconds. The emulators serve for the run only."""
    began = time.perf_counter()
    providers = ProviderWorld()
    with providers.serving():
        lapse = TimeLapse(
            days=days,
            seed=seed,
            cast=with_providers(cast, providers),
            overrides={**(overrides or {}), **providers.overrides()},
            quiet=quiet,
        )
        record = lapse.run()
    stories: list[Story] = lapse.cast
    judgement = judge(record, truths_of(stories), lapse.stack)
    judgement.stories = list(dict.fromkeys(story.story for story in stories))
    return record, judgement, time.perf_counter() - began
