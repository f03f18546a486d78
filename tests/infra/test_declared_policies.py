"""Every role's policy is what its code declares (issue 15 item 6): a function's, `declared_for(function)`; a state
machine's, the SDK tasks of its synthesised definition and what IAM requires of them; each plus the platform
actions listed once in infra.policy. And synth refuses a policy that drifts from the declarations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.declarations import declared_for
from infra.export_workflows import definitions
from infra.policy import FUNCTION_PLATFORM, STATE_MACHINE_PLATFORM, DeclaredPolicy, PolicyMismatch, Route, check
from infra.spoke_access import SPOKE_ACCESS_WITHHELD
from tests.infra.gates import as_list
from tests.infra.test_iam_gates import role_statements
from trainctl.aws import state_machines as workflows
from trainctl.core import names

pytestmark = pytest.mark.infra

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
# Declared but not granted in a deployment without an organization: no spoke role to assume for a member's
# forwarded event (infra/spoke_access.py), whatever else is configured.
WITHHELD_WITHOUT_AN_ORGANIZATION = {
    "spot_interruption": set(SPOKE_ACCESS_WITHHELD),
    "age_guard": set(SPOKE_ACCESS_WITHHELD),
}
# Declared but not granted in a deployment without prewarm_buckets: there is no bucket to list; and, as it has no
# organization either, the spoke access above.
WITHHELD_WITHOUT_BUCKETS = {
    "prewarm_plan": {"s3:ListBucket"},
    "prewarm_report": {"s3:ListBucket"},
    **WITHHELD_WITHOUT_AN_ORGANIZATION,
}
# Deployed only with a provider or an organization configured: tests/infra/test_providers_stack.py and
# test_organization_stack.py hold their policies to their declarations.
ONLY_WHEN_CONFIGURED = {"provider_sweep", "organization_plan", "organization_sweep"}


def granted(template: dict[str, Any], role: str) -> set[str]:
    return {a for s in role_statements(template)[role] if s["Effect"] == "Allow" for a in as_list(s["Action"])}


def functions_by_folder(template: dict[str, Any], outdir: Path) -> dict[str, str]:
    """Folder under functions/ -> the role of the function deployed from it (matched by the asset's handler)."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        asset = outdir / f"asset.{resource['Properties']['Code']['S3Key'].removesuffix('.zip')}" / "handler.py"
        [folder] = [f.name for f in FUNCTIONS.iterdir() if (f / "handler.py").read_bytes() == asset.read_bytes()]
        found[folder] = resource["Properties"]["Role"]["Fn::GetAtt"][0]
    return found


def test_every_functions_policy_is_exactly_its_declarations_and_the_platform(synthesized) -> None:
    template, outdir = synthesized
    roles = functions_by_folder(template, Path(outdir))
    assert set(roles) == {f.name for f in FUNCTIONS.iterdir() if (f / "handler.py").is_file()} - ONLY_WHEN_CONFIGURED
    for folder, role in roles.items():
        expected = (declared_for(folder).actions - WITHHELD_WITHOUT_BUCKETS.get(folder, set())) | set(FUNCTION_PLATFORM)
        assert granted(template, role) == expected, folder


_SDK = re.compile(r":states:::aws-sdk:(?P<service>[a-z0-9]+):(?P<action>\w+)$")


def called_by(definition: dict[str, Any], *, passes_template_roles: bool) -> set[str]:
    """What the definition's tasks call, read from the synthesised ASL, and what IAM requires of those calls."""
    actions: set[str] = set()
    for state in definition["States"].values():
        if state["Type"] != "Task":
            continue
        resource, parameters = state["Resource"], state.get("Parameters", {})
        if found := _SDK.search(resource):
            action = f"{found['service']}:{found['action'][0].upper()}{found['action'][1:]}"
        else:
            assert ":lambda:" in resource and ":function:" in resource, resource
            action = "lambda:InvokeFunction"
        actions.add(action)
        if "TagSpecifications" in parameters or "TagSpecifications.$" in parameters:
            actions.add("ec2:CreateTags")
        if action == "ec2:RunInstances" and (
            "IamInstanceProfile" in parameters or ("LaunchTemplate.$" in parameters and passes_template_roles)
        ):
            actions.add("iam:PassRole")
        if action == "sns:Publish":
            actions |= {"kms:GenerateDataKey", "kms:Decrypt"}  # the topic is encrypted with trainctl's key
    return actions


def state_machine_roles(template: dict[str, Any]) -> dict[str, str]:
    return {
        r["Properties"]["StateMachineName"]: r["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    }


def assert_state_machines_grant_what_they_call(template: dict[str, Any], *, passes_template_roles: bool) -> None:
    shipped = definitions(template)
    roles = state_machine_roles(template)
    for name, file in (
        (names.RECOVERY_STATE_MACHINE, workflows.SPOT_RECOVERY),
        (names.PREWARM_STATE_MACHINE, workflows.PREWARM),
    ):
        calls = called_by(json.loads(shipped[file]), passes_template_roles=passes_template_roles)
        assert granted(template, roles[name]) == calls | set(STATE_MACHINE_PLATFORM), name


def test_every_state_machines_policy_is_exactly_what_its_tasks_call_and_the_platform(synthesized) -> None:
    template = synthesized[0]
    assert_state_machines_grant_what_they_call(template, passes_template_roles=False)
    recovery = state_machine_roles(template)[names.RECOVERY_STATE_MACHINE]
    assert "iam:PassRole" not in granted(template, recovery)  # no role configured: none may be passed


def test_every_platform_action_says_why() -> None:
    for reason in (*FUNCTION_PLATFORM.values(), *STATE_MACHINE_PLATFORM.values()):
        assert len(reason) > 20


# ------------------------------------------------------------------ synth refuses a drifting policy


def test_a_route_granting_an_undeclared_action_is_refused() -> None:
    policy = DeclaredPolicy("fn", frozenset({"ec2:DescribeInstances"}))
    routes = [Route("Reads", ["*"], ["ec2:DescribeInstances", "ec2:DescribeVolumes"])]
    with pytest.raises(PolicyMismatch, match=r"Reads grants \['ec2:DescribeVolumes'\], which no code"):
        policy.statements(routes)


def test_a_declared_action_no_route_grants_is_refused() -> None:
    policy = DeclaredPolicy("fn", frozenset({"ec2:DescribeInstances", "ec2:TerminateInstances"}))
    with pytest.raises(PolicyMismatch, match=r"declares \['ec2:TerminateInstances'\], which no statement grants"):
        policy.statements([Route("Reads", ["*"], ["ec2:DescribeInstances"])])


def test_withholding_is_named_and_only_of_what_is_declared() -> None:
    declared = {"s3:ListBucket", "ec2:DescribeVolumes"}
    check("fn", declared, {"ec2:DescribeVolumes"}, {"s3:ListBucket": "no bucket configured"})
    with pytest.raises(PolicyMismatch, match="withholds"):
        check("fn", declared, declared, {"s3:GetObject": "stale"})
    with pytest.raises(PolicyMismatch, match="both grants and withholds"):
        check("fn", declared, declared, {"s3:ListBucket": "contradiction"})


def test_a_selecting_route_takes_only_declared_actions() -> None:
    policy = DeclaredPolicy("fn", frozenset({"dynamodb:PutItem", "sns:Publish"}))
    [ledger, topic] = policy.statements(
        [
            Route("Ledger", ["arn:aws:dynamodb:us-east-1:1:table/t"], select=lambda a: a.startswith("dynamodb:")),
            Route("Topic", ["arn:aws:sns:us-east-1:1:t"], select=lambda a: a.startswith("sns:")),
        ]
    )
    assert ledger.to_statement_json()["Action"] == "dynamodb:PutItem"
    assert topic.to_statement_json()["Action"] == "sns:Publish"


def test_synth_fails_when_code_declares_an_action_its_construct_does_not_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate is live in the stack: a new call in the sweep's code without its grant cannot be synthesised."""
    import app as cdk_app
    from infra import function
    from trainctl.core.permissions import Permissions

    real = function.declared_for

    def with_a_new_call(folder: str) -> Permissions:
        found = real(folder)
        return Permissions(found.actions | {"ec2:DeleteKeyPair"}) if folder == "cleanup_sweep" else found

    monkeypatch.setattr(function, "declared_for", with_a_new_call)
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "123456789012")
    monkeypatch.setenv("CDK_DEFAULT_REGION", "us-east-1")
    with pytest.raises(PolicyMismatch, match=r"cleanup_sweep: its code declares \['ec2:DeleteKeyPair'\]"):
        cdk_app.build_app({"trainctl": {"dry_run": True}}, outdir=str(tmp_path))
