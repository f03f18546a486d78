"""A mark's life at the cadence the stack deploys: a sweep every hour, a day's grace, CloudTrail minutes late.

Each test sweeps on the hour, as the deployed schedule does, with the emulated SSM agent answering the training
check. Before issue 24 an idle instance was marked, then unmarked an hour later (a marked instance was never asked
the training check, and no answer protected it), then marked afresh: never stopped, and its owner told every hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_sweep_adversary import GRACE, REGION, SETTINGS, T0, ZONE, Account, decision
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.ssm_agent import SsmAgents
from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.observations import Utilisation
from trainctl.sweep.run import SweepResult

HOUR = timedelta(hours=1)
# The first hourly sweep at which a mark written at T0 may be acted on: grace, then the delivery lag, then the hour.
DUE = T0 + GRACE + HOUR


@pytest.fixture
def account(factory: ClientFactory, ssm_agents: SsmAgents) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


@pytest.fixture
def quiet_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """CloudWatch shows every instance idle (GPU at 0 %) except those in the yielded set, which are busy."""
    from trainctl.sweep import run

    busy: set[str] = set()

    def utilisation(_: Any, instance_ids: Any, window: timedelta, now: datetime) -> dict[str, Utilisation]:
        return {i: Utilisation(90.0, 1e7, 90.0) if i in busy else Utilisation(0.5, 10.0, 0.0) for i in instance_ids}

    monkeypatch.setattr(run, "read_utilisation", utilisation)
    yield busy


def hourly(account: Account, start: datetime, hours: int, **settings: Any) -> Iterator[tuple[datetime, SweepResult]]:
    configured = SETTINGS.model_copy(update=settings)
    for hour in range(hours + 1):
        at = start + hour * HOUR
        yield at, account.sweep(at, configured)


def action_of(result: SweepResult, resource_id: str) -> str:
    """What the sweep did with the resource; "-" when it had nothing to say of it (no reason, no mark)."""
    return next((d.action for d in result.decisions if d.resource_id == resource_id), "-")


def notices_naming(account: Account, resource_id: str) -> list[str]:
    return [text for _, text in account.notifier.messages if resource_id in text]


def test_an_idle_instance_is_stopped_at_the_hourly_cadence_with_one_notice_for_its_mark_and_one_for_its_stop(
    account: Account, ssm_agents: SsmAgents, quiet_metrics: set[str]
) -> None:
    instance_id = account.instance()
    ssm_agents.idle(instance_id)
    actions = {at: action_of(result, instance_id) for at, result in hourly(account, T0, 30)}
    assert actions[T0] == "mark"
    assert {actions[at] for at in actions if T0 < at < DUE} == {"keep"}, actions
    assert actions[DUE] == "stop", f"not stopped at {format_instant(DUE)}: {actions}"
    assert account.state(instance_id) == "stopped"
    notices = notices_naming(account, instance_id)
    assert len(notices) == 2, f"{len(notices)} notices to its owner: {notices}"


def test_an_idle_gpu_instance_with_instance_store_is_stopped_by_default_and_its_notice_says_what_is_lost(
    account: Account, ssm_agents: SsmAgents, quiet_metrics: set[str]
) -> None:
    instance_id = account.ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        InstanceType="g5.xlarge",  # 250 GB of NVMe instance store
        Placement={"AvailabilityZone": ZONE},
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "alice"}],
            }
        ],
    )["Instances"][0]["InstanceId"]
    ssm_agents.idle(instance_id)
    for _ in hourly(account, T0, 25):
        pass
    assert account.state(instance_id) == "stopped"
    marked = notices_naming(account, instance_id)[0]
    assert "will be lost" in marked and "TRAINCTL_STOP_INSTANCE_STORE=false" in marked


def test_a_running_instance_whose_ttl_ran_out_is_terminated_at_the_hourly_cadence(
    account: Account, ssm_agents: SsmAgents, quiet_metrics: set[str]
) -> None:
    instance_id = account.instance(**{tags.TTL: "1h", tags.CREATED_AT: format_instant(T0 - timedelta(days=2))})
    quiet_metrics.add(instance_id)  # busy by CloudWatch, yet its lifetime is over: the expiry is the reason
    ssm_agents.idle(instance_id)
    actions = [action_of(result, instance_id) for _, result in hourly(account, T0, 26)]
    assert actions.count("mark") == 1 and actions.count("unmark") == 0, actions
    assert account.state(instance_id) in ("shutting-down", "terminated")


def test_a_check_that_cannot_answer_keeps_the_mark_and_the_action_waits_for_an_answer(
    account: Account, ssm_agents: SsmAgents, quiet_metrics: set[str]
) -> None:
    instance_id = account.instance()
    ssm_agents.idle(instance_id)
    assert decision(account.sweep(T0), instance_id).action == "mark"
    ssm_agents.forget(instance_id)  # moto's own answer: Success with no output, so no verdict
    for at, result in hourly(account, T0 + HOUR, 27):
        kept = decision(result, instance_id)
        assert kept.action == "keep" and kept.protections == (), f"at {format_instant(at)}: {kept}"
    assert "the training check gave no verdict" in kept.detail and "mark stays" in kept.detail
    assert account.state(instance_id) == "running"
    ssm_agents.idle(instance_id)
    assert decision(account.sweep(T0 + 29 * HOUR), instance_id).action == "stop"
    assert len(notices_naming(account, instance_id)) == 2


def test_training_found_during_the_grace_withdraws_the_mark_and_says_why_once(
    account: Account, ssm_agents: SsmAgents, quiet_metrics: set[str]
) -> None:
    instance_id = account.instance()
    ssm_agents.idle(instance_id)
    assert decision(account.sweep(T0), instance_id).action == "mark"
    ssm_agents.run(instance_id, "torchrun --nproc_per_node 8 train.py")
    withdrawn = decision(account.sweep(T0 + 5 * HOUR), instance_id)
    assert withdrawn.action == "unmark" and withdrawn.protections == ("training-active",)
    assert "pattern=torchrun" in withdrawn.detail
    for _ in hourly(account, T0 + 6 * HOUR, 24):
        pass
    assert account.state(instance_id) == "running"
    notices = notices_naming(account, instance_id)
    assert len(notices) == 2 and "training-active" in notices[1]


def test_an_instance_ssm_does_not_manage_is_never_marked_and_is_counted_every_sweep(
    account: Account, ssm_agents: SsmAgents, quiet_metrics: set[str]
) -> None:
    instance_id = account.instance()
    ssm_agents.without_agent(instance_id)
    for at, result in hourly(account, T0, 26):
        kept = decision(result, instance_id)
        assert kept.action == "keep" and kept.protections == ("not-managed-by-ssm",), format_instant(at)
        assert result.summary()["not_managed_by_ssm"] == 1
    assert notices_naming(account, instance_id) == []
    assert account.state(instance_id) == "running"


def test_with_metrics_mode_an_instance_ssm_does_not_manage_is_stopped_on_utilisation(
    account: Account, ssm_agents: SsmAgents, quiet_metrics: set[str]
) -> None:
    instance_id = account.instance()
    ssm_agents.without_agent(instance_id)
    for _ in hourly(account, T0, 25, idle_without_training_check="metrics"):
        pass
    assert account.state(instance_id) == "stopped"


def test_a_use_heard_late_withdraws_the_mark_before_the_volume_dies(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence: the volume is marked at T0. Its owner attaches it at 23h50 and detaches it at 23h58; CloudTrail
    delivers the AttachVolume call to age_guard at 24h05. The sweep at 24h00 deleted it: the grace was over and
    nothing had been heard. Now it waits out the delivery lag, hears the use, and marks it afresh."""
    volume_id = account.volume()
    instance_id = account.instance()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    used_at = T0 + GRACE - timedelta(minutes=10)
    account.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    account.ec2.detach_volume(VolumeId=volume_id, InstanceId=instance_id)
    at_grace_end = decision(account.sweep(T0 + GRACE), volume_id)
    assert at_grace_end.action == "keep" and "late events" in at_grace_end.detail
    assert account.exists(volume_id)
    account.tell_age_guard(monkeypatch, "AttachVolume", {"volumeId": volume_id, "instanceId": instance_id}, used_at)
    after = decision(account.sweep(DUE), volume_id)
    assert after.action == "mark" and after.cleanup_after is not None and after.cleanup_after > DUE
    assert account.exists(volume_id)


def test_a_volume_attached_after_its_grace_ended_is_kept_by_its_ebs_metrics(
    account: Account, factory: ClientFactory
) -> None:
    """Sequence: marked at T0; attached at 24h50 and detached at 24h58; the sweep at 25h01 runs before CloudTrail's
    AttachVolume reaches age_guard (25h05). EBS's own metrics say the volume was attached: the mark is withdrawn."""
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    # What EBS publishes while a volume is attached: five-minute datapoints.
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
    withdrawn = decision(account.sweep(T0 + GRACE + timedelta(minutes=61)), volume_id)
    assert account.exists(volume_id)
    assert withdrawn.action == "unmark" and "attached since its mark" in withdrawn.detail
    assert tags.CLEANUP_AFTER not in {
        t["Key"] for t in account.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0].get("Tags", [])
    }


def test_a_volume_with_no_ebs_datapoint_since_its_mark_is_deleted(account: Account, factory: ClientFactory) -> None:
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    # Attached before its mark, not since: no reason to keep it.
    factory.cloudwatch(REGION).put_metric_data(
        Namespace="AWS/EBS",
        MetricData=[
            {
                "MetricName": "VolumeIdleTime",
                "Dimensions": [{"Name": "VolumeId", "Value": volume_id}],
                "Timestamp": T0 - timedelta(minutes=10),
                "Value": 290.0,
            }
        ],
    )
    assert decision(account.sweep(DUE), volume_id).action == "delete"
    assert not account.exists(volume_id)
