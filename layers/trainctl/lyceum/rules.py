"""Lyceum's sweep rules: pure functions of (inventory, settings, clock).

- A VM older than TRAINCTL_LYCEUM_VM_TTL is terminated, after notice only: a mark, a full grace period, then the
  act (Lyceum has no stop that keeps a VM's disk, so there is nothing milder to do first). No ttl set, no rule.
- A run longer than TRAINCTL_LYCEUM_RUN_MAX_WALL_CLOCK is aborted, after a mark too. The decision says
  `terminate` for a run: aborting is how a run is ended.
- No idle rule: Lyceum's API reports no utilisation for a VM, and a guess is no evidence.
- An entry in a shape the documentation does not describe is protected by name (`unreadable`).
"""

from __future__ import annotations

from datetime import datetime

from trainctl.core.protections import Protection
from trainctl.lyceum.client import PROVIDER
from trainctl.lyceum.read import LyceumInventory, LyceumRun, LyceumVm, Unreadable
from trainctl.lyceum.settings import LyceumSettings
from trainctl.providers.sweep import Judged, Judgement, ledger_id
from trainctl.sweep.rules import Reason

WALL_CLOCK_CAP = "wall-clock-cap"
RUN = "run"


def judge_vm(vm: LyceumVm, settings: LyceumSettings, now: datetime) -> Judged:
    base = Judged(
        resource_id=ledger_id(PROVIDER, vm.vm_id),
        resource_type="instance",
        region=PROVIDER,
        action="terminate",
        owner=vm.owner,
        hourly_usd=vm.hourly_usd,
        price_source=vm.price_source,
    )
    ttl = settings.lyceum_vm_ttl
    if ttl is None or now - vm.instance.launch_time < ttl:
        return base
    return Judged(
        resource_id=base.resource_id,
        resource_type=base.resource_type,
        region=base.region,
        action="terminate",
        owner=base.owner,
        reasons=(str(Reason.TTL_EXPIRED),),
        detail=f"made {vm.instance.launch_time:%Y-%m-%dT%H:%MZ}, past the VM time-to-live",
        hourly_usd=base.hourly_usd,
        price_source=base.price_source,
    )


def judge_run(run: LyceumRun, settings: LyceumSettings, now: datetime) -> Judged:
    base = Judged(resource_id=ledger_id(PROVIDER, run.run_id), resource_type=RUN, region=PROVIDER, action="terminate")
    cap = settings.lyceum_run_max_wall_clock
    if cap is None or now - run.started < cap:
        return base
    return Judged(
        resource_id=base.resource_id,
        resource_type=RUN,
        region=PROVIDER,
        action="terminate",
        reasons=(WALL_CLOCK_CAP,),
        detail=f"submitted {run.started:%Y-%m-%dT%H:%MZ}, past the wall-clock cap; terminate aborts the run",
    )


def judge_unreadable(entry: Unreadable) -> Judged:
    return Judged(
        resource_id=ledger_id(PROVIDER, entry.label),
        resource_type="instance" if entry.kind == "vm" else RUN,
        region=PROVIDER,
        action="keep",
        protections=(str(Protection.UNREADABLE),),
        detail=entry.problem,
    )


def judge_inventory(inventory: LyceumInventory, settings: LyceumSettings, now: datetime) -> Judgement:
    """Every live VM and run in scope judged, and every entry that could not be read named."""
    vms = [vm for vm in inventory.vms if vm.in_scope and vm.instance.state != "terminated"]
    runs = [run for run in inventory.runs if run.in_scope]
    judged = [
        *(judge_vm(vm, settings, now) for vm in vms),
        *(judge_run(run, settings, now) for run in runs),
        *(judge_unreadable(entry) for entry in inventory.unreadable),
    ]
    scanned = len(inventory.vms) + len(inventory.runs) + len(inventory.unreadable)
    warnings = tuple(entry.problem for entry in inventory.unreadable)
    return Judgement(tuple(judged), {}, scanned, len(vms) + len(runs), warnings)
