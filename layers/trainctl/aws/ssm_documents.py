"""SSM documents trainctl owns: shipped as JSON in the package, deployed by the stack and the emulator bootstrap."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

TRAINING_CHECK = "training_check"
SPOT_CHECKPOINT = "spot_checkpoint"
PREWARM = "prewarm"
TRANSFER = "transfer"
LOCAL_CACHE = "local_cache"


def load(name: str) -> dict[str, Any]:
    text = resources.files("trainctl.aws").joinpath("documents", f"{name}.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document
