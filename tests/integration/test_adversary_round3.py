"""Adversarial review, round 3: the mark's life at the deployed cadence (2a954fa, issue 24).

Each `test_hole_*` is a sequence (hourly sweeps, a day's grace, the emulated SSM agents, CloudWatch answering in
odd shapes, a person or IAM refusing a call) after which a promise of 2a954fa or of the README's "How the sweep
decides" is broken. Each failed on main at d94b32e. The docstring gives the sequence and the promise.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from botocore.awsrequest import AWSResponse

from tests.integration.test_mark_life import DUE, HOUR, action_of, hourly, notices_naming
from tests.integration.test_sweep_adversary import GRACE, REGION, SETTINGS, T0, ZONE, Account, decision
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.ssm_agent import SsmAgents
from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.observations import Utilisation
from trainctl.sweep.run import SweepResult

IDLE = Utilisation(0.5, 10.0, 0.0)
BUSY = Utilisation(90.0, 1e7, 90.0)


@dataclass
class Metrics:
    """What CloudWatch answers per instance: idle unless told otherwise; `gap` ids get no datapoints at all."""

    busy: set[str] = field(default_factory=set)
    gap: set[str] = field(default_factory=set)
    no_gpu_reading: set[str] = field(default_factory=set)

    def read(self, _: Any, instance_ids: Any, window: timedelta, now: datetime) -> dict[str, Utilisation]:
        answers = {}
        for i in instance_ids:
            if i in self.gap:
                answers[i] = Utilisation(None, None, None)
            elif i in self.busy:
                answers[i] = BUSY
            elif i in self.no_gpu_reading:
                answers[i] = Utilisation(0.5, 10.0, None)  # no CloudWatch agent: no GPU metric
            else:
                answers[i] = IDLE
        return answers


@pytest.fixture
def account(factory: ClientFactory, ssm_agents: SsmAgents) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Metrics]:
    from trainctl.sweep import run

    seen = Metrics()
    monkeypatch.setattr(run, "read_utilisation", seen.read)
    yield seen


def gpu_instance(account: Account, instance_type: str, **labels: str) -> str:
    values = {tags.MANAGED: "true", tags.OWNER: "alice", **labels}
    return str(
        account.ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            InstanceType=instance_type,
            Placement={"AvailabilityZone": ZONE},
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in values.items()]}
            ],
        )["Instances"][0]["InstanceId"]
    )


def labelled(account: Account, labels: dict[str, Any]) -> str:
    """A running instance in scope, of alice's, with these tags too."""
    return account.instance(**labels)


def mark_tag(account: Account, resource_id: str) -> str | None:
    if resource_id.startswith("vol-"):
        raw = account.ec2.describe_volumes(VolumeIds=[resource_id])["Volumes"][0].get("Tags", [])
    else:
        raw = account.ec2.describe_instances(InstanceIds=[resource_id])["Reservations"][0]["Instances"][0].get(
            "Tags", []
        )
    return next((t["Value"] for t in raw if t["Key"] == tags.CLEANUP_AFTER), None)


def refusal(code: str) -> tuple[AWSResponse, dict[str, Any]]:
    response = AWSResponse("https://refused.invalid/", 400, cast(Any, {}), None)
    return response, {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}}


# 1. A CloudWatch gap is no evidence of use, yet it withdraws the mark -----------------------------------------


def test_hole_one_sweep_without_cloudwatch_datapoints_withdraws_a_mark_and_restarts_the_grace(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics
) -> None:
    """Sequence: an idle instance (SSM says idle) is marked at T0. At T0+10h CloudWatch has no datapoint for it
    (delayed or lost metrics; GetMetricData answers an empty series). The sweep finds no `idle` reason (no evidence
    is not idleness) and so *unmarks* it ("no longer a candidate") and tells the owner; the next hour the
    datapoints are back, it is marked afresh and the owner told again; the stop slips by ten hours.

    Broken: safety model 11 / README "No answer is not evidence": only evidence of use (a process, utilisation
    over a threshold, a start/attach/scope change) withdraws a mark; an answer that did not come keeps it. And
    "one notice per mark and one for its outcome". Fault: sweep/rules.py decide(), `if not reasons: ... unmark`
    treats missing utilisation (is_idle -> False for `usage.cpu_percent is None`) as evidence of use.
    """
    instance_id = account.instance()
    ssm_agents.idle(instance_id)
    actions: dict[datetime, str] = {}
    for hour in range(0, 27):
        at = T0 + hour * HOUR
        if hour == 10:
            metrics.gap.add(instance_id)
        else:
            metrics.gap.discard(instance_id)
        actions[at] = action_of(account.sweep(at), instance_id)
    assert "unmark" not in actions.values(), f"a CloudWatch gap withdrew the mark: {actions}"
    assert actions[DUE] == "stop", actions
    assert len(notices_naming(account, instance_id)) == 2, notices_naming(account, instance_id)


# 2. An EBS metrics query CloudWatch failed (per-query status) reads as "never attached" -----------------------


def test_hole_an_ebs_query_that_failed_inside_a_successful_get_metric_data_lets_the_used_volume_die(
    account: Account, factory: ClientFactory
) -> None:
    """Sequence: a volume is marked at T0; its owner attaches it at 24h50 and detaches it at 24h58 (EBS publishes
    VolumeIdleTime for those minutes; CloudTrail has not delivered the AttachVolume yet). At 25h01 the sweep reads
    the volume's EBS metrics: GetMetricData succeeds (HTTP 200) but CloudWatch reports the queries as
    `StatusCode: InternalError` with no datapoints, as its API does for a query it could not run. trainctl reads
    that as "no datapoint since the mark" and deletes the volume.

    Broken: "a read failure keeps the volume" (sweep/act.py _withdraw_used_volumes docstring, README "Late
    events"). Fault: aws/utilisation.py volumes_attached_since() never looks at result["StatusCode"] (nor at the
    response's Messages): only a raised ClientError counts as a failure. Fix: any result whose StatusCode is not
    "Complete" (after pagination) raises, so the volume is kept.
    """
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    for hour in range(1, 25):  # the hourly sweeps of its grace
        account.sweep(T0 + hour * HOUR)
    factory.cloudwatch(REGION).put_metric_data(
        Namespace="AWS/EBS",
        MetricData=[
            {
                "MetricName": "VolumeIdleTime",
                "Dimensions": [{"Name": "VolumeId", "Value": volume_id}],
                "Timestamp": T0 + GRACE + timedelta(minutes=minute),
                "Value": 290.0,
            }
            for minute in (50, 55)
        ],
    )

    def internal_error(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name != "GetMetricData":
            return
        for result in parsed.get("MetricDataResults", []):
            if result.get("Id", "").startswith("v"):
                result.update(StatusCode="InternalError", Timestamps=[], Values=[])

    factory.register("after-call", internal_error)
    acted = decision(account.sweep(T0 + GRACE + timedelta(minutes=61)), volume_id)
    assert account.exists(volume_id), f"deleted on a failed EBS query: {acted}"


# 3. Metrics mode: an accelerator type the table does not know counts as having none ---------------------------


@pytest.mark.parametrize("instance_type", ["g5g.xlarge", "gr6.4xlarge"])
def test_hole_metrics_mode_stops_an_unmanaged_gpu_instance_without_a_gpu_reading(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics, instance_type: str
) -> None:
    """Sequence: TRAINCTL_IDLE_WITHOUT_TRAINING_CHECK=metrics. A g5g.xlarge (an NVIDIA T4G GPU) or a gr6.4xlarge
    (an NVIDIA L4) without the SSM agent and without the CloudWatch agent trains on its GPU with low CPU and
    network: CloudWatch has CPU and network, no GPU metric. It is marked, and stopped a day later, on CPU alone.
    (A g5.xlarge in the same state is kept: no accelerator reading is no evidence.)

    Broken: README "Instances SSM does not manage": "an accelerator type still needs an accelerator reading (the
    CloudWatch agent's GPU metric) to count as idle"; "no evidence is not idleness". Fault: sweep/rules.py
    is_idle(): `return accelerators_for(instance.instance_type) is None`, and core/accelerators.py
    accelerators_for() answers None for any type its table lacks (g5g, gr6, g4ad, inf1, dl1, dl2q, f1/f2, vt1,
    p6e-gb200...). Fix: where no SSM check answered (metrics mode), an unknown type is not idle without a GPU
    reading unless EC2 DescribeInstanceTypes says it has no GpuInfo/NeuronInfo/FpgaInfo/InferenceAcceleratorInfo.
    """
    instance_id = gpu_instance(account, instance_type)
    ssm_agents.without_agent(instance_id)
    metrics.no_gpu_reading.add(instance_id)
    actions = [action_of(result, instance_id) for _, result in hourly(account, T0, 25, **_metrics_mode())]
    assert "mark" not in actions and account.state(instance_id) == "running", actions


def _metrics_mode(**more: Any) -> dict[str, Any]:
    return {"idle_without_training_check": "metrics", **more}


# 4. Metrics mode: `_decided_on_metrics` compares the action, not the reason ------------------------------------


def test_hole_metrics_mode_with_idle_action_terminate_terminates_a_busy_unmanaged_instance_on_its_ttl(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics
) -> None:
    """Sequence: TRAINCTL_IDLE_WITHOUT_TRAINING_CHECK=metrics and TRAINCTL_IDLE_ACTION=terminate. An instance SSM
    does not manage is busy (CPU 90 %, GPU 90 %: CloudWatch's word is "in use") and its trainctl:ttl ran out. It is
    marked for terminate and terminated a day later, running its job, with no training check and against its
    metrics. With TRAINCTL_IDLE_ACTION=stop the very same instance is kept as not-managed-by-ssm.

    Broken: "An instance SSM does not manage is never marked and never acted on (not-managed-by-ssm) unless
    metrics mode decides it on utilisation"; the code's own comment "Utilisation alone decides idleness only ...;
    an expiry is no idleness". Fault: sweep/rules.py _decided_on_metrics(): `action == settings.idle_action` is true
    for a ttl expiry's terminate when the idle action is terminate. Fix: decide on metrics only when the reasons are
    `idle` (plus a ttl-expiring warning), i.e. test the reasons, not the action.
    """
    instance_id = labelled(account, {tags.TTL: "1h", tags.CREATED_AT: format_instant(T0 - timedelta(days=2))})
    ssm_agents.without_agent(instance_id)
    metrics.busy.add(instance_id)
    results = dict(hourly(account, T0, 26, **_metrics_mode(idle_action="terminate")))
    first = decision(results[T0], instance_id)
    assert account.state(instance_id) == "running", [action_of(r, instance_id) for r in results.values()]
    assert first.protections == ("not-managed-by-ssm",), first


def test_hole_metrics_mode_an_expiring_ttl_withdraws_the_idle_stop_of_an_unmanaged_instance(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics
) -> None:
    """Sequence: metrics mode, TRAINCTL_IDLE_ACTION=stop. An idle instance SSM does not manage is marked for a stop
    at T0 (owner told). Its trainctl:ttl runs out at T0+10h: the reasons become {idle, ttl-expired}, the action a
    terminate, and a terminate is not "decided on metrics", so the sweep *unmarks* it as not-managed-by-ssm and
    tells the owner. The idle instance is then never stopped (nor terminated): every sweep keeps it.

    Broken: metrics mode promises an idle unmanaged instance "is then marked and stopped on CloudWatch's word";
    safety model 11: only evidence of use withdraws a mark (an expiry is none). Fault: sweep/rules.py
    _decided_on_metrics() tests `action == settings.idle_action`, so adding a reason (ttl-expired) takes the
    metrics decision away. Fix: with `idle` among the reasons and metrics mode, fall back to the idle action.
    """
    # Launched (moto: the wall clock) about two days before T0: a ttl of 58h runs out about T0+10h.
    instance_id = labelled(account, {tags.TTL: "58h"})
    ssm_agents.without_agent(instance_id)
    results = dict(hourly(account, T0, 2 * 24 + 4, **_metrics_mode()))
    actions = {format_instant(at): action_of(r, instance_id) for at, r in results.items()}
    assert actions[format_instant(T0)] == "mark", actions
    assert "unmark" not in actions.values(), f"an expiry withdrew the idle mark: {actions}"
    assert account.state(instance_id) != "running", actions


# 5. The dry-run preview of metrics mode and of unmanaged instances -------------------------------------------


def test_hole_a_dry_run_hides_the_stop_metrics_mode_will_make(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics
) -> None:
    """Sequence: a team deploys with TRAINCTL_IDLE_WITHOUT_TRAINING_CHECK=metrics, dry-run first (the default), to
    see what enforcing would do. An idle instance without the SSM agent is previewed as `keep`, protected by
    `training-active` ("not marked until the training check answers"); the same sweep enforced marks it (and
    stops it a day later). Nothing in metrics mode waits on an SSM command: whether SSM manages an instance is a
    read (DescribeInstanceInformation).

    Broken: ARCHITECTURE "Dry-run runs the same code and stops before the first write"; the brief's "does a
    dry-run preview now lie". Fault: sweep/run.py observe() returns before any SSM call in a dry-run, and
    sweep/rules.py unanswered_training_check() answers "no answer" for `check is None` before it looks at metrics
    mode. Fix: in a dry-run, still ask DescribeInstanceInformation (a read) and record NOT_MANAGED.
    """
    instance_id = account.instance()
    ssm_agents.without_agent(instance_id)
    settings = SETTINGS.model_copy(update=_metrics_mode(dry_run=True))
    preview = decision(account.sweep(T0, settings), instance_id)
    enforced = decision(account.sweep(T0, SETTINGS.model_copy(update=_metrics_mode())), instance_id)
    assert enforced.action == "mark"
    assert preview.action == enforced.action, f"dry-run said {preview.action} {preview.protections}: {preview.detail}"


def test_hole_a_dry_run_names_an_unmanaged_instance_training_active_and_counts_none(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics
) -> None:
    """Sequence: the stack runs dry (the default). An idle instance SSM does not manage is reported as protected
    by `training-active` (no training runs there; nothing can run the check), and the summary's
    `not_managed_by_ssm` (the dashboard widget, `trainctl report`) reads 0 on every dry sweep.

    Broken: safety model 4 "Protections, each reported by name"; README "kept as not-managed-by-ssm ... and
    counted". Fault: as above (no DescribeInstanceInformation in a dry-run).
    """
    instance_id = account.instance()
    ssm_agents.without_agent(instance_id)
    result = account.sweep(T0, SETTINGS.model_copy(update={"dry_run": True}))
    kept = decision(result, instance_id)
    assert kept.protections == ("not-managed-by-ssm",), kept
    assert result.summary()["not_managed_by_ssm"] == 1


# 6. Closing fulfilled marks: one refusal leaves every other stopped instance marked ---------------------------


def test_hole_one_refused_mark_removal_leaves_the_other_stopped_instances_marked_and_their_owners_told_again(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics
) -> None:
    """Sequence: two idle instances (alice's and bob's) are marked at T0 and stopped in the same sweep at 25h.
    Removing the fulfilled marks is one DeleteTags call for both; EC2 refuses it because of bob's instance (IAM:
    his scope tag was just changed, or his instance is already gone). alice's mark is never removed: the next
    sweep finds her stopped instance marked and no longer a candidate, unmarks it and tells her "no longer a
    candidate": news after her stop, exactly what _close_marks exists to prevent.

    Broken: "A verified stop removes the fulfilled mark tag"; "one notice per mark and one for its outcome".
    Fault: sweep/act.py _close_marks(): a batch DeleteTags failure marks the whole chunk "could not be removed"
    without the one-by-one retry that _tag_phase does. Fix: on a batch failure, retry each instance alone.
    """
    alice = account.instance()
    bob = labelled(account, {tags.OWNER: "bob"})
    for instance_id in (alice, bob):
        ssm_agents.idle(instance_id)
    for hour in range(0, 25):
        account.sweep(T0 + hour * HOUR)

    def refuse_for_bob(model: Any, params: dict[str, Any], **_: Any) -> Any:
        if model.name == "DeleteTags" and bob in params["body"].values():
            return refusal("UnauthorizedOperation")
        return None

    account.factory.register("before-call", refuse_for_bob, first=True)
    stopped = account.sweep(DUE)
    assert action_of(stopped, alice) == "stop" and action_of(stopped, bob) == "stop"
    assert mark_tag(account, alice) is None, "alice's fulfilled mark was left on her stopped instance"
    told = len(notices_naming(account, alice))
    after = account.sweep(DUE + HOUR)
    assert action_of(after, alice) != "unmark" and len(notices_naming(account, alice)) == told


def test_hole_a_stop_whose_re_read_failed_is_followed_by_a_withdrawal_notice(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics
) -> None:
    """Sequence: an idle instance is marked at T0 and stopped at 25h; the re-read after StopInstances fails
    (DescribeInstances throttled past its retries): the stop is `unverified`, its mark stays. The next sweep finds
    it stopped, marked and no longer a candidate: `unmark`, and its owner gets a third notice saying its mark was
    withdrawn because it is "no longer a candidate", after being told it was stopped.

    Broken: "One notice per mark and one for its outcome (or withdrawal)"; the mark was fulfilled, not withdrawn.
    Fault: sweep/act.py _verify() closes marks only for `done` stops, and sweep/rules.py decide() unmarks (with a
    notice) a marked resource without reasons even when the ledger's last word on that mark is its own stop.
    Fix: close the mark of an `unverified` stop too (DeleteTags is harmless if the stop did not take: the next
    sweep marks afresh), or let decide() unmark silently a mark whose action the ledger records as requested.
    """
    instance_id = account.instance()
    ssm_agents.idle(instance_id)
    for hour in range(0, 25):
        account.sweep(T0 + hour * HOUR)
    reads: list[str] = []

    def fail_the_second_re_read(model: Any, params: dict[str, Any], **_: Any) -> Any:
        # The serialised request: Filter.1.Name=instance-id is the executor's re-read (the inventory reads by state).
        if model.name == "DescribeInstances" and "instance-id" in params["body"].values():
            reads.append(model.name)
            if len(reads) == 2:  # the first is the re-read before acting, the second the verify after it
                return refusal("RequestLimitExceeded")
        return None

    account.factory.register("before-call", fail_the_second_re_read, first=True)
    stopped = decision(account.sweep(DUE), instance_id)
    assert stopped.action == "stop" and account.state(instance_id) in ("stopping", "stopped"), stopped
    told = len(notices_naming(account, instance_id))
    after = account.sweep(DUE + HOUR)
    assert action_of(after, instance_id) != "unmark", decision(after, instance_id)
    assert len(notices_naming(account, instance_id)) == told == 2, notices_naming(account, instance_id)


# 7. The EBS read ends at the sweep's start, not at the read ----------------------------------------------------


def test_hole_ebs_datapoints_after_the_sweep_started_are_not_read(account: Account, factory: ClientFactory) -> None:
    """Sequence: a volume is marked at T0. The acting sweep starts at 25h01 (its `now`); it is a long one (a big
    fleet, a training check waiting out its timeout) and reaches the volume's batch at 25h13. Meanwhile the owner
    attached the volume at 25h02 and detached it at 25h06; EBS has published those minutes by 25h13. The read
    asks CloudWatch for [mark - 5m, 25h01): EndTime is the sweep's start, so the datapoints are not asked for, and
    the volume is deleted.

    Broken: README "Late events": "just before a volume is deleted the sweep reads its EBS metrics since the mark
    ... The window left: ... between the sweep's metrics read and its DeleteVolume call (a second or two on a small
    sweep)". The window is the whole sweep. Fault: sweep/act.py _withdraw_used_volumes(): `now = self._now` (the
    sweep's start, from run.py `SweepExecutor(now=now)`), passed as EndTime by volumes_attached_since(). Fix: give
    the executor the clock and read up to clock() at the read.
    """
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    for hour in range(1, 25):
        account.sweep(T0 + hour * HOUR)
    start = T0 + GRACE + timedelta(minutes=61)
    factory.cloudwatch(REGION).put_metric_data(
        Namespace="AWS/EBS",
        MetricData=[
            {
                "MetricName": "VolumeIdleTime",
                "Dimensions": [{"Name": "VolumeId", "Value": volume_id}],
                "Timestamp": start + timedelta(minutes=minute),
                "Value": 50.0,
            }
            for minute in (2, 5)
        ],
    )
    calls = iter([start, start])

    def clock() -> datetime:  # the sweep reads its `now` first; by the volume's batch 12 minutes have passed
        return next(calls, start + timedelta(minutes=12))

    from trainctl.sweep.run import run_sweep

    result: SweepResult = run_sweep(factory, SETTINGS, clock, ledger=account.ledger, notifier=account.notifier)
    assert account.exists(volume_id), decision(result, volume_id)


# What held (kept as coverage) -----------------------------------------------------------------------------------


def test_held_a_hand_written_past_mark_and_days_of_unanswered_checks_earn_a_fresh_mark_not_a_stop(
    account: Account, ssm_agents: SsmAgents, metrics: Metrics
) -> None:
    """Sequence: anyone writes trainctl:cleanup-after two days in the past on an idle running instance whose check
    never answers (moto's agent: no verdict). Every sweep keeps it (`keep`, candidate, the mark stays) for 30 hours,
    recorded in the ledger as a candidate each hour; then the check answers idle. The sweep must not stop it on
    the forged mark: the ledger never recorded it, so it earns trainctl's own mark and a full grace (model 3)."""
    instance_id = labelled(account, {tags.CLEANUP_AFTER: format_instant(T0 - timedelta(days=2))})
    for at, result in hourly(account, T0, 30):
        kept = decision(result, instance_id)
        assert kept.action == "keep" and account.state(instance_id) == "running", (format_instant(at), kept)
    assert notices_naming(account, instance_id) == []
    ssm_agents.idle(instance_id)
    answered = decision(account.sweep(T0 + 31 * HOUR), instance_id)
    assert answered.action == "mark" and answered.cleanup_after == T0 + 31 * HOUR + GRACE, answered
    assert account.state(instance_id) == "running"
