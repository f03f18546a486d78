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


# The organization run exists only in a hub with covered units; its definition depends on none of their values.
ORGANIZATION_RUN = "organization_run"
ORGANIZATION_CONTEXT: dict[str, object] = {
    "trainctl": {"dry_run": True, "regions": ["us-east-1"], "org_id": "o-a1b2c3d4e5", "org_units": ["ou-ab12-cd34ef56"]}
}
# CloudFormation names the stack's results bucket; an emulator makes one by this name.
ORGANIZATION_RESULTS_BUCKET = "trainctl-organization-results"


def organization_definition(template: dict[str, Any]) -> str:
    """The organization run's definition, its two functions named as an emulator knows them (by folder)."""
    from infra.organization import PLAN_FOLDER, STATE_MACHINE_NAME
    from infra.organization_spoke import SWEEP_FOLDER

    resources = template["Resources"]
    attributes = {}
    for logical_id, resource in resources.items():
        description = resource.get("Properties", {}).get("Description", "")
        if resource["Type"] == "AWS::Lambda::Function" and description.startswith("trainctl organization run"):
            folder = SWEEP_FOLDER if "sweep one account" in description else PLAN_FOLDER
            attributes[f"{logical_id}.Arn"] = workflows.lambda_arn(f"trainctl-{folder}")
    buckets = {k for k, r in resources.items() if r["Type"] == "AWS::S3::Bucket"}
    [machine] = [
        r["Properties"]["DefinitionString"]
        for r in resources.values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
        and r["Properties"].get("StateMachineName") == STATE_MACHINE_NAME
    ]
    parts = [
        ORGANIZATION_RESULTS_BUCKET if isinstance(part, dict) and part.get("Ref") in buckets else part
        for part in machine["Fn::Join"][1]
    ]
    text = workflows.resolve_definition({"Fn::Join": [machine["Fn::Join"][0], parts]}, attributes)
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


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
    with tempfile.TemporaryDirectory() as outdir:
        assembly = app.build_app(ORGANIZATION_CONTEXT, outdir=outdir).synth()
        stack = assembly.get_stack_by_name(names.STACK_NAME)
        template = json.loads(Path(assembly.directory, stack.template_file).read_text())
    (TARGET / f"{ORGANIZATION_RUN}.asl.json").write_text(organization_definition(template), encoding="utf-8")
    print(f"wrote {ORGANIZATION_RUN}.asl.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
