"""Instances by hand: a termination goes through the same protections as the sweep's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from trainctl.aws.ec2 import find_instance
from trainctl.aws.keep_volumes import keep_volumes
from trainctl.core import tags
from trainctl.core.durations import format_duration
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.permissions import needs
from trainctl.core.protections import LeftBehind, is_persistent, volumes_left_behind, younger_than_min_age
from trainctl.core.resources import Instance, Volume
from trainctl.core.text import one_line
from trainctl.handwork.refusals import NotFound, Refused

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

PERMISSIONS = needs("ec2:TerminateInstances")


def instance(ec2: EC2Client, region: str, instance_id: str) -> Instance:
    found = find_instance(ec2, region, instance_id)
    if found is None:
        raise NotFound(f"no instance {instance_id} in {region}")
    return found


Verdict = Literal["terminate", "refuse"]


@dataclass(frozen=True)
class TerminationCheck:
    verdict: Verdict
    reasons: tuple[str, ...]
    keep: tuple[tuple[str, str], ...] = ()  # volumes whose DeleteOnTermination is cleared first: (volume id, device)
    # Every volume the termination leaves behind, with why: the person is told before saying yes.
    left_behind: tuple[LeftBehind, ...] = ()


def check_termination(
    machine: Instance,
    volumes: list[Volume],
    training: TrainingCheck,
    *,
    now: datetime,
    min_age: timedelta,
    scope_tag: str,
    ignore_min_age: bool = False,
    ignore_unknown_training: bool = False,
) -> TerminationCheck:
    """Pure: the safety model for a termination by hand. A person may waive the minimum age and an unknown
    training state, each by its own name; never a persistent instance, another controller's, or running training."""
    reasons: list[str] = []
    if machine.state in ("shutting-down", "terminated"):
        reasons.append(f"already {machine.state}")
    if is_persistent(machine.tags):
        reasons.append(f"tagged {tags.PERSISTENT}")
    if machine.controller:
        reasons.append(f"run by {one_line(machine.controller)}: scale it down there instead")
    if younger_than_min_age(machine, min_age, now) and not ignore_min_age:
        reasons.append(f"younger than the minimum age {format_duration(min_age)} (--ignore-min-age)")
    if training.status is Training.ACTIVE:
        reasons.append(f"a training job is running: {one_line(training.detail)}")
    elif not training.answered and not ignore_unknown_training:
        said = one_line(training.detail) or "the training check gave no verdict"
        reasons.append(f"{said} (--ignore-unknown-training)")
    left = volumes_left_behind(machine, {v.resource_id: v for v in volumes}, scope_tag)
    keep = tuple((v.volume_id, v.device_name) for v in left if v.clear_delete_on_termination)
    return TerminationCheck("refuse" if reasons else "terminate", tuple(reasons), keep, left)


def terminate(ec2: EC2Client, machine: Instance, check: TerminationCheck) -> None:
    if check.verdict != "terminate":
        raise Refused(f"{machine.resource_id} not terminated: {'; '.join(check.reasons)}")
    if check.keep and not keep_volumes(ec2, machine.resource_id, check.keep):
        raise Refused(
            f"{machine.resource_id} not terminated: DeleteOnTermination could not be cleared on a volume that "
            "must outlive it"
        )
    ec2.terminate_instances(InstanceIds=[machine.resource_id])
