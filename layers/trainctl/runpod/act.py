"""RunPod's actions, each read back: stop a pod, terminate a pod, delete a network volume.

A 409 on a stop means the pod was not in a state to stop: most often its user stopped it first. The pod is read
back and, if it is exited, the outcome is that it was already stopped, not a failure. A refused key is not one
resource's failure: it propagates, so the provider's sweep stops and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from trainctl.core.text import one_line
from trainctl.providers.http import ProviderConflict, ProviderError, ProviderKeyRejected, ProviderNotFound
from trainctl.runpod.client import RunpodClient

Outcome = Literal["done", "already-done", "not-confirmed", "failed"]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did, as the read-back saw it."""

    resource_id: str
    action: Literal["stop", "terminate", "delete"]
    outcome: Outcome
    status_after: str | None  # RunPod's status read back, "gone" when the resource is no more, None if unread
    detail: str = ""


def _status(pod: Any) -> str | None:
    status = pod.get("status") if isinstance(pod, dict) else None
    return one_line(status, 32) if isinstance(status, str) else None


def _read_back_pod(client: RunpodClient, pod_id: str) -> str | None:
    try:
        return _status(client.get_pod(pod_id))
    except ProviderNotFound:
        return "gone"
    except ProviderKeyRejected:
        raise
    except ProviderError:
        return None


def stop_pod(client: RunpodClient, pod_id: str, *, deadline: float | None = None) -> ActionResult:
    """Stop a pod (its disk stays and still bills); a stop that raced its user's own stop is already done."""
    try:
        client.stop_pod(pod_id, deadline=deadline)
    except ProviderKeyRejected:
        raise
    except ProviderConflict as conflict:
        after = _read_back_pod(client, pod_id)
        if after == "EXITED":
            return ActionResult(pod_id, "stop", "already-done", after, "it was already stopped")
        if after in ("TERMINATED", "gone"):
            return ActionResult(pod_id, "stop", "already-done", after, "it was already terminated")
        return ActionResult(pod_id, "stop", "failed", after, str(conflict))
    except ProviderNotFound:
        return ActionResult(pod_id, "stop", "already-done", "gone", "it was already terminated")
    except ProviderError as error:
        return ActionResult(pod_id, "stop", "failed", _read_back_pod(client, pod_id), str(error))
    after = _read_back_pod(client, pod_id)
    if after == "EXITED":
        return ActionResult(pod_id, "stop", "done", after)
    return ActionResult(pod_id, "stop", "not-confirmed", after, "the stop was accepted; the pod is not exited yet")


def terminate_pod(client: RunpodClient, pod_id: str, *, deadline: float | None = None) -> ActionResult:
    """Terminate a pod: it and its own disk are gone; network volumes it mounts stay."""
    try:
        client.terminate_pod(pod_id, deadline=deadline)
    except ProviderKeyRejected:
        raise
    except ProviderNotFound:
        return ActionResult(pod_id, "terminate", "already-done", "gone", "it was already terminated")
    except ProviderError as error:
        return ActionResult(pod_id, "terminate", "failed", _read_back_pod(client, pod_id), str(error))
    after = _read_back_pod(client, pod_id)
    if after in ("TERMINATED", "gone"):
        return ActionResult(pod_id, "terminate", "done", after)
    return ActionResult(pod_id, "terminate", "not-confirmed", after, "the termination was accepted; the pod remains")


def delete_network_volume(client: RunpodClient, volume_id: str, *, deadline: float | None = None) -> ActionResult:
    """Delete a network volume and its data: the caller has decided it is unmounted, in scope and past its grace."""
    try:
        client.delete_network_volume(volume_id, deadline=deadline)
    except ProviderKeyRejected:
        raise
    except ProviderNotFound:
        return ActionResult(volume_id, "delete", "already-done", "gone", "it was already deleted")
    except ProviderError as error:
        return ActionResult(volume_id, "delete", "failed", None, str(error))
    try:
        listed = client.list_network_volumes(deadline=deadline)
    except ProviderKeyRejected:
        raise
    except ProviderError as error:
        return ActionResult(volume_id, "delete", "not-confirmed", None, f"the read-back failed: {error}")
    still_there = any(isinstance(v, dict) and v.get("id") == volume_id for v in listed)
    if still_there:
        return ActionResult(volume_id, "delete", "not-confirmed", "present", "the deletion was accepted; it remains")
    return ActionResult(volume_id, "delete", "done", "gone")
