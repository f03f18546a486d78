"""`trainctl prewarm`: start the pre-warm workflow and follow it, state by state, from its execution history.

The wait is bounded (a timeout), visible (a progress line on a terminal, a line a minute elsewhere), and it ends
early, with the reason, when the execution cannot progress: on an emulator that records executions without
running them, or that cannot run their Lambda tasks.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from trainctl.aws.clients import ClientFactory
from trainctl.prewarm.rules import PrewarmRequest

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
DEFAULT_TIMEOUT_SECONDS = 6 * 3600  # the sweep treats a pre-warm worker older than this as left over
# On an emulator a workflow moves at once or never: this long without a new history event means never.
EMULATOR_STALL_SECONDS = 30.0
MAX_POLL_SECONDS = 5.0
# What a person reads for each state the workflow enters; states not named here are bookkeeping.
NARRATION = {
    "Plan": "validating the request and sizing the worker",
    "CreateVolume": "creating the volume",
    "RestoreVolume": "restoring the volume from its snapshot",
    "RestoreVolumeAtRate": "restoring the volume at a provisioned initialisation rate",
    "LaunchWorker": "launching a worker in the volume's zone",
    "UseGivenInstance": "using the given instance",
    "Attach": "attaching the volume",
    "RunPrewarmDocument": "running the pre-warm document (waits until SSM manages the worker)",
    "GetCommandInvocation": "copying",
    "Detach": "detaching the volume",
    "TerminateWorker": "terminating the worker",
    "Report": "reading the worker's report",
    "TagVolume": "tagging the volume",
    "SnapshotVolume": "snapshotting the volume",
    "CheckInitialisation": "EBS is initialising the volume from its snapshot (no worker)",
    "ReportInitialised": "measuring the initialisation's time and rate",
    "CompensateDetach": "a step failed: detaching the volume",
    "CompensateTerminate": "a step failed: terminating the worker",
}
CANNOT_RUN = (
    "this emulator records executions without running them (a plain moto server): start one that runs "
    "workflows and their Lambda tasks with `trainctl emulator` (or `make emulator`)"
)


# The request's fields as the command line names them, for a refusal that comes back from the workflow.
FLAGS = {
    "force": "--allow-persistent",
    "instance_id": "--instance-id",
    "mount_point": "--mount-point",
    "volume.initialization_rate": "--initialization-rate",
    "initialization_rate": "--initialization-rate",
    "volume.size_gib": "--size",
    "size_gib": "--size",
    "volume.zone": "--zone",
    "volume.snapshot_id": "--snapshot",
    "snapshot_id": "--snapshot",
    "snapshot (after)": "--snapshot-after",
}
_FIELD = re.compile(
    r"(?<![\w.:-])(" + "|".join(re.escape(k) for k in sorted(FLAGS, key=len, reverse=True)) + r")(?![\w-])"
)


def in_flags(message: str) -> str:
    """A refusal in the command line's words: `force` is --allow-persistent, `instance_id` is --instance-id."""
    return _FIELD.sub(lambda m: FLAGS[m.group(1)], message)


def refusal(cause: str | None) -> str:
    """The plan task's refusal as one line: its message out of the Lambda's JSON error, in the flags' names."""
    text = cause or "the workflow gave no reason"
    try:
        error = json.loads(text)
    except ValueError:
        error = None
    if isinstance(error, dict) and error.get("errorMessage"):
        text = str(error["errorMessage"])
    return in_flags(" ".join(text.split()))


def interrupted(execution_arn: str) -> str:
    """What Ctrl-C leaves: the execution runs on in AWS; how to follow it and how to stop it."""
    name = execution_arn.rsplit(":", 1)[-1]
    return (
        f"interrupted: the pre-warm goes on in AWS as execution {name}; follow it with "
        f"`aws stepfunctions describe-execution --execution-arn {execution_arn}`, stop it with "
        f"`aws stepfunctions stop-execution --execution-arn {execution_arn}`"
    )


def _stalled_message(state: str, task: str, seconds: float) -> str:
    where = f"in state {state}" if state else "before its first state"
    lambda_hint = (
        ": a Lambda task, which a plain emulator cannot run; `trainctl emulator` (or `make emulator`) runs them"
        if task == "lambda"
        else "; an emulator that runs workflows is what `trainctl emulator` (or `make emulator`) starts"
    )
    return f"the execution has not moved for {seconds:.0f}s {where}{lambda_hint}"


def follow(
    factory: ClientFactory,
    execution_arn: str,
    console: Console | None,
    *,
    poll_seconds: float = 0.5,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    stall_seconds: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Print each narrated state as the workflow enters it; return the final status, output and counts.

    `on_wait` hears a one-line progress text on every poll. Following stops at the timeout (`timed_out`) or,
    with `stall_seconds`, when nothing happened for that long (`stalled` says why); the execution goes on.
    """
    sfn = factory.client("stepfunctions")
    seen = 0
    transitions = 0
    started = time.monotonic()
    last_change = started
    last_narrated = ""
    state = ""
    task = ""
    stalled: str | None = None
    timed_out = False
    ended_in_history = 0
    wait = poll_seconds
    while True:
        events: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(page["events"])
        fresh = events[seen:]
        for event in fresh:
            if event["type"].endswith("StateEntered"):
                transitions += 1
                state = event.get("stateEnteredEventDetails", {}).get("name", "")
                task = ""
                text = NARRATION.get(state)
                if console is not None and text and text != last_narrated:
                    console.print(Text.assemble((f"  {time.monotonic() - started:6.1f}s", "dim"), f" {text}"))
                    last_narrated = text
            elif event["type"] == "TaskScheduled":
                task = str(event.get("taskScheduledEventDetails", {}).get("resourceType", ""))
            elif event["type"] == "LambdaFunctionScheduled":
                task = "lambda"
        seen = len(events)
        now = time.monotonic()
        if fresh:
            last_change, wait = now, poll_seconds
        else:
            wait = min(wait * 1.5, MAX_POLL_SECONDS)
        described = sfn.describe_execution(executionArn=execution_arn)
        status = described["status"]
        if status in TERMINAL:
            break
        if now - started > timeout_seconds:
            timed_out = True
            break
        finished = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
        # The history says it ended and the execution that it runs, poll after poll: nothing runs it.
        ended_in_history = ended_in_history + 1 if any(e["type"] in finished for e in events) else 0
        if ended_in_history >= 3:
            stalled = CANNOT_RUN
            break
        if stall_seconds is not None and now - last_change > stall_seconds:
            stalled = _stalled_message(state, task, now - last_change)
            break
        if on_wait is not None:
            doing = NARRATION.get(state, state or "starting")
            on_wait(f"{now - started:6.1f}s {doing} (state {state or '-'}, {transitions} transitions)")
        time.sleep(wait)
    output = json.loads(described.get("output") or "null")
    return {
        "execution_arn": execution_arn,
        "status": described["status"],
        "error": described.get("error"),
        "cause": described.get("cause"),
        "state_transitions": transitions,
        "history_events": seen,
        "output": output,
        "timed_out": timed_out,
        "stalled": stalled,
        "waited_seconds": round(time.monotonic() - started, 1),
    }


def start_prewarm(factory: ClientFactory, state_machine_arn: str, request: PrewarmRequest) -> str:
    sfn = factory.client("stepfunctions")
    target = request.volume_id or (request.volume.snapshot_id if request.volume else None) or "new-volume"
    name = f"prewarm-{target}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"[:80]
    started = sfn.start_execution(
        stateMachineArn=state_machine_arn, name=name, input=json.dumps(request.model_dump(mode="json"))
    )
    return str(started["executionArn"])
