"""Lyceum's sweep as one call: read the VMs and runs, judge them (lyceum.rules), and run the providers' mark cycle.

A refused key or an API that does not answer is this provider's error alone, in one line: nothing is decided
and nothing is written, and the AWS sweep never hears of it.
"""

from __future__ import annotations

from trainctl.aws.notifications import Notifier
from trainctl.core.clock import Clock
from trainctl.core.sweep_settings import SweepSettings
from trainctl.lyceum.act import abort_run, terminate_vm
from trainctl.lyceum.client import PROVIDER, LyceumClient
from trainctl.lyceum.read import read_inventory
from trainctl.lyceum.rules import RUN, judge_inventory
from trainctl.lyceum.settings import LyceumSettings
from trainctl.providers.sweep import (
    ProviderLedger,
    ProviderRoom,
    ProviderSweepResult,
    provider_id,
    sweep_after_read,
)
from trainctl.sweep.rules import Decision

NEXT_STEPS = (
    "Lyceum has no tags: to keep a marked VM or run, rename it out of the name prefix trainctl sweeps "
    "before the time the notice names (a VM cannot be stopped, only terminated).",
)


def act(client: LyceumClient, decision: Decision, deadline: float | None) -> tuple[str, str]:
    """Terminate a VM or abort a run, read back; one someone else ended first is done. A refused key raises."""
    if decision.action != "terminate":
        return "failed", f"{decision.action} is not an action on Lyceum"
    resource = provider_id(decision.resource_id)
    if decision.resource_type == RUN:
        outcome = abort_run(client, resource, deadline=deadline)
    else:
        outcome = terminate_vm(client, resource, deadline=deadline)
    return ("done" if outcome.ended else "failed"), outcome.detail


def run_lyceum_sweep(
    client: LyceumClient,
    lyceum: LyceumSettings,
    settings: SweepSettings,
    clock: Clock,
    *,
    ledger: ProviderLedger | None,
    notifier: Notifier | None,
    deadline: float | None = None,
) -> ProviderSweepResult:
    now = clock()
    return sweep_after_read(
        PROVIDER,
        lambda: read_inventory(client, lyceum, now, deadline=deadline),
        lambda inventory: ProviderRoom(
            provider=PROVIDER,
            judge=lambda _before: judge_inventory(inventory, lyceum, now),
            act=lambda decision: act(client, decision, deadline),
            next_steps=NEXT_STEPS,
        ),
        settings,
        now,
        ledger=ledger,
        notifier=notifier,
    )
