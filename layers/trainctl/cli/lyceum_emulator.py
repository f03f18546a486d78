"""A local Lyceum Cloud API, in the spirit of moto: a loopback HTTP server that keeps state.

It serves the calls trainctl makes, in the shapes Lyceum's published API documentation gives (base path
/api/v2/external, Bearer key): GET /vms/list ({"vms": [...], "total": n}), GET /vms/{vm_id}/status (the VM with
uptime_seconds), DELETE /vms/{vm_id}, GET /billing/credits, GET /workloads/list (a JSON array of runs) and
POST /workloads/abort/{execution_id}. Errors are the documented {"detail": "..."} with the status code.

Lyceum documents no rate limit, so the emulator applies none on its own; a test scripts a 429 with Retry-After (or
any other answer, a non-JSON one included) for the next calls. What the documentation leaves open, the emulator
decides plainly: a terminated VM leaves the list and answers 404; `billed` stays as seeded; a run that is not
live answers 404 to an abort.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_PREFIX = "/api/v2/external"
# The lifecycle Lyceum's VM guide names: pending/provisioning, running/ready, stopped/terminated/error.
VM_STATUSES = ("pending", "provisioning", "running", "ready", "stopped", "terminated", "error")
# A run: pending, starting, running, then one of the terminal states (Lyceum's runs guide).
RUN_LIVE_STATUSES = ("pending", "starting", "running")
EMULATOR_KEY = "lk_emulator_key"

_VM_STATUS_PATH = re.compile(r"^/vms/(?P<vm_id>[^/]+)/status$")
_VM_PATH = re.compile(r"^/vms/(?P<vm_id>[^/]+)$")
_ABORT_PATH = re.compile(r"^/workloads/abort/(?P<execution_id>[^/]+)$")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _system_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ScriptedAnswer:
    """An answer the emulator gives instead of its own, to the next matching calls (a 429, an outage, garbage)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    method: str | None = None
    path: str | None = None  # a path under the API prefix that the call's path starts with; None matches any
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or path.startswith(self.path))


@dataclass
class Call:
    """One call the emulator answered: for tests that count calls and read what was sent."""

    method: str
    path: str
    status: int
    authorization: str


class LyceumEmulator:
    """The state behind the emulated API: VMs, runs, credits and keys, and the answers scripted for the next calls.

    VMs are kept as the JSON objects the list serves, so a test may seed one in a shape the documentation does
    not describe; `extra_list_entries` are served verbatim after them (not even objects, if a test wants).
    """

    def __init__(
        self,
        *,
        keys: tuple[str, ...] = (EMULATOR_KEY,),
        clock: Callable[[], datetime] = _system_now,
        latency_s: float = 0.0,
        echo_key_in_errors: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.keys = set(keys)
        self.revoked: set[str] = set()
        self.clock = clock
        self.latency_s = latency_s
        self.sleep = sleep
        # Some APIs quote the key they refused: trainctl must never pass it on.
        self.echo_key_in_errors = echo_key_in_errors
        self.vms: dict[str, dict[str, Any]] = {}
        self.running_since: dict[str, datetime] = {}
        self.extra_list_entries: list[object] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.credits: dict[str, float] = {
            "available_credits": 500.0,
            "used_credits": 0.0,
            "remaining_credits": 500.0,
            "monthly_free_credits": 0.0,
            "purchased_credits": 500.0,
        }
        self.scripted: list[ScriptedAnswer] = []
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self._serial = 0

    # --- seeding -------------------------------------------------------------------------------------------
    def add_vm(
        self,
        name: str,
        *,
        created_at: datetime,
        status: str = "running",
        hardware_profile: str = "a100",
        billed: float = 0.0,
        vm_id: str | None = None,
    ) -> str:
        with self.lock:
            self._serial += 1
            vm_id = vm_id or f"vm-{self._serial:012x}"
            self.vms[vm_id] = {
                "vm_id": vm_id,
                "name": name,
                "status": status,
                "ip_address": None if status in ("pending", "provisioning") else f"10.0.0.{self._serial % 250}:22",
                "hardware_profile": hardware_profile,
                "billed": billed,
                "created_at": _iso(created_at),
            }
            self.running_since[vm_id] = created_at
            return vm_id

    def add_raw_vm(self, entry: dict[str, Any], key: str) -> None:
        """A VM exactly as given, for a shape the documentation does not describe; `key` is where it is kept."""
        with self.lock:
            self.vms[key] = entry

    def add_run(
        self,
        *,
        created_at: datetime,
        status: str = "running",
        hardware_profile: str = "a100",
        file_name: str = "train.py",
        execution_id: str | None = None,
    ) -> str:
        with self.lock:
            self._serial += 1
            execution_id = execution_id or f"{self._serial:08x}-0000-4000-8000-{self._serial:012x}"
            self.runs[execution_id] = {
                "execution_id": execution_id,
                "status": status,
                "created_at": _iso(created_at),
                "hardware_profile": hardware_profile,
                "file_name": file_name,
            }
            return execution_id

    def seed_story(self, prefix: str = "team-") -> dict[str, str]:
        """The sandbox's Lyceum account: a VM past a 72-hour time-to-live, an idle one, a fresh one, one out of
        scope, a run past a 24-hour wall-clock cap and a fresh run. Returns their ids by role."""
        now = self.clock()
        return {
            "past_ttl": self.add_vm(f"{prefix}alice-finetune", created_at=now - timedelta(hours=80), billed=212.4),
            # Lyceum reports no utilisation for a VM: idle is what its owner says, not what the API can show.
            "idle": self.add_vm(f"{prefix}bob-notebook", created_at=now - timedelta(hours=9), billed=23.9),
            "fresh": self.add_vm(
                f"{prefix}carol-eval", created_at=now - timedelta(minutes=20), hardware_profile="h100"
            ),
            "out_of_scope": self.add_vm("personal-dave", created_at=now - timedelta(hours=200), hardware_profile="cpu"),
            "run_past_cap": self.add_run(created_at=now - timedelta(hours=30), file_name=f"{prefix}sweep.py"),
            "run_fresh": self.add_run(created_at=now - timedelta(minutes=5), file_name=f"{prefix}eval.py"),
        }

    # --- scripting -----------------------------------------------------------------------------------------
    def script(
        self,
        status: int,
        *,
        body: bytes | object = b"",
        headers: dict[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` matching calls get this answer; a body that is not bytes is sent as JSON."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {} if isinstance(body, bytes) else {"Content-Type": "application/json"}
        sent.update(headers or {})
        with self.lock:
            self.scripted.append(ScriptedAnswer(status, raw, sent, method, path, times))

    def throttle(self, retry_after_s: int, *, times: int = 1, path: str | None = None) -> None:
        """The next `times` calls (to `path`, if given) answer 429 Too Many Requests with Retry-After."""
        self.script(
            429,
            body={"detail": "Too many requests"},
            headers={"Retry-After": str(retry_after_s)},
            path=path,
            times=times,
        )

    def revoke(self, key: str) -> None:
        with self.lock:
            self.keys.discard(key)
            self.revoked.add(key)

    # --- answering -----------------------------------------------------------------------------------------
    def answer(self, method: str, path: str, authorization: str) -> tuple[int, dict[str, str], bytes]:
        if self.latency_s > 0:
            self.sleep(self.latency_s)
        with self.lock:
            status, headers, body = self._answer(method, path, authorization)
            self.calls.append(Call(method, path, status, authorization))
            return status, headers, body

    def _answer(self, method: str, path: str, authorization: str) -> tuple[int, dict[str, str], bytes]:
        if not path.startswith(API_PREFIX + "/"):
            return _json(404, {"detail": "Not Found"})
        route = path[len(API_PREFIX) :].split("?", 1)[0]
        for scripted in self.scripted:
            if scripted.matches(method, route):
                scripted.times -= 1
                if scripted.times <= 0:
                    self.scripted.remove(scripted)
                return scripted.status, scripted.headers, scripted.body
        token = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
        if not token:
            return _json(401, {"detail": "Not authenticated"})
        if token not in self.keys:
            said = "API key has been revoked" if token in self.revoked else "Invalid API key"
            return _json(401, {"detail": f"{said}: {token}" if self.echo_key_in_errors else said})
        return self._route(method, route)

    def _route(self, method: str, route: str) -> tuple[int, dict[str, str], bytes]:
        if method == "GET" and route == "/vms/list":
            entries: list[object] = [dict(vm) for vm in self.vms.values()]
            entries += self.extra_list_entries
            return _json(200, {"vms": entries, "total": len(entries)})
        if method == "GET" and (match := _VM_STATUS_PATH.match(route)):
            return self._status(match["vm_id"])
        if method == "DELETE" and (match := _VM_PATH.match(route)):
            vm_id = match["vm_id"]
            if vm_id not in self.vms:
                return _json(404, {"detail": "VM not found"})
            del self.vms[vm_id]
            self.running_since.pop(vm_id, None)
            return _json(200, {"vm_id": vm_id, "status": "terminated"})
        if method == "GET" and route == "/billing/credits":
            return _json(200, dict(self.credits))
        if method == "GET" and route == "/workloads/list":
            live = [dict(run) for run in self.runs.values() if run.get("status") in RUN_LIVE_STATUSES]
            return _json(200, live)
        if method == "POST" and (match := _ABORT_PATH.match(route)):
            run = self.runs.get(match["execution_id"])
            if run is None or run.get("status") not in RUN_LIVE_STATUSES:
                return _json(404, {"detail": "Execution not found or not running"})
            run["status"] = "aborted"
            return _json(200, {"message": "Execution aborted", "execution_id": run["execution_id"]})
        if route in ("/vms/list", "/billing/credits", "/workloads/list") or _VM_PATH.match(route):
            return _json(405, {"detail": "Method Not Allowed"})
        return _json(404, {"detail": "Not Found"})

    def _status(self, vm_id: str) -> tuple[int, dict[str, str], bytes]:
        vm = self.vms.get(vm_id)
        if vm is None:
            return _json(404, {"detail": "VM not found"})
        since = self.running_since.get(vm_id)
        running = vm.get("status") in ("running", "ready")
        uptime = int((self.clock() - since).total_seconds()) if running and since is not None else None
        return _json(200, {**vm, "instance_specs": {}, "uptime_seconds": uptime, "gpu_count": 1})


def _json(status: int, body: object) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _handler(emulator: LyceumEmulator) -> type[BaseHTTPRequestHandler]:
    class LyceumHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: with Nagle on, each answer waited ~40 ms for a delayed ACK.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, headers, body = emulator.answer(self.command, self.path, self.headers.get("Authorization", ""))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        # http.server finds a method's handler by the name do_<METHOD>.
        do_GET = do_POST = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            # The request line is the caller's business; nothing of it goes to stderr.
            return

    return LyceumHandler


@contextmanager
def serve(emulator: LyceumEmulator, port: int = 0) -> Iterator[str]:
    """Serve the emulator on 127.0.0.1 (a free port when 0) while the block runs; yields the API base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(emulator))
    server.daemon_threads = True
    # A short poll: stopping the server waits for it, and tests start and stop one each.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="lyceum-emulator", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{API_PREFIX}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> None:
    """`python -m trainctl.cli.lyceum_emulator [--port N] [--latency-ms MS] [--no-seed]`: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(description="A local Lyceum Cloud API that keeps state.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--no-seed", action="store_true")
    args = parser.parse_args(argv)
    emulator = LyceumEmulator(latency_s=args.latency_ms / 1000)
    if not args.no_seed:
        emulator.seed_story()
    with serve(emulator, args.port) as url:
        sys.stdout.write(f"TRAINCTL_LYCEUM_API_URL={url}\nLYCEUM_API_KEY={EMULATOR_KEY}\n")
        sys.stdout.flush()
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
