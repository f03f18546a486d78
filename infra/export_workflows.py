"""`make workflows`: write each state machine definition the stack synthesises into the package."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from trainctl.aws import state_machines as workflows
from trainctl.core import names

TARGET = Path(__file__).resolve().parents[1] / "layers" / "trainctl" / "aws" / "workflows"
NAMES = {
    names.RECOVERY_STATE_MACHINE: workflows.SPOT_RECOVERY,
    names.PREWARM_STATE_MACHINE: workflows.PREWARM,
}


def definitions(template: dict[str, Any]) -> dict[str, str]:
    """File name -> definition text, for every state machine of the template that trainctl ships."""
    found = {}
    # Task functions are named by the stack: an emulator knows them by the same names.
    attributes = {
        f"{logical_id}.Arn": workflows.lambda_arn(resource["Properties"]["FunctionName"])
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function" and "FunctionName" in resource["Properties"]
    }
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        name = resource["Properties"].get("StateMachineName")
        if name in NAMES:
            text = workflows.resolve_definition(resource["Properties"]["DefinitionString"], attributes)
            found[NAMES[name]] = json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    return found


def main() -> int:
    import os

    os.environ.setdefault("CDK_DEFAULT_ACCOUNT", "123456789012")
    os.environ.setdefault("CDK_DEFAULT_REGION", "us-east-1")
    import app

    with tempfile.TemporaryDirectory() as outdir:
        assembly = app.build_app(outdir=outdir).synth()
        stack = assembly.get_stack_by_name(names.STACK_NAME)
        template = json.loads(Path(assembly.directory, stack.template_file).read_text())
    for name, text in definitions(template).items():
        (TARGET / f"{name}.asl.json").write_text(text, encoding="utf-8")
        print(f"wrote {name}.asl.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
