"""What spokes forward to the hub's organization bus is consumed (issue 29, item 4): rules on the bus to the spot and
age_guard functions, the spoke role trusting their roles too and holding their declared grants, and their roles
allowed to assume the spoke role in the organization only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.organization_spoke import HUB_ROLES, spoke_actions
from infra.spoke_access import SPOKE_ACCESS_WITHHELD
from tests.infra.test_organization_stack import ORG_ID, hub, of_type, role_of_function, spoke, stack_set

pytestmark = pytest.mark.infra

__all__ = ["hub"]  # the module-scoped synthesis of the organization's hub, shared with test_organization_stack

SPOT = "trainctl spot interruption"
STAMP = "trainctl age guard"


def function_named(template: dict[str, Any], description: str) -> tuple[str, dict[str, Any]]:
    [(logical_id, function)] = [
        (k, r)
        for k, r in of_type(template, "AWS::Lambda::Function").items()
        if r["Properties"].get("Description", "").startswith(description)
    ]
    return logical_id, function


def role_arn(template: dict[str, Any], description: str) -> dict[str, Any]:
    role = function_named(template, description)[1]["Properties"]["Role"]["Fn::GetAtt"][0]
    return {"Fn::GetAtt": [role, "Arn"]}


def rules_on_the_organization_bus(template: dict[str, Any]) -> list[dict[str, Any]]:
    [bus] = [k for k, r in of_type(template, "AWS::Events::EventBus").items()]
    return [
        r["Properties"]
        for r in of_type(template, "AWS::Events::Rule").values()
        if r["Properties"].get("EventBusName") == {"Ref": bus}
    ]


def test_forwarded_events_go_where_the_single_account_stack_sends_its_own(hub: dict[str, Any]) -> None:
    spot, stamp = function_named(hub, SPOT)[0], function_named(hub, STAMP)[0]
    routed: dict[str, set[tuple[str, str]]] = {}
    for rule in rules_on_the_organization_bus(hub):
        [target] = rule["Targets"]
        function = target["Arn"]["Fn::GetAtt"][0]
        pattern = rule["EventPattern"]
        assert pattern["source"] == ["aws.ec2"]
        for detail_type in pattern["detail-type"]:
            states = ",".join(pattern.get("detail", {}).get("state", []))
            routed.setdefault(function, set()).add((detail_type, states))
        # Every forwarded event that could not be delivered lands in the failure queue.
        assert "DeadLetterConfig" in target
    assert routed == {
        spot: {
            ("EC2 Spot Instance Interruption Warning", ""),
            ("EC2 Instance Rebalance Recommendation", ""),
            ("EC2 Instance State-change Notification", "stopping,shutting-down,terminated"),
        },
        stamp: {
            ("AWS API Call via CloudTrail", ""),
            ("EC2 Instance State-change Notification", "running"),
        },
    }


def test_the_spoke_role_trusts_the_spot_and_age_guard_roles_beside_the_organization_sweep(hub: dict[str, Any]) -> None:
    [roles] = [p for p in stack_set(hub)["Parameters"] if p["ParameterKey"] == HUB_ROLES]
    sweep = role_arn(hub, "trainctl organization run: sweep")
    assert roles["ParameterValue"] == {"Fn::Join": [",", [sweep, role_arn(hub, SPOT), role_arn(hub, STAMP)]]}
    # Still only from inside the organization.
    [trust] = spoke(hub)["Resources"]["SpokeRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG_ID}}


def test_the_spoke_role_grants_exactly_what_the_spot_and_age_guard_code_declares_it_does_in_a_member(
    hub: dict[str, Any],
) -> None:
    resources = spoke(hub)["Resources"]
    policies = {
        r["Properties"]["ManagedPolicyName"]: r["Properties"]["PolicyDocument"]["Statement"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::ManagedPolicy"
    }
    for r in resources.values():
        if r["Type"] == "AWS::IAM::ManagedPolicy":
            # On the spoke role, and made with it in the one region that holds IAM's global resources.
            assert r["Properties"]["Roles"] == [{"Ref": "SpokeRole"}] and r["Condition"] == "RoleRegion"

    def allowed(statements: list[dict[str, Any]]) -> set[str]:
        return {
            a
            for s in statements
            if s["Effect"] == "Allow"
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        }

    assert allowed(policies["trainctl-spoke-spot"]) == spoke_actions("spot_interruption")
    assert allowed(policies["trainctl-spoke-stamp"]) == spoke_actions("age_guard")
    # Nothing of the hub's side in a member: no ledger, topic, key, workflow or STS.
    for name in ("trainctl-spoke-spot", "trainctl-spoke-stamp"):
        assert not {
            a for a in allowed(policies[name]) if a.split(":")[0] in {"dynamodb", "sns", "kms", "states", "sts"}
        }
    spot = {s["Sid"]: s for s in policies["trainctl-spoke-spot"]}
    assert spot["CheckpointInScopeInstances"]["Condition"] == {
        "StringEqualsIgnoreCase": {"ssm:resourceTag/trainctl:managed": ["true", "yes", "1"]}
    }
    # A stamp is never rewritten, in a member as in the hub.
    denies = [s for s in policies["trainctl-spoke-stamp"] if s["Effect"] == "Deny"]
    assert {s["Sid"] for s in denies} >= {"NeverRewriteCreatedAt", "NeverRewriteCreator", "NeverRewriteOwner"}


def test_only_the_spot_and_age_guard_roles_of_an_organization_deployment_may_assume_the_spoke_role(
    hub: dict[str, Any], synthesized: tuple[dict[str, Any], Path]
) -> None:
    for description in (SPOT, STAMP):
        [assume] = [s for s in role_of_function(hub, description) if "sts:AssumeRole" in str(s["Action"])]
        assert assume["Action"] == "sts:AssumeRole"
        assert assume["Resource"] == "arn:aws:iam::*:role/trainctl-spoke-access"
        assert assume["Condition"] == {"StringEquals": {"aws:ResourceOrgID": ORG_ID}}
        environment = function_named(hub, description)[1]["Properties"]["Environment"]["Variables"]
        assert environment["TRAINCTL_ORG_UNITS"] and environment["TRAINCTL_ORG_SPOKE_ROLE"] == "trainctl-spoke-access"
        # A single account's functions hold no spoke access at all.
        single, _ = synthesized
        statements = role_of_function(single, description)
        assert not [s for s in statements if set(SPOKE_ACCESS_WITHHELD) & set(str(s["Action"]).split("'"))]
        assert (
            "TRAINCTL_ORG_UNITS" not in function_named(single, description)[1]["Properties"]["Environment"]["Variables"]
        )
