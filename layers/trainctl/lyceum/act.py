"""Lyceum actions, each read back: terminate a VM, abort a run.

Lyceum has no stop that keeps a VM's disk: terminating ends the VM, its disk and its billing, so the sweep only
terminates after notice. A 404 on a VM or run that someone else ended first is read back and reported as gone, not
as a failure. A refused key is not one resource's failure: it is raised, and the caller stops Lyceum's sweep
alone. Every text here comes from the shared client, which has removed the key from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from trainctl.lyceum.client import LyceumClient
from trainctl.lyceum.read import RUN_LIVE
from trainctl.providers.http import ProviderError, ProviderKeyRejected, ProviderNotFound

Result = Literal["done", "gone", "failed"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of one action after reading the resource back: done, gone already, or failed (and why)."""

    resource_id: str
    action: Literal["terminate", "abort"]
    result: Result
    detail: str = ""

    @property
    def ended(self) -> bool:
        """The resource no longer runs, whoever ended it."""
        return self.result in ("done", "gone")


def _vm_after(client: LyceumClient, vm_id: str, deadline: float | None) -> str | None:
    """The VM's status read back, or None when Lyceum no longer knows it (404)."""
    try:
        status = client.vm_status(vm_id, deadline=deadline).get("status")
    except ProviderNotFound:
        return None
    return status if isinstance(status, str) else "unknown"


def terminate_vm(client: LyceumClient, vm_id: str, *, deadline: float | None = None) -> Outcome:
    """DELETE the VM, then read it back: gone (404) or terminated is done; a 404 on the DELETE is gone already."""
    try:
        client.terminate_vm(vm_id, deadline=deadline)
    except ProviderKeyRejected:
        raise
    except ProviderNotFound:
        status = _vm_after(client, vm_id, deadline)
        if status is None or status == "terminated":
            return Outcome(vm_id, "terminate", "gone", "already terminated by someone else")
        return Outcome(vm_id, "terminate", "failed", f"DELETE answered 404 but Lyceum still lists it as {status}")
    except ProviderError as exc:
        return Outcome(vm_id, "terminate", "failed", str(exc))
    try:
        status = _vm_after(client, vm_id, deadline)
    except ProviderKeyRejected:
        raise
    except ProviderError as exc:
        return Outcome(vm_id, "terminate", "failed", f"terminated, but the read-back failed: {exc}")
    if status is None or status == "terminated":
        return Outcome(vm_id, "terminate", "done")
    return Outcome(vm_id, "terminate", "failed", f"Lyceum still lists it as {status} after the DELETE")


def _run_live(client: LyceumClient, run_id: str, deadline: float | None) -> bool:
    return any(
        isinstance(entry, dict) and entry.get("execution_id") == run_id and entry.get("status") in RUN_LIVE
        for entry in client.list_runs(deadline=deadline)
    )


def abort_run(client: LyceumClient, run_id: str, *, deadline: float | None = None) -> Outcome:
    """Abort the run, then read the live list back: no longer live is done; a 404 on a run that ended is gone."""
    try:
        client.abort_run(run_id, deadline=deadline)
        aborted = True
    except ProviderKeyRejected:
        raise
    except ProviderNotFound:
        aborted = False
    except ProviderError as exc:
        return Outcome(run_id, "abort", "failed", str(exc))
    try:
        live = _run_live(client, run_id, deadline)
    except ProviderKeyRejected:
        raise
    except ProviderError as exc:
        return Outcome(run_id, "abort", "failed", f"the read-back failed: {exc}")
    if live:
        said = "after the abort" if aborted else "though the abort answered 404"
        return Outcome(run_id, "abort", "failed", f"Lyceum still lists the run as live {said}")
    if aborted:
        return Outcome(run_id, "abort", "done")
    return Outcome(run_id, "abort", "gone", "had already ended")
