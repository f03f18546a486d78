"""Lyceum Cloud's REST API, the calls trainctl makes, on the providers' shared JSON client.

Paths and shapes follow Lyceum's published API reference (base https://api.lyceum.technology/api/v2/external,
Bearer `lk_` API key): GET /vms/list -> {"vms": [...], "total": n}; GET /vms/{vm_id}/status; DELETE /vms/{vm_id};
GET /billing/credits; GET /workloads/list -> a JSON array of live runs; POST /workloads/abort/{execution_id}.
Errors come as {"detail": "..."} with the status code. The list calls take no page parameters: one call is the
whole list. This module only fetches and checks the envelope; reading each VM and run is trainctl.lyceum.read's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainctl.core.errors import TrainctlError
from trainctl.providers.http import ProviderHttp, path_segment

PROVIDER = "lyceum"
# The command line reads the key from this variable; the deployed sweep from its secret.
KEY_VARIABLE = "LYCEUM_API_KEY"
KEY_PREFIX = "lk_"


class LyceumKeyProblem(TrainctlError):
    """The Lyceum API key given is missing or not of the documented form; the message never holds the key."""


def checked_key(key: str | None) -> str:
    """The key, or a refusal in words: Lyceum's API keys begin with lk_ (a short-lived JWT is no key to deploy)."""
    if not key or not key.strip():
        raise LyceumKeyProblem(f"lyceum: no API key: set {KEY_VARIABLE} (a key from Lyceum's dashboard, lk_...)")
    key = key.strip()
    if not key.startswith(KEY_PREFIX) or any(ch.isspace() or not ch.isprintable() for ch in key):
        raise LyceumKeyProblem(f"lyceum: {KEY_VARIABLE} is not a Lyceum API key (those begin with {KEY_PREFIX})")
    return key


@dataclass
class LyceumClient:
    """The Lyceum calls trainctl makes, each one HTTP request through `http` (which honours 429 Retry-After)."""

    http: ProviderHttp

    @classmethod
    def connect(cls, base_url: str, key: str | None, **options: Any) -> LyceumClient:
        """A client for the API at `base_url` with `key`; `options` go to ProviderHttp (sleep, clocks, patience)."""
        return cls(ProviderHttp(PROVIDER, base_url, checked_key(key), **options))

    def list_vms(self, *, deadline: float | None = None) -> list[Any]:
        """Every VM entry as the API gave it: one call, no pages."""
        body = self.http.get("/vms/list", deadline=deadline).body
        if not isinstance(body, dict) or not isinstance(body.get("vms"), list):
            raise self.http.unreadable("GET /vms/list", "the answer has no list `vms`")
        return list(body["vms"])

    def vm_status(self, vm_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        body = self.http.get(f"/vms/{path_segment(vm_id, 'Lyceum VM id')}/status", deadline=deadline).body
        if not isinstance(body, dict):
            raise self.http.unreadable("GET /vms/{vm_id}/status", "the answer is not an object")
        return body

    def terminate_vm(self, vm_id: str, *, deadline: float | None = None) -> None:
        """DELETE /vms/{vm_id}: the VM ends and its billing with it (Lyceum has no stop that keeps the disk)."""
        self.http.delete(f"/vms/{path_segment(vm_id, 'Lyceum VM id')}", deadline=deadline)

    def credits(self, *, deadline: float | None = None) -> dict[str, Any]:
        body = self.http.get("/billing/credits", deadline=deadline).body
        if not isinstance(body, dict):
            raise self.http.unreadable("GET /billing/credits", "the answer is not an object")
        return body

    def list_runs(self, *, deadline: float | None = None) -> list[Any]:
        """The runs not yet complete, as the API gave them."""
        body = self.http.get("/workloads/list", deadline=deadline).body
        if not isinstance(body, list):
            raise self.http.unreadable("GET /workloads/list", "the answer is not a list")
        return list(body)

    def abort_run(self, execution_id: str, *, deadline: float | None = None) -> None:
        """POST /workloads/abort/{execution_id}: a hard stop; the run ends as `aborted`."""
        self.http.post(f"/workloads/abort/{path_segment(execution_id, 'Lyceum run id')}", None, deadline=deadline)

    @property
    def redact(self) -> Callable[[str], str]:
        return self.http.redact
