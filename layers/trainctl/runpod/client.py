"""The RunPod REST API v2 calls trainctl makes, on the providers' shared client: pods, network volumes, and the
serverless endpoints (GET /v2/serverless), read only for the network volumes they mount.

The documentation describes the lists as returning everything the key's user owns and names no paging parameter,
so each list is one call; an answer whose envelope is not the documented one is refused whole. An endpoints answer
that fails (an outage, a key allowed pods but not serverless, an envelope other than `endpoints`) fails no sweep:
every network volume's endpoint mounts are then unknown, and no volume is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainctl.core.text import one_line
from trainctl.providers.http import Answer, ProviderError, ProviderHttp, path_segment
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

    def list_endpoints(self, *, deadline: float | None = None) -> list[Any]:
        return self._list("/serverless", "endpoints", deadline)

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
    """Three calls: every pod, network volume and serverless endpoint, read into the model; problems carry no key.
    A pods or volumes answer that fails fails the read; an endpoints answer that fails leaves endpoint mounts
    unknown, named by its error."""
    pods = client.list_pods(deadline=deadline)
    volumes = client.list_network_volumes(deadline=deadline)
    endpoints: list[Any] | None = None
    unread = ""
    try:
        endpoints = client.list_endpoints(deadline=deadline)
    except ProviderError as error:  # the key's refusal too: a key may read pods and not serverless
        unread = f"the serverless endpoints could not be read ({one_line(str(error), 200)})"
    inventory = read_inventory(pods, volumes, settings, now, endpoints, endpoints_unread=unread)
    redact = client.http.redact
    cleaned = tuple(Unreadable(u.resource_type, redact(u.label), redact(u.problem)) for u in inventory.unreadable)
    problems = tuple(redact(p) for p in inventory.endpoint_problems)
    return RunpodInventory(inventory.read_at, inventory.pods, inventory.volumes, cleaned, problems)
