"""The IAM security gates (tests/infra/gates.py) over every role in the template, and each gate shown to catch a
hand-made bad statement: safety model item 9, issue 17 items 10 and 11."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from tests.infra import gates
from tests.infra.gates import as_list
from trainctl.core import tags

pytestmark = pytest.mark.infra

SCOPE = tags.MANAGED
IN_SCOPE = {"StringEqualsIgnoreCase": {f"aws:ResourceTag/{SCOPE}": ["true", "yes", "1"]}}
PERSISTENT = f"aws:ResourceTag/{tags.PERSISTENT}"


def role_statements(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every role's statements, by the role's logical id."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Policy":
            for role in resource["Properties"]["Roles"]:
                found[role["Ref"]].extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return found


def trainctl_roles(template: dict[str, Any]) -> set[str]:
    """The roles of every function and state machine, and every role that may call EC2 at all."""
    resources = template["Resources"]
    roles = {
        r["Properties"]["Role" if r["Type"] == "AWS::Lambda::Function" else "RoleArn"]["Fn::GetAtt"][0]
        for r in resources.values()
        if r["Type"] in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine")
    }
    for role, statements in role_statements(template).items():
        if any(a.startswith("ec2:") for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"])):
            roles.add(role)
    return roles


def test_every_role_conditions_what_destroys_attaches_or_tags(synthesized) -> None:
    for role, statements in role_statements(synthesized[0]).items():
        assert gates.unconditioned(statements) == [], role


def test_every_tag_key_limit_carries_the_null_check(synthesized) -> None:
    for role, statements in role_statements(synthesized[0]).items():
        assert gates.tag_key_limits_without_null(statements) == [], role


def test_tags_on_existing_resources_are_only_trainctls_own(synthesized) -> None:
    for role, statements in role_statements(synthesized[0]).items():
        assert gates.tag_writes_beyond_trainctl(statements, SCOPE) == [], role


def test_pass_role_names_its_roles(synthesized) -> None:
    for role, statements in role_statements(synthesized[0]).items():
        assert gates.pass_role_unnamed(statements) == [], role


def test_every_trainctl_role_denies_destroying_persistent_resources(synthesized) -> None:
    roles = trainctl_roles(synthesized[0])
    # Six functions, two state machines (and the pre-warm worker has no EC2 action, but the Deny all the same).
    assert len(roles) >= 8
    statements = role_statements(synthesized[0])
    for role in roles:
        # Issue 17 item 7: a forced pre-warm fills a persistent volume, and its workflow must detach it again.
        may_detach = role.startswith("PrewarmStateMachineRole")
        assert gates.without_persistent_deny(statements[role], may_detach=may_detach) == [], role
    prewarm = [r for r in roles if r.startswith("PrewarmStateMachineRole")]
    assert prewarm, "the pre-warm workflow's role"
    for role in prewarm:
        denies = [s for s in statements[role] if s.get("Effect") == "Deny"]
        assert not any("ec2:DetachVolume" in as_list(s["Action"]) for s in denies)


def test_modify_instance_attribute_only_where_code_calls_it(synthesized) -> None:
    """Issue 17 item 11: the sweep and spot keep volumes with it; the recovery workflow keeps restored ones."""
    holders = {
        role
        for role, statements in role_statements(synthesized[0]).items()
        if any("ec2:ModifyInstanceAttribute" in as_list(s["Action"]) for s in statements if s["Effect"] == "Allow")
    }
    assert {h.split("Role")[0] for h in holders} == {
        "CleanupSweep",
        "SpotInterruptionCheckpoint",
        "SpotRecoveryStateMachine",
    }
    for role in holders:
        granting = [
            s
            for s in role_statements(synthesized[0])[role]
            if s["Effect"] == "Allow" and "ec2:ModifyInstanceAttribute" in as_list(s["Action"])
        ]
        for statement in granting:
            assert all(":instance/" in r for r in as_list(statement["Resource"])), role
            assert statement["Condition"], role


# ------------------------------------------------------------------ each gate catches what it is there for


def test_the_condition_gate_catches_an_unconditioned_destructive_attaching_tagging_or_creating_grant() -> None:
    for action, resource in (
        ("ec2:TerminateInstances", "arn:aws:ec2:us-east-1:1:instance/*"),
        ("ec2:AttachVolume", "arn:aws:ec2:us-east-1:1:volume/*"),
        ("ec2:CreateTags", "arn:aws:ec2:us-east-1:1:volume/*"),
        ("ec2:RunInstances", "arn:aws:ec2:us-east-1:1:instance/*"),
        ("ec2:CreateVolume", "*"),
    ):
        bad = {"Sid": "Bad", "Effect": "Allow", "Action": action, "Resource": resource}
        assert gates.unconditioned([bad]), action
    on_star = {"Sid": "Star", "Effect": "Allow", "Action": "ec2:DetachVolume", "Resource": "*", "Condition": IN_SCOPE}
    assert gates.unconditioned([on_star]) == ["Star: ['ec2:DetachVolume'] on *"]
    # What RunInstances only reads (an image) needs no condition; a Deny is never a grant.
    image = {"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "arn:aws:ec2:us-east-1::image/*"}
    deny = {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"}
    assert gates.unconditioned([image, deny]) == []


def test_the_null_gate_catches_a_tag_key_limit_alone() -> None:
    """Issue 17 item 10: the sweep's DeleteTags was limited by ForAllValues only."""
    limit = {"ForAllValues:StringEquals": {"aws:TagKeys": [tags.CLEANUP_AFTER]}}
    bad = {"Sid": "Bad", "Effect": "Allow", "Action": "ec2:DeleteTags", "Resource": "*", "Condition": limit}
    assert gates.tag_key_limits_without_null([bad]) == ["Bad: aws:TagKeys limited without the Null check"]
    good = {**bad, "Condition": {**limit, "Null": {"aws:TagKeys": "false"}}}
    assert gates.tag_key_limits_without_null([good]) == []


def test_the_tag_key_gate_catches_foreign_or_unlimited_keys() -> None:
    foreign = {
        "Sid": "Foreign",
        "Effect": "Allow",
        "Action": "ec2:CreateTags",
        "Resource": "*",
        "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": [tags.OWNER, "Name"]}},
    }
    unlimited = {
        "Sid": "Unlimited",
        "Effect": "Allow",
        "Action": "ec2:DeleteTags",
        "Resource": "*",
        "Condition": IN_SCOPE,
    }
    assert gates.tag_writes_beyond_trainctl([foreign, unlimited], SCOPE) == [
        "Foreign: writes tag keys ['Name']",
        "Unlimited: tag keys not limited",
    ]
    at_creation = {**foreign, "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}}
    assert gates.tag_writes_beyond_trainctl([at_creation], SCOPE) == []


def test_the_pass_role_gate_catches_role_star_and_any_service() -> None:
    wild = {"Sid": "Wild", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/*"}
    found = gates.pass_role_unnamed([wild])
    assert found == ["Wild: passes ['arn:aws:iam::1:role/*']", "Wild: PassRole to any service"]
    named = {
        **wild,
        "Resource": "arn:aws:iam::1:role/trainer",
        "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
    }
    assert gates.pass_role_unnamed([named]) == []


def test_the_persistent_gate_catches_a_missing_or_narrower_deny() -> None:
    assert gates.without_persistent_deny([]) != []
    condition = {"Null": {PERSISTENT: "false"}, "StringNotEqualsIgnoreCase": {PERSISTENT: ["false", "no", "0"]}}
    narrow = {"Effect": "Deny", "Action": ["ec2:TerminateInstances"], "Resource": "*", "Condition": condition}
    assert gates.without_persistent_deny([narrow]) != []
    from infra.permissions import PERSISTENT_DENIED

    present_only = {**narrow, "Action": PERSISTENT_DENIED, "Condition": {"Null": {PERSISTENT: "false"}}}
    assert gates.without_persistent_deny([present_only]) != []  # would protect even trainctl:persistent=false
    assert gates.without_persistent_deny([{**narrow, "Action": PERSISTENT_DENIED}]) == []


def test_age_guard_writes_every_stamp_key_only_where_the_resource_lacks_it_the_creator_too() -> None:
    """Issue 25: age_guard's role could rewrite trainctl:created-by on any resource; only its code refrained."""
    from infra.age_guard import age_guard_routes, restamp_denials, stamp_keys

    routes = age_guard_routes(regions=["us-east-1"], account="123456789012", scope_tag=SCOPE)
    written = {
        key
        for r in routes
        if "ec2:CreateTags" in r.actions and r.conditions
        for key in r.conditions["ForAllValues:StringEquals"]["aws:TagKeys"]
    }
    assert tags.CREATED_BY in written and written <= set(stamp_keys(SCOPE))
    denied = {
        conditions["ForAnyValue:StringEquals"]["aws:TagKeys"]
        for _, conditions in restamp_denials(SCOPE)
        if conditions["Null"] == {f"aws:ResourceTag/{conditions['ForAnyValue:StringEquals']['aws:TagKeys']}": "false"}
    }
    assert written <= denied, f"written where already set: {sorted(written - denied)}"
