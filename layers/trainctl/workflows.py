"""State machine definitions exactly as the stack synthesises them, shipped so an emulator can run them.

tests/infra checks that each shipped file equals what the stack synthesises; `make workflows` rewrites them.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SPOT_RECOVERY = "spot_recovery"
# CloudFormation pseudo parameters a definition may carry, as an emulator answers them.
EMULATOR_PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def load(name: str) -> str:
    text = resources.files("trainctl").joinpath("workflows", f"{name}.asl.json").read_text(encoding="utf-8")
    json.loads(text)  # a broken file fails here, not inside the emulator
    return text


def resolve_definition(definition: Any, pseudo: dict[str, str] | None = None) -> str:
    """A synthesised DefinitionString (a string or an Fn::Join of strings and pseudo-parameter Refs) as text."""
    values = pseudo or EMULATOR_PSEUDO
    if isinstance(definition, str):
        return definition
    if isinstance(definition, dict) and set(definition) == {"Fn::Join"}:
        separator, parts = definition["Fn::Join"]
        return str(separator).join(resolve_definition(part, values) for part in parts)
    if isinstance(definition, dict) and set(definition) == {"Ref"} and definition["Ref"] in values:
        return values[definition["Ref"]]
    raise ValueError(f"the definition refers to something an emulator cannot resolve: {json.dumps(definition)[:200]}")
