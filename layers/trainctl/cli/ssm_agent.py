"""An emulated SSM agent on each instance, for the emulator, the sandbox, the time-lapse and the tests.

moto marks every command Success with empty output, so trainctl's training check never hears a verdict there.
`SsmAgents` keeps a process table per instance and answers the training-check document as its shell script would
on that instance: the pid file, the process patterns (matched as `pgrep -f` matches), GPU compute processes. An
instance it was told has no agent refuses SendCommand as SSM refuses an instance it does not manage
(InvalidInstanceId), and is left out of DescribeInstanceInformation. Instances it was never told about keep
moto's own answer to the training check.

The local-cache document is answered on every instance with an agent, as its script would: the instance store
(of the type moto describes) is mounted where the Deep Learning AMIs mount it, a folder elsewhere is refused
(exit 3), and a fill copies the objects under the prefix in moto's S3 that are new or changed since the folder's
last fill (s5cmd's default sync: another size, or modified after the copy), reading their bytes; its last line
is the document's JSON with what it copied, the time the reading took, the cache and the store.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trainctl.core import names


@dataclass(frozen=True, slots=True)
class Host:
    """What an instance runs, as the agent on it would see it."""

    processes: tuple[str, ...] = ()  # command lines, as `pgrep -f` matches them
    pid_file_pid: int | None = None  # a live pid in the training pid file
    gpu_processes: bool = False  # nvidia-smi lists compute processes
    # Where the instance store is mounted, when the instance's type has one (the Deep Learning AMIs' place).
    instance_store_mount: str = "/opt/dlami/nvme"


@dataclass(frozen=True, slots=True)
class CachedFile:
    size: int
    written_at: datetime  # when the emulated sync wrote it (s5cmd leaves a downloaded file's mtime at that time)


@dataclass(frozen=True, slots=True)
class CacheAnswer:
    """The local-cache document's exit code, standard output and standard error."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""


def training_check_output(host: Host, parameters: Mapping[str, Iterable[str]]) -> str:
    """The training-check document's standard output on `host`, in the script's own order of checks."""
    if host.pid_file_pid is not None:
        return f"TRAINCTL_TRAINING=active pid={host.pid_file_pid}\n"
    patterns = ",".join(parameters.get("ProcessPatterns", ())).split(",")
    for pattern in patterns:
        if not pattern:
            continue
        # The document's allowedPattern admits letters, digits, `_.-/ ` only: read as a regular expression, as
        # pgrep reads it, only `.` is special, and it means the same in both.
        if any(re.search(pattern, line) for line in host.processes):
            return f"TRAINCTL_TRAINING=active pattern={pattern}\n"
    if host.gpu_processes:
        return "TRAINCTL_TRAINING=active gpu-process\n"
    return "TRAINCTL_TRAINING=idle\n"


def sync_into_cache(
    cached: dict[str, CachedFile],
    objects: Iterable[tuple[str, int, datetime, Any]],
    *,
    prefix: str,
    now: datetime,
) -> tuple[int, int]:
    """The sync of an S3 prefix into a cache folder's files (relative path -> file), in place: an object is copied
    (its bytes read) when the folder lacks it, its size differs, or it changed after the copy. Files copied, bytes."""
    files = copied = 0
    for key, size, modified, read in objects:
        relative = key[len(prefix) :]
        if key.endswith("/") or not relative:
            continue  # a folder marker holds nothing to copy
        had = cached.get(relative)
        if had is not None and had.size == size and modified <= had.written_at:
            continue
        copied += len(read())
        files += 1
        cached[relative] = CachedFile(size, now)
    return files, copied


class SsmAgents:
    """The agents of the emulated fleet, by instance id; safe to change while a server thread answers."""

    def __init__(
        self, training_document: str = names.TRAINING_DOCUMENT, cache_document: str = names.LOCAL_CACHE_DOCUMENT
    ) -> None:
        self.training_document = training_document
        self.cache_document = cache_document
        self._hosts: dict[str, Host | None] = {}
        # Each instance's cache folders: folder -> relative path -> file.
        self._caches: dict[str, dict[str, dict[str, CachedFile]]] = {}
        self._lock = threading.Lock()

    def run(self, instance_id: str, *processes: str, pid_file_pid: int | None = None, gpu: bool = False) -> None:
        """The instance has an online agent and runs these processes (none: it is idle)."""
        with self._lock:
            self._hosts[instance_id] = Host(tuple(processes), pid_file_pid, gpu)

    def idle(self, instance_id: str) -> None:
        self.run(instance_id)

    def without_agent(self, instance_id: str) -> None:
        """SSM does not manage the instance (no agent, no instance profile): commands to it are refused."""
        with self._lock:
            self._hosts[instance_id] = None

    def forget(self, instance_id: str) -> None:
        with self._lock:
            self._hosts.pop(instance_id, None)

    def knows(self, instance_id: str) -> bool:
        with self._lock:
            return instance_id in self._hosts

    def host(self, instance_id: str) -> Host | None:
        """The instance's host, or None when it has no agent (KeyError when never told)."""
        with self._lock:
            return self._hosts[instance_id]

    def unmanaged(self, instance_ids: Iterable[str]) -> list[str]:
        with self._lock:
            return [i for i in instance_ids if i in self._hosts and self._hosts[i] is None]

    def managed(self) -> list[str]:
        with self._lock:
            return [i for i, host in self._hosts.items() if host is not None]

    def cached(self, instance_id: str, folder: str) -> dict[str, int]:
        """What the instance's cache folder holds: relative path -> size."""
        with self._lock:
            files = self._caches.get(instance_id, {}).get(folder.rstrip("/"), {})
            return {path: file.size for path, file in files.items()}

    def fill_cache(
        self,
        instance_id: str,
        parameters: Mapping[str, Iterable[str]],
        *,
        store_bytes: int | None,
        now: datetime,
        bucket_objects: Callable[[str], Iterable[tuple[str, int, datetime, Any]] | None],
    ) -> CacheAnswer:
        """The local-cache document on this instance: refuse a folder off the instance store, else sync and report.

        `store_bytes` is the instance type's instance store (None: it has none); `now` is on the objects' clock;
        `bucket_objects(bucket)` lists a bucket's objects as (key, size, last modified, read), None for no bucket."""
        uri = "".join(parameters.get("S3Uri", ()))
        folder = "".join(parameters.get("CachePath", ())).rstrip("/")
        with self._lock:
            host = self._hosts.get(instance_id) or Host()
        mount = host.instance_store_mount.rstrip("/")
        if store_bytes is None or not (folder == mount or folder.startswith(mount + "/")):
            return CacheAnswer(
                3, stderr=f"{folder} is not on an instance-store volume: mount the instance store there first\n"
            )
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        prefix = key.rstrip("/") + "/" if key else ""  # the document reads its source as a folder, as here
        listed = bucket_objects(bucket)
        if listed is None:
            return CacheAnswer(5, stderr=f"s5cmd could not sync {uri}\n")
        objects = [item for item in listed if item[0].startswith(prefix)]
        started = time.perf_counter()
        with self._lock:
            cached = self._caches.setdefault(instance_id, {}).setdefault(folder, {})
            files, copied = sync_into_cache(cached, objects, prefix=prefix, now=now)
            seconds = time.perf_counter() - started
            cache_files, cache_bytes = len(cached), sum(file.size for file in cached.values())
            used = sum(
                file.size for folder_files in self._caches[instance_id].values() for file in folder_files.values()
            )
        report = {
            "copied_bytes": copied,
            "copied_files": files,
            "seconds": seconds,  # the time the reads took, unrounded: an emulated fill is quick
            "cache_bytes": cache_bytes,
            "cache_files": cache_files,
            "store_bytes": store_bytes,
            "free_bytes": max(store_bytes - used, 0),
            "tool": "s5cmd",
        }
        return CacheAnswer(0, stdout=json.dumps(report) + "\n")


@contextmanager
def emulated_agents(agents: SsmAgents) -> Iterator[SsmAgents]:
    """moto's SSM answers as `agents` would, in this process (in-process mocks and moto servers alike)."""
    # Cold start: only the emulator and the tests load moto's SSM models.
    from moto.ssm import models as ssm_models
    from moto.ssm import responses as ssm_responses
    from moto.ssm.exceptions import SSMException

    command_class: Any = ssm_models.Command
    backend_class: Any = ssm_models.SimpleSystemManagerBackend
    responses_class: Any = ssm_responses.SimpleSystemManagerResponse
    original_invocation = command_class.invocation_response
    original_send = backend_class.send_command
    original_describe = getattr(responses_class, "describe_instance_information", None)

    def invocation_response(self: Any, instance_id: str, plugin_name: str) -> dict[str, Any]:
        answer: dict[str, Any] = original_invocation(self, instance_id, plugin_name)
        if self.document_name == agents.cache_document:
            return {**answer, **_cache_invocation(agents, self, instance_id)}
        if self.document_name != agents.training_document or not agents.knows(instance_id):
            return answer
        host = agents.host(instance_id)
        if host is None:  # not reached: SendCommand refused it
            return answer
        output = training_check_output(host, self.parameters or {})
        return {**answer, "StandardOutputContent": output}

    def send_command(self: Any, *args: Any, **kwargs: Any) -> Any:
        instance_ids = kwargs.get("instance_ids") or []
        refused = agents.unmanaged(instance_ids)
        if refused:
            # SSM names no instance in this error; one unmanaged instance refuses the whole command.
            raise SSMException("InvalidInstanceId", "Instances not in a valid state for account")
        return original_send(self, *args, **kwargs)

    def describe_instance_information(self: Any) -> str:
        # moto lacks the call; the agents answer it from their table, with every managed instance Online.
        params = json.loads(self.body or "{}")
        wanted: list[str] | None = None
        for flt in params.get("Filters", []) or []:
            if flt.get("Key") == "InstanceIds":
                wanted = list(flt.get("Values", []))
        # Instances never described to the agents keep moto's answer to commands, so they are listed as Online too.
        listed = agents.managed() if wanted is None else [i for i in wanted if i not in agents.unmanaged(wanted)]
        return json.dumps(
            {
                "InstanceInformationList": [
                    {"InstanceId": i, "PingStatus": "Online", "PlatformType": "Linux", "ResourceType": "EC2Instance"}
                    for i in listed
                ]
            }
        )

    command_class.invocation_response = invocation_response
    backend_class.send_command = send_command
    responses_class.describe_instance_information = describe_instance_information
    try:
        yield agents
    finally:
        command_class.invocation_response = original_invocation
        backend_class.send_command = original_send
        if original_describe is None:
            del responses_class.describe_instance_information
        else:
            responses_class.describe_instance_information = original_describe


def _cache_invocation(agents: SsmAgents, command: Any, instance_id: str) -> dict[str, Any]:
    """The local-cache document's invocation fields, from moto's EC2 (the instance's type) and S3 (the objects)."""
    # Cold start: moto's EC2 and S3 models load only when an emulated agent answers a cache fill.
    from moto.ec2.exceptions import InvalidInstanceIdError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instance_types import INSTANCE_TYPES
    from moto.s3.models import s3_backends
    from moto.ssm.exceptions import SSMException
    from moto.utilities.utils import get_partition

    region = command.backend_region
    try:
        machine = ec2_backends[command.account_id][region].get_instance(instance_id)
    except InvalidInstanceIdError:  # SSM refuses a command to an instance that does not exist, naming none
        raise SSMException("InvalidInstanceId", "Instances not in a valid state for account") from None
    info = INSTANCE_TYPES.get(machine.instance_type, {})
    total = (info.get("InstanceStorageInfo") or {}).get("TotalSizeInGB")
    store_bytes = int(total) * 10**9 if info.get("InstanceStorageSupported") and total else None
    buckets = s3_backends[command.account_id][get_partition(region)].buckets

    def bucket_objects(name: str) -> list[tuple[str, int, datetime, Any]] | None:
        bucket = buckets.get(name)
        if bucket is None:
            return None
        # A delete marker (a versioned bucket's deleted key) has no bytes: nothing to copy.
        return [
            (key, item.size, item.last_modified, lambda item=item: item.value)
            for key, item in bucket.keys.items()
            if hasattr(item, "value")
        ]

    # moto keeps an object's LastModified as a naive UTC instant.
    now = datetime.now(UTC).replace(tzinfo=None)
    answer = agents.fill_cache(
        instance_id, command.parameters or {}, store_bytes=store_bytes, now=now, bucket_objects=bucket_objects
    )
    status = "Success" if answer.exit_code == 0 else "Failed"
    return {
        "Status": status,
        "StatusDetails": status,
        "ResponseCode": answer.exit_code,
        "StandardOutputContent": answer.stdout,
        "StandardErrorContent": answer.stderr,
    }
