"""RunPod's sweep as one call: read the account, judge it (runpod.rules), and run the providers' mark cycle.

A refused key or an API that does not answer is this provider's error alone, in one line: nothing is decided
and nothing is written, and the AWS sweep never hears of it.
"""

from __future__ import annotations

from datetime import datetime

from trainctl.aws.notifications import Notifier
from trainctl.core.clock import Clock
from trainctl.core.sweep_settings import SweepSettings
from trainctl.providers.sweep import (
    ProviderLedger,
    ProviderRoom,
    ProviderSweepResult,
    provider_id,
    sweep_after_read,
)
from trainctl.runpod.act import ActionResult, delete_network_volume, stop_pod, terminate_pod
from trainctl.runpod.client import RunpodClient, read_account
from trainctl.runpod.read import PROVIDER
from trainctl.runpod.rules import judge_account, observed_ids
from trainctl.runpod.settings import RunpodSettings
from trainctl.sweep.rules import Decision

NEXT_STEPS = (
    "RunPod has no tags: to keep a marked pod, use it (its GPUs busy), or rename it out of the name prefix "
    "trainctl sweeps, before the time the notice names.",
)
# In the AWS sweep's outcome words: a stop its user made first is done, as a retried delete of a gone volume is.
OUTCOMES = {"done": "done", "already-done": "done", "not-confirmed": "unverified", "failed": "failed"}


def act(client: RunpodClient, decision: Decision, deadline: float | None) -> tuple[str, str]:
    """The decision's call, read back; a refused key raises and stops RunPod's sweep."""
    resource = provider_id(decision.resource_id)
    result: ActionResult
    if decision.action == "stop":
        result = stop_pod(client, resource, deadline=deadline)
    elif decision.action == "terminate":
        result = terminate_pod(client, resource, deadline=deadline)
    elif decision.action == "delete":
        result = delete_network_volume(client, resource, deadline=deadline)
    else:
        return "failed", f"{decision.action} is not an action on RunPod"
    return OUTCOMES[result.outcome], result.detail


def run_runpod_sweep(
    client: RunpodClient,
    runpod: RunpodSettings,
    settings: SweepSettings,
    clock: Clock,
    *,
    ledger: ProviderLedger | None,
    notifier: Notifier | None,
    deadline: float | None = None,
) -> ProviderSweepResult:
    now: datetime = clock()
    return sweep_after_read(
        PROVIDER,
        lambda: read_account(client, runpod, now, deadline=deadline),
        lambda inventory: ProviderRoom(
            provider=PROVIDER,
            judge=lambda before: judge_account(inventory, before, settings, now),
            act=lambda decision: act(client, decision, deadline),
            next_steps=NEXT_STEPS,
            observed_ids=observed_ids(inventory),
        ),
        settings,
        now,
        ledger=ledger,
        notifier=notifier,
    )
