"""Training-job detection over SSM: a custom read-only document, typed parameters, unknown protects.

At scale: instances SSM does not manage are left out before sending (one of them would refuse a whole batch),
batches are sent and their answers awaited together, and the check stops before the caller's deadline,
answering "deferred: deadline" for what it could not finish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import error_code
from trainctl.core.observations import Training, TrainingCheck
from trainctl.core.permissions import needs

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

PERMISSIONS = needs("ssm:SendCommand", "ssm:GetCommandInvocation", "ssm:DescribeInstanceInformation")

SEND_COMMAND_MAX_TARGETS = 50
# DescribeInstanceInformation: ids per InstanceIds filter kept at SendCommand's batch, 50 results a page at most.
_INFORMATION_IDS_PER_CALL = 50
# Sends and polls at once: enough to overlap round trips, few enough to stay inside SSM's request rates.
DEFAULT_PARALLEL = 8
# Left for the caller after the check returns, when it is given the time remaining.
DEFAULT_DEADLINE_RESERVE = timedelta(seconds=30)
NOT_MANAGED = TrainingCheck(Training.NOT_MANAGED, "not managed by SSM")
DEFERRED = TrainingCheck(Training.UNKNOWN, "deferred: deadline")
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


class _Unavailable(Exception):
    """DescribeInstanceInformation gave a server error: the check goes on without leaving anything out."""


def _no_retry_on_server_error(response: Any = None, caught_exception: Any = None, **_: Any) -> None:
    # Leaving out unmanaged instances only saves time: a server error (an emulator that does not implement the
    # call answers 500) is not worth ten backed-off retries. Throttling is still retried as usual.
    if caught_exception is not None:
        raise _Unavailable(str(caught_exception))
    if response is not None and response[0] is not None and response[0].status_code >= 500:
        raise _Unavailable(f"HTTP {response[0].status_code}")


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
        remaining_ms: Callable[[], int] | None = None,
        deadline_reserve: timedelta = DEFAULT_DEADLINE_RESERVE,
        max_parallel: int = DEFAULT_PARALLEL,
    ) -> None:
        """`remaining_ms`, when given, is the time left before the caller's deadline (a Lambda context's
        get_remaining_time_in_millis): the check returns with `deadline_reserve` of it left."""
        self._ssm = ssm
        self._document = document
        self._parameters = {"PidFile": [pid_file], "ProcessPatterns": [",".join(process_patterns)]}
        self._timeout = timeout.total_seconds()
        self._poll_interval = poll_interval
        self._sleep = sleep
        self._monotonic = monotonic
        self._remaining_ms = remaining_ms
        self._reserve_ms = deadline_reserve.total_seconds() * 1000
        self._parallel = max(1, max_parallel)
        ssm.meta.events.register_first(
            "needs-retry.ssm.DescribeInstanceInformation",
            _no_retry_on_server_error,
            unique_id="trainctl-training-check-instance-information",
        )

    def check(self, instance_ids: Sequence[str]) -> dict[str, TrainingCheck]:
        ids = list(dict.fromkeys(instance_ids))
        if not ids:
            return {}
        if self._out_of_time():
            return dict.fromkeys(ids, DEFERRED)
        results = self._left_out(ids)
        to_send = [i for i in ids if i not in results]
        batches = [
            to_send[start : start + SEND_COMMAND_MAX_TARGETS]
            for start in range(0, len(to_send), SEND_COMMAND_MAX_TARGETS)
        ]
        started, refused = self._send_all(batches)
        results.update(refused)
        results.update(self._await(started))
        return results

    def unmanaged(self, instance_ids: Sequence[str]) -> dict[str, TrainingCheck]:
        """Which of these SSM does not manage, or whose agent is not online: a read, no command is sent (what a
        dry-run may ask). {} when SSM would not say."""
        ids = list(dict.fromkeys(instance_ids))
        return self._left_out(ids) if ids else {}

    def _out_of_time(self) -> bool:
        return self._remaining_ms is not None and self._remaining_ms() <= self._reserve_ms

    def _can_wait(self) -> bool:
        # Another round means sleeping first: only if it ends before the reserve.
        return self._remaining_ms is None or self._remaining_ms() - self._poll_interval * 1000 > self._reserve_ms

    def _left_out(self, instance_ids: list[str]) -> dict[str, TrainingCheck]:
        """Instances SSM does not manage, or whose agent is not online; {} when SSM would not say."""
        ping: dict[str, str] = {}
        paginator = self._ssm.get_paginator("describe_instance_information")
        try:
            for start in range(0, len(instance_ids), _INFORMATION_IDS_PER_CALL):
                chunk = instance_ids[start : start + _INFORMATION_IDS_PER_CALL]
                pages = paginator.paginate(
                    Filters=[{"Key": "InstanceIds", "Values": chunk}], PaginationConfig={"PageSize": 50}
                )
                for page in pages:
                    for info in page.get("InstanceInformationList", []):
                        ping[str(info.get("InstanceId"))] = str(info.get("PingStatus", ""))
        except (ClientError, _Unavailable, NotImplementedError):
            # Denied, or an endpoint without the call (moto raises NotImplementedError in process): send to all,
            # and a batch one unmanaged instance refuses is split into single sends, made in parallel.
            return {}
        left_out: dict[str, TrainingCheck] = {}
        for instance_id in instance_ids:
            status = ping.get(instance_id)
            if status is None:
                left_out[instance_id] = NOT_MANAGED
            elif status != "Online":
                left_out[instance_id] = TrainingCheck(Training.UNKNOWN, f"SSM agent {status}")
        return left_out

    def _send(self, instance_ids: list[str]) -> str:
        response = self._ssm.send_command(
            DocumentName=self._document,
            InstanceIds=instance_ids,
            Parameters=self._parameters,
            TimeoutSeconds=max(30, int(self._timeout)),
            Comment="trainctl sweep: is a training job running?",
        )
        return str(response["Command"]["CommandId"])

    def _try_send(self, instance_ids: list[str]) -> str | ClientError | None:
        """The command id, SSM's refusal, or None when the deadline came first."""
        if self._out_of_time():
            return None
        try:
            return self._send(instance_ids)
        except ClientError as exc:
            return exc

    def _map(self, work: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if self._parallel == 1 or len(items) <= 1:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self._parallel, len(items))) as pool:
            return list(pool.map(work, items))

    def _send_all(self, batches: list[list[str]]) -> tuple[list[tuple[str, list[str]]], dict[str, TrainingCheck]]:
        """Every batch sent at once; a batch one unmanaged instance refused is sent again one by one, in parallel."""
        started: list[tuple[str, list[str]]] = []
        refused: dict[str, TrainingCheck] = {}
        while batches:
            singles: list[list[str]] = []
            for batch, outcome in zip(batches, self._map(self._try_send, batches), strict=True):
                if outcome is None:
                    refused.update(dict.fromkeys(batch, DEFERRED))
                elif isinstance(outcome, str):
                    started.append((outcome, batch))
                elif error_code(outcome) in _NOT_MANAGED and len(batch) > 1:
                    singles.extend([instance_id] for instance_id in batch)
                else:
                    code = error_code(outcome)
                    why = (
                        NOT_MANAGED if code in _NOT_MANAGED else TrainingCheck(Training.UNKNOWN, f"SSM refused: {code}")
                    )
                    refused.update(dict.fromkeys(batch, why))
            batches = singles
        return started, refused

    def _invocation(self, target: tuple[str, str]) -> TrainingCheck | None:
        """One instance's verdict, or None while it is still running."""
        command_id, instance_id = target
        try:
            invocation = self._ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as exc:
            if error_code(exc) == "InvocationDoesNotExist":
                return None  # not registered yet: ask again
            return TrainingCheck(Training.UNKNOWN, f"SSM error {error_code(exc)}")
        status = str(invocation.get("Status"))
        if status not in _TERMINAL:
            return None
        if status != "Success":
            return TrainingCheck(Training.UNKNOWN, f"training check ended {status}")
        return parse_output(str(invocation.get("StandardOutputContent", "")))

    def _await(self, started: list[tuple[str, list[str]]]) -> dict[str, TrainingCheck]:
        # GetCommandInvocation per instance: it carries the output and is what every SSM endpoint implements.
        # Every command is awaited together, so the timeout bounds the whole check, not each batch.
        pending = [(command_id, instance_id) for command_id, batch in started for instance_id in batch]
        results: dict[str, TrainingCheck] = {}
        deadline = self._monotonic() + self._timeout
        while pending:
            still_pending: list[tuple[str, str]] = []
            for target, verdict in zip(pending, self._map(self._invocation, pending), strict=True):
                if verdict is None:
                    still_pending.append(target)
                else:
                    results[target[1]] = verdict
            pending = still_pending
            if not pending:
                break
            if self._monotonic() >= deadline:
                results.update((i, TrainingCheck(Training.UNKNOWN, "no answer in time")) for _, i in pending)
                break
            if not self._can_wait():
                results.update((i, DEFERRED) for _, i in pending)
                break
            self._sleep(self._poll_interval)
        return results
