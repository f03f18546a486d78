"""`trainctl prewarm`: start the pre-warm workflow and follow it, state by state, from its execution history."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from trainctl.aws.clients import ClientFactory
from trainctl.prewarm.rules import PrewarmRequest

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
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
    "CompensateDetach": "a step failed: detaching the volume",
    "CompensateTerminate": "a step failed: terminating the worker",
}


def follow(
    factory: ClientFactory,
    execution_arn: str,
    console: Console | None,
    *,
    poll_seconds: float = 0.5,
    timeout_seconds: float = 14 * 3600,
) -> dict[str, Any]:
    """Print each narrated state as the workflow enters it; return the final status, output and counts."""
    sfn = factory.client("stepfunctions")
    seen = 0
    transitions = 0
    started = time.monotonic()
    last_narrated = ""
    while True:
        events: list[dict[str, Any]] = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events.extend(page["events"])
        for event in events[seen:]:
            if event["type"].endswith("StateEntered"):
                transitions += 1
                name = event.get("stateEnteredEventDetails", {}).get("name", "")
                text = NARRATION.get(name)
                if console is not None and text and text != last_narrated:
                    console.print(f"  [dim]{time.monotonic() - started:6.1f}s[/] {text}")
                    last_narrated = text
        seen = len(events)
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] in TERMINAL or time.monotonic() - started > timeout_seconds:
            break
        time.sleep(poll_seconds)
    output = json.loads(described.get("output") or "null")
    return {
        "execution_arn": execution_arn,
        "status": described["status"],
        "error": described.get("error"),
        "cause": described.get("cause"),
        "state_transitions": transitions,
        "history_events": seen,
        "output": output,
    }


def start_prewarm(factory: ClientFactory, state_machine_arn: str, request: PrewarmRequest) -> str:
    sfn = factory.client("stepfunctions")
    target = request.volume_id or "new-volume"
    name = f"prewarm-{target}-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"[:80]
    started = sfn.start_execution(
        stateMachineArn=state_machine_arn, name=name, input=json.dumps(request.model_dump(mode="json"))
    )
    return str(started["executionArn"])
