"""Every AWS call the tests make, attributed to the trainctl module that made it and checked against that
module's declared PERMISSIONS (trainctl.core.permissions): a call its module did not declare fails the test."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers"
FUNCTIONS = ROOT / "functions"
# Where IAM's action name is not the service's signing name and the operation's name.
SERVICE_PREFIX = {"monitoring": "cloudwatch"}
OPERATION_ACTION = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",
}


def iam_action(model: Any) -> str:
    metadata = model.service_model.metadata
    prefix = metadata.get("signingName") or metadata["endpointPrefix"]
    action = f"{SERVICE_PREFIX.get(prefix, prefix)}:{model.name}"
    return OPERATION_ACTION.get(action, action)


def module_of(filename: str) -> str | None:
    """The trainctl module (or function handler) a frame's file belongs to; None for anything else."""
    path = Path(filename)
    if path.is_relative_to(LAYER / "trainctl") and "cli" not in path.relative_to(LAYER / "trainctl").parts:
        return ".".join(path.relative_to(LAYER).with_suffix("").parts)
    if path.is_relative_to(FUNCTIONS) and path.name == "handler.py":
        return f"functions.{path.parent.name}.handler"
    return None


class CallLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.undeclared: list[str] = []
        self.seen: set[tuple[str, str]] = set()

    def record(self, model: Any, **_: Any) -> None:
        frame = sys._getframe(1)
        while frame is not None and module_of(frame.f_code.co_filename) is None:
            frame = frame.f_back  # type: ignore[assignment]
        if frame is None:
            return  # a test's own set-up call, or the emulator's
        module = module_of(frame.f_code.co_filename)
        assert module is not None
        action = iam_action(model)
        permissions = frame.f_globals.get("PERMISSIONS")
        with self._lock:
            self.seen.add((module, action))
            if permissions is None or action not in permissions:
                self.undeclared.append(f"{module} calls {action} without declaring it in its PERMISSIONS")
