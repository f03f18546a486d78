"""An emulated SSM agent on each instance, for the emulator, the sandbox, the time-lapse and the tests.

moto marks every command Success with empty output, so trainctl's training check never hears a verdict there.
`SsmAgents` keeps a process table per instance and answers the training-check document as its shell script would
on that instance: the pid file, the process patterns (matched as `pgrep -f` matches), GPU compute processes. An
instance it was told has no agent refuses SendCommand as SSM refuses an instance it does not manage
(InvalidInstanceId), and is left out of DescribeInstanceInformation. Instances it was never told about keep
moto's own answer.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from trainctl.core import names


@dataclass(frozen=True, slots=True)
class Host:
    """What an instance runs, as the agent on it would see it."""

    processes: tuple[str, ...] = ()  # command lines, as `pgrep -f` matches them
    pid_file_pid: int | None = None  # a live pid in the training pid file
    gpu_processes: bool = False  # nvidia-smi lists compute processes


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


class SsmAgents:
    """The agents of the emulated fleet, by instance id; safe to change while a server thread answers."""

    def __init__(self, training_document: str = names.TRAINING_DOCUMENT) -> None:
        self.training_document = training_document
        self._hosts: dict[str, Host | None] = {}
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
