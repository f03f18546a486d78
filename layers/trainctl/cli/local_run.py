"""Run a Lambda handler in this process, with what a Lambda context offers: `trainctl invoke`, the sandbox and
the emulator's Lambda tasks."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import logger
from trainctl.cli import stack_resources
from trainctl.cli.output import err_console
from trainctl.core import names
from trainctl.core.errors import TrainctlError
from trainctl.core.events import parse_age_guard_event, parse_cost_event, parse_spot_event, parse_sweep_trigger
from trainctl.core.settings import SweepSettings
from trainctl.prewarm.rules import parse_request
from trainctl.spot.rules import recovery_instance_id

FUNCTIONS_DIR = Path(__file__).resolve().parents[3] / "functions"


def parse_provider_trigger(event: object) -> object:
    """The provider sweep's own parser: its request model lives beside its handler, not in the shared layer."""
    parsed: object = load_handler("provider_sweep").parse_provider_trigger(event)
    return parsed


# How each handler reads its event, so that `trainctl invoke` refuses a bad one before any network call.
EVENT_PARSERS: dict[str, Callable[[object], object]] = {
    "cleanup_sweep": parse_sweep_trigger,
    "age_guard": parse_age_guard_event,
    "cost_alerts": parse_cost_event,
    "spot_interruption": parse_spot_event,
    "prewarm_plan": parse_request,
    "spot_recovery_plan": recovery_instance_id,
    "provider_sweep": parse_provider_trigger,
}


class UnknownFunction(TrainctlError):
    """No such function folder."""


def known_functions() -> list[str]:
    return sorted(p.name for p in FUNCTIONS_DIR.iterdir() if (p / "handler.py").is_file())


def check_function(function: str) -> None:
    """Local, before anything else: the name is a function folder with a handler."""
    if not function.isidentifier() or not (FUNCTIONS_DIR / function / "handler.py").is_file():
        raise UnknownFunction(f"no function {function!r}; known: {', '.join(known_functions())}")


def check_event(function: str, event: object) -> None:
    """Local: the handler's own parser reads the event (InvalidEvent or InvalidRequest when it cannot)."""
    parser = EVENT_PARSERS.get(function)
    if parser is not None:
        parser(event)


@dataclass
class LocalContext:
    """What a Lambda context offers the handlers, for running them locally."""

    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:trainctl-local"
    aws_request_id: str = "local-invoke"
    timeout: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        self._deadline = datetime.now().timestamp() + self.timeout.total_seconds()

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - datetime.now().timestamp()) * 1000)


def load_handler(function: str) -> types.ModuleType:
    check_function(function)
    path = FUNCTIONS_DIR / function / "handler.py"
    spec = importlib.util.spec_from_file_location(f"trainctl_functions.{function}.handler", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def invoke_handler(factory: ClientFactory, function: str, event: Any, *, logs: bool = True) -> Any:
    """Run a handler in-process with the stack's resources wired in (or as a read-only preview).

    With `logs`, the handler's structured logs and metrics go to stderr; without, they are dropped (the command
    line's own one-line error says what went wrong).
    """
    check_function(function)
    regions = SweepSettings.from_env(os.environ).regions
    resources = stack_resources.resolve(factory, os.environ, regions)
    if resources is None:
        os.environ["TRAINCTL_DRY_RUN"] = "true"
        err_console.print(
            f"[yellow]stack {names.STACK_NAME} is not deployed here: read-only preview, nothing recorded[/]"
        )
    else:
        os.environ.setdefault("TRAINCTL_LEDGER_TABLE", resources.ledger_table)
        os.environ.setdefault("TRAINCTL_TOPIC_ARN", resources.topic_arn)
        os.environ.setdefault("TRAINCTL_TRAINING_DOCUMENT", resources.training_document)
        os.environ.setdefault("TRAINCTL_PRICE_TABLE", resources.price_table)
        if resources.recovery_state_machine:
            os.environ.setdefault("TRAINCTL_RECOVERY_STATE_MACHINE_ARN", resources.recovery_state_machine)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "trainctl")
    module = load_handler(function)
    # Locally, the handler's structured logs and EMF lines go to stderr: stdout carries only the result.
    # Assigned, not setStream(): that flushes the previous stream, which may be closed by now.
    sink = sys.stderr if logs else io.StringIO()
    logger.registered_handler.stream = sink  # type: ignore[attr-defined]
    with contextlib.redirect_stdout(sink), warnings.catch_warnings():
        if not logs:
            warnings.simplefilter("ignore")
        return module.lambda_handler(event, LocalContext(function_name=f"trainctl-{function}"))
