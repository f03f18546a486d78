"""The RunPod REST API v2 calls trainctl makes, on the providers' shared client: pods, network volumes.

The documentation describes the lists as returning everything the key's user owns and names no paging parameter,
so each list is one call; an answer whose envelope is not the documented one is refused whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainctl.providers.http import Answer, ProviderHttp, path_segment
from trainctl.runpod.read import PROVIDER, RunpodInventory, Unreadable, read_inventory
from trainctl.runpod.settings import RunpodSettings


@dataclass
class RunpodClient:
    """One RunPod account behind one API key."""

    http: ProviderHttp

    def _list(self, path: str, envelope: str, deadline: float | None) -> list[Any]:
        body = self.http.get(path, deadline=deadline).body
        if not isinstance(body, dict) or not isinstance(body.get(envelope), list):
            raise self.http.unreadable(f"GET {path}", f"the answer has no `{envelope}` list")
        items: list[Any] = body[envelope]
        return items

    def list_pods(self, *, deadline: float | None = None) -> list[Any]:
        return self._list("/pods", "pods", deadline)

    def list_network_volumes(self, *, deadline: float | None = None) -> list[Any]:
        return self._list("/network-volumes", "networkVolumes", deadline)

    def get_pod(self, pod_id: str, *, deadline: float | None = None) -> Any:
        return self.http.get(f"/pods/{path_segment(pod_id, 'pod id')}", deadline=deadline).body

    def stop_pod(self, pod_id: str, *, deadline: float | None = None) -> Answer:
        path = f"/pods/{path_segment(pod_id, 'pod id')}/action"
        return self.http.post(path, {"action": "stop"}, deadline=deadline)

    def terminate_pod(self, pod_id: str, *, deadline: float | None = None) -> Answer:
        return self.http.delete(f"/pods/{path_segment(pod_id, 'pod id')}", deadline=deadline)

    def delete_network_volume(self, volume_id: str, *, deadline: float | None = None) -> Answer:
        path = f"/network-volumes/{path_segment(volume_id, 'network volume id')}"
        return self.http.delete(path, deadline=deadline)


def connect(settings: RunpodSettings, key: str, **http_options: Any) -> RunpodClient:
    """A client for the configured API (TRAINCTL_RUNPOD_API_URL) with this key; options reach ProviderHttp."""
    return RunpodClient(ProviderHttp(provider=PROVIDER, base_url=settings.runpod_api_url, key=key, **http_options))


def read_account(
    client: RunpodClient, settings: RunpodSettings, now: datetime, *, deadline: float | None = None
) -> RunpodInventory:
    """Two calls: every pod and every network volume, read into the model; problems carry no key."""
    inventory = read_inventory(
        client.list_pods(deadline=deadline), client.list_network_volumes(deadline=deadline), settings, now
    )
    redact = client.http.redact
    cleaned = tuple(Unreadable(u.resource_type, redact(u.label), redact(u.problem)) for u in inventory.unreadable)
    return RunpodInventory(inventory.read_at, inventory.pods, inventory.volumes, cleaned)
