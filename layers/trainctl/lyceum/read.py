"""Lyceum VMs and runs read into trainctl's resource model: pure, the API's JSON and an instant in.

A VM becomes an Instance with provider "lyceum": its vm_id, its status mapped to trainctl's states, its hardware
profile as the type and created_at as its launch. Lyceum publishes no hourly price for a profile and does not say
what unit or period `billed` counts, so a VM is unpriced (never $0) and `billed` is kept as given. An entry in a
shape the documentation does not describe (a field missing, a status outside the documented lifecycle, a time
that cannot be read or lies in the future, not even an object) is not a VM trainctl may act on: it is listed as
unreadable, with a one-line problem, and every other entry is read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from trainctl.core.protections import Protection
from trainctl.core.resources import Instance
from trainctl.core.text import one_line
from trainctl.lyceum.client import PROVIDER, LyceumClient
from trainctl.lyceum.settings import LyceumSettings

# Lyceum's VM lifecycle (its VM guide) in trainctl's instance states. Lyceum has no stop that keeps the disk.
VM_STATES = {
    "pending": "pending",
    "provisioning": "pending",
    "running": "running",
    "ready": "running",
    "stopped": "stopped",
    "terminated": "terminated",
    "error": "error",
}
# A run (its runs guide): live while pending, starting or running; the rest are how it ended.
RUN_LIVE = ("pending", "starting", "running")
RUN_ENDED = ("completed", "failed", "system_failure", "cancelled", "aborted")
UNPRICED = "unpriced"
# A clock a little ahead of ours is not an error; a creation time further ahead cannot be right.
CLOCK_SKEW = timedelta(minutes=5)
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_LABEL = 64


class NotInDocumentedShape(ValueError):
    """One entry of Lyceum's answer is not in the shape its documentation describes; the text says how."""


@dataclass(frozen=True, slots=True)
class LyceumVm:
    """A Lyceum VM as trainctl reads it: the Instance every rule reads, and what only Lyceum says."""

    instance: Instance
    name: str
    status: str  # Lyceum's own word; instance.state is trainctl's
    owner: str | None  # from the name by the team's pattern; None is unknown
    in_scope: bool
    billed: float | None  # as Lyceum gave it: its documentation names no unit or period
    uptime_seconds: int | None = None  # only the status call reports it
    hourly_usd: float | None = None  # no published price per profile: unpriced, never $0
    price_source: str = UNPRICED

    @property
    def vm_id(self) -> str:
        return self.instance.resource_id


@dataclass(frozen=True, slots=True)
class LyceumRun:
    """A live serverless run: its id, status, start (for a wall-clock cap) and whether it is in scope."""

    run_id: str
    status: str
    started: datetime  # created_at: the cap counts from submission, queueing included
    hardware_profile: str
    file_name: str
    in_scope: bool


@dataclass(frozen=True, slots=True)
class Unreadable:
    """An entry trainctl could not read: protected as `unreadable`, by its id (else its name, else its place)."""

    label: str
    kind: Literal["vm", "run"]
    problem: str
    protection: Protection = Protection.UNREADABLE


@dataclass(frozen=True, slots=True)
class LyceumInventory:
    """Everything read from one Lyceum organisation at one moment."""

    vms: tuple[LyceumVm, ...] = ()
    runs: tuple[LyceumRun, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()

    def problems(self) -> dict[str, str]:
        """Label -> why, as Guards.unreadable maps an id to why its read failed."""
        return {item.label: item.problem for item in self.unreadable}


def _label(entry: Any, id_field: str, index: int) -> str:
    if isinstance(entry, dict):
        found = entry.get(id_field)
        if isinstance(found, str) and _ID.match(found):
            return found
        name = entry.get("name") or entry.get("file_name")
        if isinstance(name, str) and name:
            return f"name '{one_line(name, _LABEL)}'"
    return f"entry {index + 1} of the list"


def _optional_text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise NotInDocumentedShape(f"{key} is not a string")
    return value


def _text(entry: dict[str, Any], key: str) -> str:
    value = _optional_text(entry, key)
    if value is None:
        raise NotInDocumentedShape(f"{key} is missing")
    return value


def _instant(entry: dict[str, Any], key: str, now: datetime) -> datetime:
    text = _text(entry, key)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise NotInDocumentedShape(f"{key} is not an ISO 8601 date-time") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise NotInDocumentedShape(f"{key} has no time zone")
    try:
        when = when.astimezone(UTC)
    except OverflowError:
        raise NotInDocumentedShape(f"{key} is out of range") from None
    if when > now + CLOCK_SKEW:
        raise NotInDocumentedShape(f"{key} lies in the future")
    return when


def _number(entry: dict[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise NotInDocumentedShape(f"{key} is not a number of zero or more")
    return float(value)


def owner_from_name(name: str, settings: LyceumSettings) -> str | None:
    """The owner the team's naming convention puts in a VM's name; None (unknown) when it is not there or odd."""
    pattern = settings.lyceum_owner_pattern
    if pattern is None or not name:
        return None
    match = pattern.search(name)
    owner = match.group("owner") if match else None
    # An owner goes into notices: a control character or an overlong value is no owner anyone wrote.
    if not owner or len(owner) > 128 or one_line(owner) != owner:
        return None
    return owner


def in_scope(resource_id: str, name: str, settings: LyceumSettings) -> bool:
    """An id listed, or a name with the prefix; unset prefix and no ids: nothing of Lyceum's is in scope."""
    if resource_id in settings.lyceum_ids:
        return True
    prefix = settings.lyceum_name_prefix
    return prefix is not None and name.startswith(prefix)


def read_vm(entry: Any, settings: LyceumSettings, now: datetime, account: str = "") -> LyceumVm:
    """One entry of GET /vms/list (or a GET /vms/{vm_id}/status answer) as a VM; NotInDocumentedShape if not."""
    if not isinstance(entry, dict):
        raise NotInDocumentedShape("the entry is not an object")
    vm_id = _text(entry, "vm_id")
    if not _ID.match(vm_id):
        raise NotInDocumentedShape("vm_id is not letters, digits, _ and -")
    status = _text(entry, "status")
    if status not in VM_STATES:
        raise NotInDocumentedShape("status is not one Lyceum documents")
    created = _instant(entry, "created_at", now)
    name = _optional_text(entry, "name") or ""
    profile = _optional_text(entry, "hardware_profile") or "unknown"
    billed = _number(entry, "billed")
    uptime = _number(entry, "uptime_seconds")
    instance = Instance(
        resource_id=vm_id,
        region="",  # Lyceum's API names no region
        state=VM_STATES[status],
        instance_type=profile,
        launch_time=created,
        availability_zone="",
        first_launch_time=created,
        account=account,
        provider=PROVIDER,
    )
    return LyceumVm(
        instance=instance,
        name=name,
        status=status,
        owner=owner_from_name(name, settings),
        in_scope=in_scope(vm_id, name, settings),
        billed=billed,
        uptime_seconds=int(uptime) if uptime is not None else None,
    )


def read_run(entry: Any, settings: LyceumSettings, now: datetime) -> LyceumRun | None:
    """One entry of GET /workloads/list; None for a run that has ended; NotInDocumentedShape if unreadable."""
    if not isinstance(entry, dict):
        raise NotInDocumentedShape("the entry is not an object")
    run_id = _text(entry, "execution_id")
    if not _ID.match(run_id):
        raise NotInDocumentedShape("execution_id is not letters, digits, _ and -")
    status = _text(entry, "status")
    if status in RUN_ENDED:
        return None
    if status not in RUN_LIVE:
        raise NotInDocumentedShape("status is not one Lyceum documents")
    started = _instant(entry, "created_at", now)
    file_name = _optional_text(entry, "file_name") or ""
    return LyceumRun(
        run_id=run_id,
        status=status,
        started=started,
        hardware_profile=_optional_text(entry, "hardware_profile") or "unknown",
        file_name=file_name,
        in_scope=in_scope(run_id, file_name, settings),
    )


def read_entries(
    vm_entries: Iterable[Any], run_entries: Iterable[Any], settings: LyceumSettings, now: datetime, account: str = ""
) -> LyceumInventory:
    """Every entry read; one that cannot be read is listed as unreadable and never stops the rest."""
    vms: list[LyceumVm] = []
    runs: list[LyceumRun] = []
    unreadable: list[Unreadable] = []
    for index, entry in enumerate(vm_entries):
        try:
            vms.append(read_vm(entry, settings, now, account))
        except NotInDocumentedShape as exc:
            label = _label(entry, "vm_id", index)
            unreadable.append(Unreadable(label, "vm", f"Lyceum VM {label}: {exc}; kept, not acted on"))
    for index, entry in enumerate(run_entries):
        try:
            run = read_run(entry, settings, now)
        except NotInDocumentedShape as exc:
            label = _label(entry, "execution_id", index)
            unreadable.append(Unreadable(label, "run", f"Lyceum run {label}: {exc}; kept, not acted on"))
            continue
        if run is not None:
            runs.append(run)
    return LyceumInventory(tuple(vms), tuple(runs), tuple(unreadable))


def read_inventory(
    client: LyceumClient, settings: LyceumSettings, now: datetime, *, account: str = "", deadline: float | None = None
) -> LyceumInventory:
    """Two calls, the VM list and the run list, read into the inventory; a provider error is raised, not hidden."""
    vm_entries = client.list_vms(deadline=deadline)
    run_entries = client.list_runs(deadline=deadline)
    return read_entries(vm_entries, run_entries, settings, now, account)
