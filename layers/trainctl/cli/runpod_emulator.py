"""A local RunPod REST API v2, in the spirit of moto: a loopback HTTP server that keeps state.

It follows what RunPod's documentation describes, written here in our own words: GET /v2/pods ({"pods": [...]}),
GET /v2/pods/{id}, POST /v2/pods/{id}/action ({"action": "stop"}; 409 when the pod is not in a state to stop),
DELETE /v2/pods/{id}, GET /v2/network-volumes ({"networkVolumes": [...]}) and DELETE /v2/network-volumes/{id};
GET /v2/serverless, the serverless endpoints ({"endpoints": [...]}, each naming the volumes its workers mount in
`networkVolumes`);
Bearer keys (401 without a valid one); RFC 9457 problem JSON for every error; a per-minute quota announced in the
IETF RateLimit and RateLimit-Policy headers on every authenticated answer, and 429 with Retry-After past it.

What the documentation does not say, the emulator does not pretend to know: there is no paging, and the quota is
whatever the test sets (RunPod publishes three windows, minute, hour and day, without figures in what we read).
Tests seed pods (idle, busy, exited, locked, in undocumented shapes), volumes and endpoints, revoke the key, refuse
the endpoints list alone, and script a user's own stop that lands just before trainctl's.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from trainctl.cli.sandbox_fleet import free_loopback_port

EMULATOR_KEY = "rpa_emulator0000000000000000"
_PREFIX = "/v2"


@dataclass
class EmulatedPod:
    id: str
    name: str
    status: str
    cost: float
    created_at: datetime
    started_at: datetime | None
    locked: bool = False
    volume_ids: tuple[str, ...] = ()
    gpu_util: tuple[float, ...] = ()
    gpu_memory_util: tuple[float, ...] = ()
    # The hourly price while running: RunPod answers cost 0 while a pod is exited.
    running_cost: float = 0.0

    def as_json(self, now: datetime) -> dict[str, Any]:
        running = self.status == "RUNNING"
        runtime = None
        if running:
            since = self.started_at or self.created_at
            gpus = [{"util": u, "memoryUtil": m} for u, m in zip(self.gpu_util, self.gpu_memory_util, strict=True)]
            runtime = {"uptime": max(0, int((now - since).total_seconds())), "gpus": gpus}
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "cost": self.cost,
            "createdAt": _iso(self.created_at),
            "startedAt": _iso(self.started_at) if self.started_at else None,
            "locked": self.locked,
            "mounts": {"network": [{"volumeId": v} for v in self.volume_ids]},
            "runtime": runtime,
        }


@dataclass
class EmulatedVolume:
    id: str
    name: str
    size: int
    data_center: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "size": self.size, "dataCenter": self.data_center}


@dataclass
class EmulatedEndpoint:
    id: str
    name: str
    created_at: datetime
    volume_ids: tuple[str, ...] = ()
    workers_max: int = 3

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "createdAt": _iso(self.created_at),
            "networkVolumes": list(self.volume_ids),
            "workers": {"min": 0, "max": self.workers_max},
        }


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(6)


@dataclass
class RunpodEmulator:
    """The state behind the server, and the knobs a test turns.

    `monotonic` paces the quota window and `now` is the wall clock pods age by; both injectable, so a test whose
    client sleeps on a fake clock moves the emulator's window with it.
    """

    key: str = EMULATOR_KEY
    per_minute: int | None = None
    latency_s: float = 0.0
    echo_key_in_errors: bool = False
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    pods: dict[str, EmulatedPod] = field(default_factory=dict)
    volumes: dict[str, EmulatedVolume] = field(default_factory=dict)
    raw_pods: list[Any] = field(default_factory=list)
    endpoints: dict[str, EmulatedEndpoint] = field(default_factory=dict)
    raw_endpoints: list[Any] = field(default_factory=list)
    # When set, GET /v2/serverless alone answers this status as problem JSON (a key allowed pods, not serverless).
    endpoints_refused: int | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    rejected_429: int = 0
    _revoked: bool = False
    _racing_stops: set[str] = field(default_factory=set)
    _window_start: float | None = None
    _window_used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- seeding ---------------------------------------------------------------------------------------------

    def seed_pod(
        self,
        name: str,
        *,
        status: str = "RUNNING",
        hourly_usd: float = 2.0,
        gpu_util: Sequence[float] = (0.0,),
        gpu_memory_util: Sequence[float] | None = None,
        locked: bool = False,
        volume_ids: Sequence[str] = (),
        age: timedelta = timedelta(hours=3),
        started_ago: timedelta | None = None,
    ) -> str:
        """A pod made `age` ago; running ones report their GPUs, exited ones cost 0 and have no runtime."""
        now = self.now()
        created = now - age
        started = None if status in ("PROVISIONING",) else now - (started_ago if started_ago is not None else age)
        pod = EmulatedPod(
            id=_new_id("pod"),
            name=name,
            status=status,
            cost=hourly_usd if status == "RUNNING" else 0.0,
            created_at=created,
            started_at=started,
            locked=locked,
            volume_ids=tuple(volume_ids),
            gpu_util=tuple(gpu_util),
            gpu_memory_util=tuple(gpu_memory_util if gpu_memory_util is not None else [0.0] * len(gpu_util)),
            running_cost=hourly_usd,
        )
        with self._lock:
            self.pods[pod.id] = pod
        return pod.id

    def seed_volume(self, name: str, *, size_gb: int = 100, data_center: str = "EU-RO-1") -> str:
        volume = EmulatedVolume(_new_id("vol"), name, size_gb, data_center)
        with self._lock:
            self.volumes[volume.id] = volume
        return volume.id

    def seed_endpoint(self, name: str, *, volume_ids: Sequence[str] = ()) -> str:
        """A serverless endpoint whose workers mount these network volumes."""
        endpoint = EmulatedEndpoint(_new_id("ep"), name, self.now(), tuple(volume_ids))
        with self._lock:
            self.endpoints[endpoint.id] = endpoint
        return endpoint.id

    def delete_endpoint(self, endpoint_id: str) -> None:
        """Its user deletes the endpoint (RunPod's DELETE /v2/serverless/{id}); its volumes stay."""
        with self._lock:
            self.endpoints.pop(endpoint_id, None)

    def seed_raw_endpoint(self, record: Any) -> None:
        """An endpoint listed exactly as given: for answers in a shape the documentation does not describe."""
        with self._lock:
            self.raw_endpoints.append(record)

    def seed_raw_pod(self, record: Any) -> None:
        """A pod listed exactly as given: for answers in a shape the documentation does not describe."""
        with self._lock:
            self.raw_pods.append(record)

    def revoke_key(self) -> None:
        with self._lock:
            self._revoked = True

    def race_user_stop(self, pod_id: str) -> None:
        """The next stop of this pod finds that its user stopped it a moment before: RunPod answers 409."""
        with self._lock:
            self._racing_stops.add(pod_id)

    # -- the API ---------------------------------------------------------------------------------------------

    def _quota(self) -> tuple[dict[str, str], float | None]:
        """The RateLimit headers after counting this call, and the wait if the quota is spent."""
        if self.per_minute is None:
            return {}, None
        clock = self.monotonic()
        if self._window_start is None or clock - self._window_start >= 60:
            self._window_start, self._window_used = clock, 0
        reset = max(1, math.ceil(60 - (clock - self._window_start)))
        headers = {"RateLimit-Policy": f'"minute";q={self.per_minute};w=60'}
        if self._window_used >= self.per_minute:
            headers["RateLimit"] = f'"minute";r=0;t={reset}'
            return headers, float(reset)
        self._window_used += 1
        headers["RateLimit"] = f'"minute";r={self.per_minute - self._window_used};t={reset}'
        return headers, None

    def handle(self, method: str, path: str, authorization: str, body: bytes) -> tuple[int, dict[str, str], Any]:
        """One request: (status, headers, JSON body or None)."""
        with self._lock:
            self.calls.append((method, path))
            presented = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
            if self._revoked or presented != self.key:
                detail = "the API key is not valid or was revoked"
                if self.echo_key_in_errors:
                    detail = f"API key {presented} is not valid or was revoked"
                return 401, {}, _problem(401, "Unauthorized", detail)
            headers, wait = self._quota()
            if wait is not None:
                self.rejected_429 += 1
                headers["Retry-After"] = str(int(wait))
                return 429, headers, _problem(429, "Too Many Requests", "the per-minute quota is spent")
            status, answer = self._route(method, path, body)
            return status, headers, answer

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        parts = [p for p in path.split("?", 1)[0].removeprefix(_PREFIX).split("/") if p]
        now = self.now()
        if parts == ["pods"] and method == "GET":
            listed = [p.as_json(now) for p in self.pods.values()] + list(self.raw_pods)
            return 200, {"pods": listed}
        if parts == ["network-volumes"] and method == "GET":
            return 200, {"networkVolumes": [v.as_json() for v in self.volumes.values()]}
        if parts == ["serverless"] and method == "GET":
            if self.endpoints_refused is not None:
                status = self.endpoints_refused
                return status, _problem(status, "Forbidden" if status == 403 else "Error", "serverless is not allowed")
            listed = [e.as_json() for e in self.endpoints.values()] + list(self.raw_endpoints)
            return 200, {"endpoints": listed}
        if len(parts) >= 2 and parts[0] == "pods":
            pod = self.pods.get(parts[1])
            if pod is None:
                return 404, _problem(404, "Not Found", "no such pod")
            if len(parts) == 2 and method == "GET":
                return 200, pod.as_json(now)
            if len(parts) == 2 and method == "DELETE":
                del self.pods[pod.id]
                return 204, None
            if parts[2:] == ["action"] and method == "POST":
                return self._action(pod, body, now)
        if len(parts) == 2 and parts[0] == "network-volumes" and method == "DELETE":
            if self.volumes.pop(parts[1], None) is None:
                return 404, _problem(404, "Not Found", "no such network volume")
            return 204, None
        return 404, _problem(404, "Not Found", "no such path")

    def _action(self, pod: EmulatedPod, body: bytes, now: datetime) -> tuple[int, Any]:
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, _problem(400, "Bad Request", "the body is not JSON")
        action = request.get("action") if isinstance(request, dict) else None
        if action != "stop":
            return 400, _problem(400, "Bad Request", "only the stop action is emulated")
        if pod.id in self._racing_stops:
            self._racing_stops.discard(pod.id)
            self._stop(pod)
        if pod.status not in ("PROVISIONING", "STARTING", "RUNNING"):
            return 409, _problem(409, "Conflict", f"a pod that is {pod.status} cannot be stopped")
        if pod.locked:
            return 409, _problem(409, "Conflict", "the pod is locked")
        self._stop(pod)
        return 200, pod.as_json(now)

    @staticmethod
    def _stop(pod: EmulatedPod) -> None:
        pod.status, pod.cost = "EXITED", 0.0

    # -- the server ------------------------------------------------------------------------------------------

    @contextmanager
    def serving(self, port: int | None = None) -> Iterator[str]:
        """Serve on a free loopback port until the block ends; yields the base URL (…/v2)."""
        server = ThreadingHTTPServer(("127.0.0.1", port or free_loopback_port()), _handler_for(self))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="runpod-emulator", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}{_PREFIX}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": title, "status": status, "detail": detail}


def _handler_for(emulator: RunpodEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: with Nagle on, each answer waited ~40 ms for a delayed ACK.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if emulator.latency_s:
                time.sleep(emulator.latency_s)
            status, headers, answer = emulator.handle(
                self.command, self.path, self.headers.get("Authorization", ""), body
            )
            data = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            if answer is not None:
                kind = "application/problem+json" if status >= 400 else "application/json"
                self.send_header("Content-Type", kind)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve  # noqa: N815 (http.server's names)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: tests and benchmarks read `calls`

    return Handler
