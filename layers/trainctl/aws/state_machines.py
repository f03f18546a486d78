"""State machine definitions exactly as the stack synthesises them, shipped so an emulator can run them.

tests/infra checks that each shipped file equals what the stack synthesises; `make workflows` rewrites them.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SPOT_RECOVERY = "spot_recovery"
PREWARM = "prewarm"
# CloudFormation pseudo parameters a definition may carry, as an emulator answers them.
EMULATOR_REGION = "us-east-1"
EMULATOR_ACCOUNT = "123456789012"  # moto's default account
EMULATOR_PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::Region": EMULATOR_REGION,
    "AWS::AccountId": EMULATOR_ACCOUNT,
}


def load(name: str) -> str:
    text = resources.files("trainctl.aws").joinpath("workflows", f"{name}.asl.json").read_text(encoding="utf-8")
    json.loads(text)  # a broken file fails here, not inside the emulator
    return text


def lambda_arn(function_name: str) -> str:
    return f"arn:aws:lambda:{EMULATOR_REGION}:{EMULATOR_ACCOUNT}:function:{function_name}"


def resolve_definition(definition: Any, attributes: dict[str, str] | None = None) -> str:
    """A synthesised DefinitionString as text: strings, Fn::Join, pseudo-parameter Refs, and the Fn::GetAtt
    values given in `attributes` ("LogicalId.Attribute" -> value)."""
    known = attributes or {}
    if isinstance(definition, str):
        return definition
    if isinstance(definition, dict) and set(definition) == {"Fn::Join"}:
        separator, parts = definition["Fn::Join"]
        return str(separator).join(resolve_definition(part, known) for part in parts)
    if isinstance(definition, dict) and set(definition) == {"Ref"} and definition["Ref"] in EMULATOR_PSEUDO:
        return EMULATOR_PSEUDO[definition["Ref"]]
    if isinstance(definition, dict) and set(definition) == {"Fn::GetAtt"}:
        key = ".".join(definition["Fn::GetAtt"])
        if key in known:
            return known[key]
    raise ValueError(f"the definition refers to something an emulator cannot resolve: {json.dumps(definition)[:200]}")
