"""The account, the stack's functions and the world the cast acts in, run on the simulated clock.

One agenda drives everything: schedule ticks of the deployed schedules, the users' steps, and deliveries
(CloudTrail records minutes late, EC2 state changes and spot warnings seconds late). Before each sweep the
metrics of the time since the last one are written in one batch: CPU and network per running instance, GPU
from the CloudWatch agent on accelerator types, and AWS/EBS per attached volume. The handlers are the deployed
ones (functions/<name>/handler.py), invoked in-process with the event EventBridge would send, the environment
the stack gives them, and a client factory whose calls are counted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import sys
import time
import traceback
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from moto import mock_aws

from bench.aws_like import queries_by_partition
from bench.timelapse.clock import Agenda, DeployedStack, SimulatedClock, deployed_stack, ticks
from bench.timelapse.deliveries import (
    ACCOUNT_ID,
    CloudTrail,
    DeliveryLag,
    spot_warning,
    state_change,
    targets,
)
from infra.prewarm_workflow import COMMAND_POLL_CAP_SECONDS, MAX_INITIALISATION_POLLS, POLL_SECONDS
from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import logger
from trainctl.aws.utilisation import GPU_METRIC, GPU_NAMESPACE, PERIOD_SECONDS
from trainctl.cli import stack_resources
from trainctl.cli.ebs_initialisation import emulated_initialisation
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.cli.ssm_agent import SsmAgents, emulated_agents
from trainctl.core.accelerators import accelerators_for
from trainctl.core.protections import Protection
from trainctl.prewarm.run import initialised_report_task

REGION = "us-east-1"
FUNCTIONS = ("cleanup_sweep", "cost_alerts", "age_guard", "spot_interruption")
SAMPLE = timedelta(seconds=PERIOD_SECONDS)
# CloudWatch keeps what the sweep reads (its idle window, a volume's grace) and more; moto keeps everything,
# and slows with it: datapoints older than this are dropped once a day.
METRICS_KEPT = timedelta(days=3)
# What EC2 passes through on the way to a state (moto jumps straight to it); each is an event of its own.
STATE_STEPS = {
    "running": ("pending", "running"),
    "stopped": ("stopping", "stopped"),
    "terminated": ("shutting-down", "terminated"),
}
# A machine at work and one at rest, as CloudWatch sees them every five minutes.
BUSY = {"cpu": 65.0, "net": 40_000_000.0, "gpu": 92.0}
IDLE = {"cpu": 0.8, "net": 20_000.0, "gpu": 0.0}
# Keeps the oracle judges (a story knows the protection holds): recorded beside the marks and actions.
WATCHED_PROTECTIONS = frozenset({str(Protection.PREWARMING)})


@dataclass
class Invocation:
    """One handler run: when, what, the API calls it made, and what it returned or raised."""

    at: datetime
    function: str
    trigger: str
    api_calls: int
    result: dict[str, Any] | None = None
    error: str = ""
    wall_seconds: float = 0.0


@dataclass
class NoticeSeen:
    """A message the topic delivered (as a queue subscribed to it receives it)."""

    at: datetime
    kind: str
    owner: str | None
    title: str
    resources: tuple[str, ...]
    # The account the notice says it speaks of (an organization run's notices name theirs); else the hub's.
    account: str = ACCOUNT_ID
    # That account as the notice itself names it (its `account` fact, else the topic message's `account`
    # attribute, which the hub adds for a member); None where it names none.
    label: str | None = None
    breach: str | None = None  # a cost notice's breach key


@dataclass
class SweepDecision:
    at: datetime
    resource_id: str
    action: str
    outcome: str
    reasons: tuple[str, ...]
    protections: tuple[str, ...]
    detail: str
    cleanup_after: str | None
    # The account whose sweep decided it: the hub's own sweep, or an organization run's child.
    account: str = ACCOUNT_ID


@dataclass
class Record:
    """Everything the time-lapse saw, for the oracle and the report."""

    seed: int
    start: datetime
    end: datetime
    invocations: list[Invocation] = field(default_factory=list)
    notices: list[NoticeSeen] = field(default_factory=list)
    decisions: dict[str, list[SweepDecision]] = field(default_factory=dict)
    # (instant, state) per instance as EC2 had it; (instant, exists) per volume and snapshot.
    states: dict[str, list[tuple[datetime, str]]] = field(default_factory=dict)
    instance_types: dict[str, str] = field(default_factory=dict)
    volume_sizes: dict[str, tuple[int, str]] = field(default_factory=dict)
    snapshot_sizes: dict[str, int] = field(default_factory=dict)
    # The instance each volume was last seen attached to (its root volume dies with it).
    volume_instance: dict[str, str] = field(default_factory=dict)
    # (instant, who and what, the error) for each call a user made that AWS refused.
    refused: list[tuple[datetime, str, str]] = field(default_factory=list)
    # age_guard's stamp as EC2 first showed it: (instant, trainctl:owner, trainctl:created-by) per resource.
    stamps: dict[str, tuple[datetime, str | None, str | None]] = field(default_factory=dict)

    def errors(self) -> list[Invocation]:
        return [i for i in self.invocations if i.error]


class World:
    """What the cast acts on: the users' EC2 client (every write reaches CloudTrail as theirs), what each instance
    runs (the SSM agent's process table and CloudWatch's load), the clock and the agenda."""

    def __init__(self, lapse: TimeLapse) -> None:
        self._lapse = lapse
        self.rng = random.Random(lapse.seed * 7919 + 1)

    @property
    def now(self) -> datetime:
        return self._lapse.clock.now()

    @property
    def start(self) -> datetime:
        return self._lapse.start

    @property
    def end(self) -> datetime:
        return self._lapse.end

    @property
    def stack(self) -> DeployedStack:
        return self._lapse.stack

    @property
    def agents(self) -> SsmAgents:
        return self._lapse.agents

    def ec2(self, user: str) -> Any:
        """The users' EC2 client, acting as `user` until the next call of this method."""
        self._lapse.cloudtrail.actor = user
        return self._lapse.users.ec2(REGION)

    def at(self, when: datetime, label: str, step: Callable[[], None]) -> None:
        if when < self._lapse.end:
            self._lapse.agenda.add(when, label, self._as_person(label, step))

    def _as_person(self, label: str, step: Callable[[], None]) -> Callable[[], None]:
        """A refused call (a volume trainctl deleted, an instance it terminated) is what the user ran into."""

        def attempt() -> None:
            try:
                step()
            except ClientError as exc:
                self._lapse.record.refused.append((self.now, label, str(exc)))

        return attempt

    def next_sweep_after(self, instant: datetime) -> datetime:
        """The first tick of the deployed sweep schedule at or after `instant`."""
        period = self.stack.schedule_of("cleanup_sweep").period
        phase = self._lapse.sweep_phase
        ticks_since = -(-(instant - self.start - phase) // period)
        return self.start + phase + max(0, ticks_since) * period

    def late_cloudtrail(self, lag: timedelta) -> None:
        """The next call's CloudTrail record arrives this late (a story that needs the tail)."""
        self._lapse.cloudtrail.next_lag = lag

    # What instances run: the SSM agent answers from this, CloudWatch gets the matching load.
    def busy(self, instance_id: str, *processes: str, gpu: bool = False) -> None:
        self.agents.run(instance_id, *processes, gpu=gpu)
        self._lapse.load.setdefault(instance_id, []).append((self.now, True))

    def idle(self, instance_id: str, *processes: str) -> None:
        """Nothing at work: `processes` may still run (a notebook server) without being training."""
        self.agents.run(instance_id, *processes)
        self._lapse.load.setdefault(instance_id, []).append((self.now, False))

    def without_agent(self, instance_id: str, *, busy: bool) -> None:
        self.agents.without_agent(instance_id)
        self._lapse.load.setdefault(instance_id, []).append((self.now, busy))

    def tag_of(self, resource_id: str, key: str) -> str | None:
        """What a person sees in the console (the harness's own read, not counted as the users' call)."""
        found = self._lapse.harness.ec2(REGION).describe_tags(
            Filters=[{"Name": "resource-id", "Values": [resource_id]}, {"Name": "key", "Values": [key]}]
        )["Tags"]
        return str(found[0]["Value"]) if found else None

    def state_of(self, instance_id: str) -> str:
        return self._lapse.instance_states().get(instance_id, "gone")

    def prewarm_workflow(self, volume_id: str, *, estimated_seconds: int, reported: Callable[[], None]) -> None:
        """The pre-warm workflow's snapshot path after its CreateVolume: poll DescribeVolumeStatus (EBS initialisation
        emulated at the volume's rate), doubling the wait from the workflow's first to its cap, until EBS says 100 %;
        then its report task and its CreateTags, then `reported`. These are Step Functions' calls, not a user's:
        they go through the harness's client, off the users' trail. Past its last poll the workflow gives up."""
        ec2 = self._lapse.harness.ec2(REGION)
        label = f"pre-warm workflow polls {volume_id}"

        def poll(seconds: int, polls: int) -> None:
            statuses = ec2.describe_volume_status(VolumeIds=[volume_id])["VolumeStatuses"]
            details = statuses[0].get("InitializationStatusDetails") if statuses else None
            if details is not None and int(details.get("Progress", 0)) >= 100:
                event = {"volume_id": volume_id, "estimated_seconds": estimated_seconds, "initialization": details}
                report = initialised_report_task(event, ec2)
                ec2.create_tags(Resources=[volume_id], Tags=report["tags"])
                reported()
                return
            seconds, polls = seconds * 2, polls + 1
            if polls > MAX_INITIALISATION_POLLS:
                return
            seconds = min(seconds, COMMAND_POLL_CAP_SECONDS)
            self.at(self.now + timedelta(seconds=seconds), label, lambda: poll(seconds, polls))

        self.at(self.now + timedelta(seconds=POLL_SECONDS), label, lambda: poll(POLL_SECONDS, 0))

    def spot_reclaim(self, instance_id: str, at: datetime) -> None:
        """EC2 takes a spot instance back: the warning, then the termination two minutes later (not a user's call)."""

        def warn() -> None:
            event = spot_warning(instance_id, self.now, REGION)
            self._lapse.deliver_later(event, self.now + self._lapse.lag.eventbridge())
            self.at(self.now + timedelta(minutes=2), f"EC2 reclaims {instance_id}", reclaim)

        def reclaim() -> None:
            self._lapse.harness.ec2(REGION).terminate_instances(InstanceIds=[instance_id])

        self.at(at, f"spot warning for {instance_id}", warn)


class TimeLapse:
    """Run `cast` for `days` from `start` under the deployed stack's schedules; returns the Record."""

    def __init__(
        self,
        *,
        days: float,
        seed: int,
        cast: Callable[[World], list[Any]],
        start: datetime | None = None,
        overrides: dict[str, Any] | None = None,
        quiet: bool = True,
        organization: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        # A Monday, 00:00 UTC: the stories speak of weekdays and Fridays.
        self.start = start or datetime(2026, 3, 2, tzinfo=UTC)
        self.end = self.start + timedelta(days=days)
        self.stack = deployed_stack(overrides)
        self.cast_builder = cast
        self.quiet = quiet
        self.lag = DeliveryLag(random.Random(seed * 31 + 7))
        self.agenda = Agenda()
        self.clock = SimulatedClock(self.start)
        # Schedules start when the stack is deployed: a few minutes into the story, not on the hour.
        self.sweep_phase = timedelta(minutes=7)
        self.load: dict[str, list[tuple[datetime, bool]]] = {}
        # Attachments the users made, as (attached, detached or None) per volume.
        self.attachments: dict[str, list[tuple[datetime, datetime | None]]] = {}
        self.record = Record(seed=seed, start=self.start, end=self.end)
        self.cast: list[Any] = []
        self._metrics_written_until = self.start
        self._known_states: dict[str, str] = {}
        self._calls = 0
        # Organization mode (bench/timelapse/accounts.py): a member account beside the hub's, and what looks at it
        # after each instant as _watch_states looks at the hub's.
        self.organization = organization
        self.second_account: Any = None
        self.watchers: list[Callable[[], None]] = []

    # ---- set-up --------------------------------------------------------------------------------------------

    def run(self) -> Record:
        saved = dict(os.environ)
        try:
            os.environ.update(
                {
                    "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": REGION,
                    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
                    "POWERTOOLS_TRACE_DISABLED": "true",
                }
            )
            for key in [k for k in os.environ if k.startswith("TRAINCTL_") or k == "AWS_ENDPOINT_URL"]:
                del os.environ[key]
            # moto sorts the whole table for each DynamoDB Query; DynamoDB reads the partition (bench.aws_like).
            with (
                mock_aws(),
                queries_by_partition(),
                emulated_initialisation(),
                self.clock,
                emulated_agents(SsmAgents()) as agents,
            ):
                self.agents = agents
                self._set_up()
                self._play()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return self.record

    def _set_up(self) -> None:
        self.harness = ClientFactory(REGION)
        resources = stack_resources.ensure_on_emulator(self.harness, (REGION,))
        os.environ.update(
            self.stack.environment(
                account_id=ACCOUNT_ID,
                topic_arn=resources.topic_arn,
                recovery_state_machine_arn=resources.recovery_state_machine or "",
            )
        )
        sqs = self.harness.client("sqs", REGION)
        self.queue_url = sqs.create_queue(QueueName="timelapse-notices")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.harness.sns().subscribe(TopicArn=resources.topic_arn, Protocol="sqs", Endpoint=queue_arn)
        self.trainctl = ClientFactory(REGION)
        self.trainctl.register("before-call", self._count_call)
        self.users = ClientFactory(REGION)
        self.cloudtrail = CloudTrail(self.deliver_later, self.lag, self.clock.now)
        self.users.register("provide-client-params.ec2", self.cloudtrail.keep_params)
        self.users.register("after-call.ec2", self.cloudtrail.record)
        self.users.register("after-call.ec2.AttachVolume", self._attached)
        self.users.register("after-call.ec2.DetachVolume", self._detached)
        self.handlers = {function: self._handler(function) for function in FUNCTIONS}
        self.world = World(self)
        self.cast = self.cast_builder(self.world)
        for function in ("cleanup_sweep", "cost_alerts"):
            schedule = self.stack.schedule_of(function)
            phase = self.sweep_phase if function == "cleanup_sweep" else self.sweep_phase + timedelta(minutes=3)
            for at in ticks(self.start, self.end, schedule.period, phase=phase):
                self.agenda.add(at, f"schedule {schedule.expression} -> {function}", self._scheduled(function))
        for day in ticks(self.start, self.end, timedelta(days=1), phase=timedelta(hours=12)):
            self.agenda.add(day, "CloudWatch retention", self._prune_metrics)
        if self.organization:
            from bench.timelapse.accounts import SecondAccount  # it builds on this module

            self.second_account = SecondAccount(self)

    def _handler(self, function: str) -> types.ModuleType:
        module = load_handler(function)
        module.client_factory = lambda: self.trainctl  # type: ignore[attr-defined]
        module.deployed_settings.cache_clear()
        if hasattr(module, "sleep"):
            module.sleep = lambda _seconds: None  # the spot handler's waits for SSM: moto answers at once
        return module

    def _attached(self, parsed: dict[str, Any], **_: Any) -> None:
        if "VolumeId" in parsed:
            self.attachments.setdefault(str(parsed["VolumeId"]), []).append((self.clock.now(), None))

    def _detached(self, parsed: dict[str, Any], **_: Any) -> None:
        found = self.attachments.get(str(parsed.get("VolumeId", "")), [])
        if found and found[-1][1] is None:
            found[-1] = (found[-1][0], self.clock.now())

    def _count_call(self, **_: Any) -> None:
        self._calls += 1

    # ---- the run -------------------------------------------------------------------------------------------

    def _play(self) -> None:
        while (entry := self.agenda.pop()) is not None:
            if entry.at >= self.end:
                break
            self.clock.move_to(entry.at)
            entry.run()
            self._watch_states()
            for watch in self.watchers:
                watch()
        self.clock.move_to(self.end)
        self._watch_states()
        for watch in self.watchers:
            watch()

    def deliver_later(self, event: dict[str, Any], at: datetime) -> None:
        def deliver() -> None:
            for function in targets(event):
                self.invoke(function, event, trigger=f"{event['detail-type']}")

        self.agenda.add(at, f"deliver {event['detail-type']}", deliver)

    def _scheduled(self, function: str) -> Callable[[], None]:
        schedule = self.stack.schedule_of(function)

        def tick() -> None:
            if function == "cleanup_sweep":
                self._write_metrics()
            self.invoke(function, schedule.event(), trigger=schedule.expression)

        return tick

    def invoke(self, function: str, event: dict[str, Any], *, trigger: str) -> Invocation:
        """As Lambda runs the deployed handler: the event, a context, the function's own logs kept out of sight."""
        module = self.handlers[function]
        at = self.clock.now()
        before = self._calls
        invocation = Invocation(at, function, trigger, 0)
        began = time.perf_counter()
        sink: Any = sys.stderr if not self.quiet else io.StringIO()
        logger.registered_handler.stream = sink  # type: ignore[attr-defined]
        with contextlib.redirect_stdout(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                invocation.result = module.lambda_handler(event, LocalContext(function_name=f"trainctl-{function}"))
            except Exception as exc:
                invocation.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}"
        invocation.api_calls = self._calls - before
        invocation.wall_seconds = time.perf_counter() - began
        self.record.invocations.append(invocation)
        if function == "cleanup_sweep" and invocation.result:
            self._keep_decisions(at, invocation.result)
        self._read_notices()
        return invocation

    def _keep_decisions(self, at: datetime, result: dict[str, Any], account: str = ACCOUNT_ID) -> None:
        for d in result.get("decisions", []):
            watched = WATCHED_PROTECTIONS.intersection(d.get("protections", []))
            if d["action"] == "keep" and d.get("outcome") != "failed" and not d.get("cleanup_after") and not watched:
                continue
            self.record.decisions.setdefault(d["resource_id"], []).append(
                SweepDecision(
                    at,
                    d["resource_id"],
                    d["action"],
                    d.get("outcome", ""),
                    tuple(d.get("reasons", [])),
                    tuple(d.get("protections", [])),
                    d.get("detail", ""),
                    d.get("cleanup_after"),
                    account,
                )
            )

    def _read_notices(self) -> None:
        sqs = self.harness.client("sqs", REGION)
        while True:
            batch = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return
            for message in batch:
                body = json.loads(message["Body"])
                notice = json.loads(body["Message"])
                facts = notice.get("facts") or {}
                attribute = (body.get("MessageAttributes") or {}).get("account") or {}
                label = facts.get("account") or attribute.get("Value")
                self.record.notices.append(
                    NoticeSeen(
                        self.clock.now(),
                        notice.get("kind", "?"),
                        notice.get("owner"),
                        notice.get("title", ""),
                        tuple(notice.get("resources", [])),
                        str(label or ACCOUNT_ID),
                        str(label) if label else None,
                        facts.get("breach"),
                    )
                )
            sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)],
            )

    # ---- EC2 as EventBridge hears it -------------------------------------------------------------------------

    def _ec2_backend(self) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[ACCOUNT_ID][REGION]

    def instance_states(self) -> dict[str, str]:
        return {i.id: i.state for i in self._ec2_backend().all_instances()}

    def _watch_states(self) -> None:
        """Every instance state EC2 reached since the last look becomes EventBridge's state-change events."""
        now = self.clock.now()
        backend = self._ec2_backend()
        for instance in backend.all_instances():
            state = instance.state
            if self._known_states.get(instance.id) == state:
                continue
            self._known_states[instance.id] = state
            self.record.states.setdefault(instance.id, []).append((now, state))
            self.record.instance_types[instance.id] = instance.instance_type
            for step, name in enumerate(STATE_STEPS.get(state, (state,))):
                event = state_change(instance.id, name, now + timedelta(seconds=step), REGION)
                self.deliver_later(event, now + timedelta(seconds=step) + self.lag.eventbridge())
        volumes = backend.volumes
        for volume_id, volume in volumes.items():
            if volume.attachment is not None:
                self.record.volume_instance[volume_id] = volume.attachment.instance.id
            if volume_id not in self.record.volume_sizes:
                self.record.volume_sizes[volume_id] = (int(volume.size), str(volume.volume_type))
                self.record.states.setdefault(volume_id, []).append((now, "exists"))
        for volume_id in self.record.volume_sizes:
            history = self.record.states[volume_id]
            if volume_id not in volumes and history[-1][1] != "deleted":
                history.append((now, "deleted"))
        snapshots = backend.snapshots
        for snapshot_id, snapshot in snapshots.items():
            if snapshot_id not in self.record.snapshot_sizes:
                self.record.snapshot_sizes[snapshot_id] = int(snapshot.volume.size)
                self.record.states.setdefault(snapshot_id, []).append((now, "exists"))
        for snapshot_id in self.record.snapshot_sizes:
            history = self.record.states[snapshot_id]
            if snapshot_id not in snapshots and history[-1][1] != "deleted":
                history.append((now, "deleted"))

    # ---- CloudWatch --------------------------------------------------------------------------------------------

    def _write_metrics(self) -> None:
        """The datapoints since the last sweep, in batches: what CloudWatch would hold by now."""
        now = self.clock.now()
        since = self._metrics_written_until
        self._metrics_written_until = now
        backend = self._ec2_backend()
        ec2_data: list[dict[str, Any]] = []
        agent_data: list[dict[str, Any]] = []
        ebs_data: list[dict[str, Any]] = []
        running_by_id = {i.id: i for i in backend.all_instances() if i.state == "running"}
        samples = list(ticks(since, now, SAMPLE))
        for instance_id, instance in running_by_id.items():
            timeline = self.load.get(instance_id, [])
            has_gpu = accelerators_for(instance.instance_type) is not None
            for at in samples:
                if at < _moto_instant(instance.launch_time):
                    continue
                load = BUSY if _busy_at(timeline, at) else IDLE
                dimensions = [{"Name": "InstanceId", "Value": instance_id}]
                ec2_data += [
                    {"MetricName": "CPUUtilization", "Dimensions": dimensions, "Timestamp": at, "Value": load["cpu"]},
                    {"MetricName": "NetworkIn", "Dimensions": dimensions, "Timestamp": at, "Value": load["net"]},
                    {"MetricName": "NetworkOut", "Dimensions": dimensions, "Timestamp": at, "Value": load["net"] / 4},
                ]
                if has_gpu:
                    agent_data.append(
                        {"MetricName": GPU_METRIC, "Dimensions": dimensions, "Timestamp": at, "Value": load["gpu"]}
                    )
        # EBS publishes while a volume is attached to a running instance: also an attachment made and undone
        # since the last sweep, which the volume no longer shows.
        spans = {volume_id: list(found) for volume_id, found in self.attachments.items()}
        for volume_id, volume in backend.volumes.items():
            attachment = volume.attachment
            if attachment is not None and attachment.instance.id in running_by_id:
                spans.setdefault(volume_id, []).append((_moto_instant(attachment.attach_time), None))
        for volume_id, found in spans.items():
            dimensions = [{"Name": "VolumeId", "Value": volume_id}]
            for at in samples:
                if not any(began <= at and (ended is None or at < ended) for began, ended in found):
                    continue
                ebs_data += [
                    {"MetricName": "VolumeReadOps", "Dimensions": dimensions, "Timestamp": at, "Value": 9000.0},
                    {"MetricName": "VolumeIdleTime", "Dimensions": dimensions, "Timestamp": at, "Value": 10.0},
                ]
        cloudwatch = self.harness.cloudwatch(REGION)
        for namespace, data in (("AWS/EC2", ec2_data), (GPU_NAMESPACE, agent_data), ("AWS/EBS", ebs_data)):
            for start in range(0, len(data), 1000):
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + 1000])

    def _prune_metrics(self) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        backend = cloudwatch_backends[ACCOUNT_ID][REGION]
        oldest = self.clock.now() - METRICS_KEPT
        backend.metric_data = [d for d in backend.metric_data if _moto_instant(d.timestamp) >= oldest]


def _busy_at(timeline: list[tuple[datetime, bool]], at: datetime) -> bool:
    busy = False
    for changed_at, state in timeline:
        if changed_at > at:
            break
        busy = state
    return busy


def _moto_instant(value: datetime) -> datetime:
    """moto keeps naive UTC datetimes."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
