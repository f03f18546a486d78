"""`trainctl emulator`: a local AWS emulator as the sandbox runs it, for the other commands to talk to.

A plain moto server comes with over a thousand default AMIs and snapshots (a sweep scans them, the cost check
prices them) and records Step Functions executions without running them. This one has none of the defaults, runs
the workflows (their Lambda tasks in this process, as the sandbox does), and has the stack's stateful resources
(tables, topic, SSM documents, state machines) made, so `trainctl sweep --enforce`, `cost`, `prewarm` and
`invoke` work against it as against a deployed account.

Each instance's SSM agent is emulated (trainctl.cli.ssm_agent): the seeded fleet's instances run what the sandbox
says, and `POST /trainctl-emulator/agents/<instance id>` on the emulator's own port sets what an instance runs
(`DELETE` gives it back to moto's answer). Only this process serves that path: no real account has a control
channel, and no tag is read as one.

EBS initialisation is emulated too (trainctl.cli.ebs_initialisation, installed by moto_server): a volume restored
from a snapshot at a VolumeInitializationRate initialises at that rate from its creation, so `trainctl prewarm
--snapshot` waits on DescribeVolumeStatus as against EBS and ends SUCCEEDED.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from rich.console import Console
from rich.text import Text

from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.local_lambda import lambda_tasks_in_process
from trainctl.cli.output import EXIT_USAGE, fail
from trainctl.cli.sandbox_fleet import SANDBOX_CLOCK_OFFSET, SANDBOX_ENV, moto_server, seed_agents, seed_training_fleet
from trainctl.cli.ssm_agent import SsmAgents, emulated_agents
from trainctl.core.clock import format_instant, system_clock

DEFAULT_PORT = 5000
AGENTS_PATH = "/trainctl-emulator/agents/"
_INSTANCE_ID = re.compile(r"i-(?:[0-9a-f]{8}|[0-9a-f]{17})")
# Upper bounds on a request's size: the table lives in the emulator's memory.
_REQUEST_BYTES = 1 << 16


class AgentRequest(BaseModel):
    """What an instance's agent would see: its command lines, a pid in the training pid file, GPU compute."""

    model_config = ConfigDict(extra="forbid")

    agent: bool = True  # false: SSM does not manage the instance
    processes: list[Annotated[str, StringConstraints(max_length=1024)]] = Field(default_factory=list, max_length=64)
    pid_file_pid: int | None = Field(default=None, gt=0)
    gpu: bool = False


def agents_request(agents: SsmAgents, method: str, instance_id: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """One request to the emulator's agents path: (HTTP status, JSON answer). Nothing from it is ever run."""
    if not _INSTANCE_ID.fullmatch(instance_id):
        return 400, {"error": "not an instance id (i- and 8 or 17 hex digits)"}
    if method == "DELETE":
        agents.forget(instance_id)
        return 200, {"instance_id": instance_id, "agent": "moto's default"}
    if method != "POST":
        return 405, {"error": "POST sets what the instance runs, DELETE gives it back to moto's answer"}
    try:
        asked = AgentRequest.model_validate_json(body or b"{}")
    except ValidationError as exc:
        # Named by field, without the values sent: nothing of the request is echoed back.
        wrong = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors(include_url=False)]
        return 400, {"error": wrong}
    if asked.agent:
        agents.run(instance_id, *asked.processes, pid_file_pid=asked.pid_file_pid, gpu=asked.gpu)
    else:
        agents.without_agent(instance_id)
    return 200, {"instance_id": instance_id, **asked.model_dump()}


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def agents_endpoint(app: WsgiApp, agents: SsmAgents) -> WsgiApp:
    """moto's app, with the agents path in front of it."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if not path.startswith(AGENTS_PATH):
            return app(environ, start_response)
        length = min(int(environ.get("CONTENT_LENGTH") or 0), _REQUEST_BYTES)
        body = environ["wsgi.input"].read(length) if length else b""
        status, answer = agents_request(agents, str(environ.get("REQUEST_METHOD")), path[len(AGENTS_PATH) :], body)
        start_response(f"{status} {'OK' if status == 200 else 'Refused'}", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]

    return serve


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@contextmanager
def workflows_that_run_again() -> Iterator[None]:
    """moto deep-copies a state machine with its past executions on every start, and a finished execution still
    holds its worker's locks: their workers are set aside for the copy, then put back so that the history of a
    finished execution stays readable (the sandbox drops them between runs instead; here any client may ask)."""
    # Cold start: moto's Step Functions interpreter, only for the emulator.
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    backend_class: Any = StepFunctionsParserBackend
    original = backend_class.start_execution

    def start_execution(self: Any, *args: Any, **kwargs: Any) -> Any:
        set_aside = [
            (execution, execution.exec_worker)
            for machine in self.state_machines
            for execution in getattr(machine, "executions", [])
            if execution.exec_status != ExecutionStatus.RUNNING and execution.exec_worker
        ]
        for execution, _ in set_aside:
            execution.exec_worker = None
        try:
            return original(self, *args, **kwargs)
        finally:
            for execution, worker in set_aside:
                execution.exec_worker = worker

    backend_class.start_execution = start_execution
    try:
        yield
    finally:
        backend_class.start_execution = original


def environment(endpoint: str, region: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": SANDBOX_ENV["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": SANDBOX_ENV["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }


def run_emulator(
    console: Console,
    *,
    port: int,
    regions: tuple[str, ...],
    seed: bool,
    as_json: bool,
    run_for: float | None = None,
) -> int:
    """Serve until Ctrl-C (or `run_for` seconds, for tests); prints how to point a shell at it first."""
    if not port_is_free(port):
        raise fail(f"port {port} is in use: pass --port with a free one", EXIT_USAGE)
    agents = SsmAgents()
    with (
        moto_server(port=port, region=regions[0], middleware=lambda app: agents_endpoint(app, agents)) as endpoint,
        emulated_agents(agents),
    ):
        factory = ClientFactory(regions[0])
        resources = stack_resources.ensure_on_emulator(factory, regions)
        seeded: dict[str, str] = {}
        if seed:
            fleet = seed_training_fleet(factory, regions, system_clock())
            seed_agents(factory, agents, fleet, regions[0], system_clock())
            seeded = fleet.ids
        variables = environment(endpoint, regions[0])
        agents_url = f"{endpoint}{AGENTS_PATH}"
        if as_json:
            shown = {"endpoint": endpoint, "environment": variables, "seeded": seeded, "agents": agents_url}
            typer.echo(json.dumps(shown, indent=2))
        else:
            console.print(Text(f"trainctl emulator on {endpoint} (moto, no default AMIs or snapshots)", style="bold"))
            console.print(Text("point a shell at it:", style="dim"))
            console.print(
                Text("export " + " ".join(f"{k}={v}" for k, v in variables.items()) + "; unset AWS_PROFILE"),
                soft_wrap=True,
            )
            console.print(
                Text(f"the stack's resources are made: {resources.ledger_table}, {resources.topic_arn}", style="dim"),
                soft_wrap=True,
            )
            if seeded:
                later = format_instant(system_clock() + SANDBOX_CLOCK_OFFSET + timedelta(minutes=5))
                console.print(Text(f"seeded the sandbox's training fleet: {len(seeded)} named resources"))
                console.print(Text(f"try: trainctl sweep --region {' --region '.join(regions)} --at {later}"))
            console.print(Text("set what an instance's SSM agent sees (the training check answers from it):"))
            console.print(
                Text(f'curl -X POST {agents_url}i-… -d \'{{"processes": ["torchrun train.py"]}}\''), soft_wrap=True
            )
            console.print(Text('(or {"agent": false}: SSM does not manage it; DELETE: moto\'s answer)', style="dim"))
            console.print(Text("Ctrl-C stops it (everything in it is forgotten)", style="dim"))
        environment_for_lambdas = {
            "TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN": resources.prewarm_instance_profile or "",
        }
        deadline = None if run_for is None else time.monotonic() + run_for
        with lambda_tasks_in_process(environment_for_lambdas), workflows_that_run_again():
            try:
                while deadline is None or time.monotonic() < deadline:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                console.print(Text("emulator stopped", style="dim"))
    return 0
