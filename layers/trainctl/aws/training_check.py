"""Training-job detection over SSM: a custom read-only document, typed parameters, unknown protects."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from trainctl.aws.clients import error_code
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

PERMISSIONS = needs("ssm:SendCommand", "ssm:GetCommandInvocation")

SEND_COMMAND_MAX_TARGETS = 50
_TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut", "Undeliverable", "Terminated", "DeliveryTimedOut"}
_NOT_MANAGED = {"InvalidInstanceId", "UnsupportedPlatformType"}


def parse_output(output: str) -> TrainingCheck:
    for line in output.splitlines():
        if line.startswith("TRAINCTL_TRAINING="):
            verdict, _, detail = line.removeprefix("TRAINCTL_TRAINING=").partition(" ")
            if verdict == "idle":
                return TrainingCheck(Training.IDLE, "no training process found")
            if verdict == "active":
                return TrainingCheck(Training.ACTIVE, f"training running ({detail})" if detail else "training running")
    return TrainingCheck(Training.UNKNOWN, "the training check gave no verdict")


class SsmTrainingCheck:
    def __init__(
        self,
        ssm: SSMClient,
        *,
        document: str,
        pid_file: str,
        process_patterns: Sequence[str],
        timeout: timedelta,
        poll_interval: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssm = ssm
        self._document = document
        self._parameters = {"PidFile": [pid_file], "ProcessPatterns": [",".join(process_patterns)]}
        self._timeout = timeout.total_seconds()
        self._poll_interval = poll_interval
        self._sleep = sleep
        self._monotonic = monotonic

    def check(self, instance_ids: Sequence[str]) -> dict[str, TrainingCheck]:
        results: dict[str, TrainingCheck] = {}
        for start in range(0, len(instance_ids), SEND_COMMAND_MAX_TARGETS):
            results.update(self._check_batch(list(instance_ids[start : start + SEND_COMMAND_MAX_TARGETS])))
        return results

    def _send(self, instance_ids: list[str]) -> str:
        response = self._ssm.send_command(
            DocumentName=self._document,
            InstanceIds=instance_ids,
            Parameters=self._parameters,
            TimeoutSeconds=max(30, int(self._timeout)),
            Comment="trainctl sweep: is a training job running?",
        )
        return str(response["Command"]["CommandId"])

    def _check_batch(self, instance_ids: list[str]) -> dict[str, TrainingCheck]:
        try:
            command_id = self._send(instance_ids)
        except ClientError as exc:
            if error_code(exc) in _NOT_MANAGED and len(instance_ids) > 1:
                # One unmanaged instance fails the whole batch: ask each one alone.
                merged: dict[str, TrainingCheck] = {}
                for instance_id in instance_ids:
                    merged.update(self._check_batch([instance_id]))
                return merged
            reason = "not managed by SSM" if error_code(exc) in _NOT_MANAGED else f"SSM refused: {error_code(exc)}"
            return {i: TrainingCheck(Training.UNKNOWN, reason) for i in instance_ids}
        return self._await(command_id, instance_ids)

    def _await(self, command_id: str, instance_ids: list[str]) -> dict[str, TrainingCheck]:
        # GetCommandInvocation per instance: it carries the output and is what every SSM endpoint implements.
        pending = list(instance_ids)
        results: dict[str, TrainingCheck] = {}
        deadline = self._monotonic() + self._timeout
        while pending:
            still_pending: list[str] = []
            for instance_id in pending:
                try:
                    invocation = self._ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
                except ClientError as exc:
                    if error_code(exc) == "InvocationDoesNotExist":
                        still_pending.append(instance_id)  # not registered yet: ask again
                    else:
                        results[instance_id] = TrainingCheck(Training.UNKNOWN, f"SSM error {error_code(exc)}")
                    continue
                status = str(invocation.get("Status"))
                if status not in _TERMINAL:
                    still_pending.append(instance_id)
                elif status != "Success":
                    results[instance_id] = TrainingCheck(Training.UNKNOWN, f"training check ended {status}")
                else:
                    results[instance_id] = parse_output(str(invocation.get("StandardOutputContent", "")))
            pending = still_pending
            if not pending:
                break
            if self._monotonic() >= deadline:
                for instance_id in pending:
                    results[instance_id] = TrainingCheck(Training.UNKNOWN, "no answer in time")
                break
            self._sleep(self._poll_interval)
        return results
