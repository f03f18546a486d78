"""RunPod's sweep as one call: read the account, judge it (runpod.rules), and run the providers' mark cycle.

A refused key or an API that does not answer is this provider's error alone, in one line: nothing is decided
and nothing is written, and the AWS sweep never hears of it. Just before a network volume is deleted its pods and
endpoints are read again: one that mounts it now, or a read that fails, keeps it by name (safety model 12).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from trainctl.aws.notifications import Notifier
from trainctl.core.clock import Clock
from trainctl.core.sweep_settings import SweepSettings
from trainctl.core.text import one_line
from trainctl.providers.http import ProviderError, ProviderKeyRejected
from trainctl.providers.sweep import (
    ProviderLedger,
    ProviderRoom,
    ProviderSweepResult,
    provider_id,
    sweep_after_read,
)
from trainctl.runpod.act import ActionResult, delete_network_volume, stop_pod, terminate_pod
from trainctl.runpod.client import RunpodClient, read_account
from trainctl.runpod.read import PROVIDER, endpoint_mounts, read_inventory
from trainctl.runpod.rules import MOUNTS_UNKNOWN, judge_account, observed_ids, use_before_delete
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


def kept_before_delete(
    client: RunpodClient, runpod: RunpodSettings, decision: Decision, now: datetime, deadline: float | None
) -> Decision | None:
    """A network volume's deletion, its pods and endpoints read again just before (two calls): the decision that
    keeps it (a pod or endpoint mounts it, or either read failed), else None. A refused key raises."""
    if decision.action != "delete":
        return None
    seen: tuple[str, str] | None
    try:
        pods = client.list_pods(deadline=deadline)
    except ProviderKeyRejected:
        raise
    except ProviderError as error:
        seen = MOUNTS_UNKNOWN, f"the pods could not be read ({one_line(str(error), 200)})"
    else:
        endpoints: list[Any] | None = None
        unread = ""
        try:
            endpoints = client.list_endpoints(deadline=deadline)
        except ProviderError as error:  # the key's refusal too, as in the sweep's own read
            unread = f"the serverless endpoints could not be read ({one_line(str(error), 200)})"
        again = read_inventory(pods, [], runpod, now, endpoints, endpoints_unread=unread)
        mounting, _unreadable = endpoint_mounts(endpoints or [])
        seen = use_before_delete(provider_id(decision.resource_id), again, mounting)
    if seen is None:
        return None
    protection, why = seen
    return replace(
        decision,
        action="keep",
        outcome="skipped",
        protections=(protection,),
        detail=f"{decision.detail}; read again just before its deletion, {client.http.redact(why)}: nothing done",
    )


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
            recheck=lambda decision: kept_before_delete(client, runpod, decision, clock(), deadline),
            next_steps=NEXT_STEPS,
            observed_ids=observed_ids(inventory),
        ),
        settings,
        now,
        ledger=ledger,
        notifier=notifier,
    )
