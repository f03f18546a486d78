"""Security gates over IAM statements, as pure checks: each returns what it finds wrong, so that each can be shown
to find a hand-made bad statement (tests/infra/test_iam_gates.py) and to find nothing in the template."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from infra.permissions import EXPLICIT_FALSE, PERSISTENT_DENIED
from trainctl.core import tags

Statement = dict[str, Any]

DESTRUCTIVE = {
    "ec2:TerminateInstances",
    "ec2:StopInstances",
    "ec2:DeleteVolume",
    "ec2:DeleteSnapshot",
    "ec2:DetachVolume",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyVolume",
    "ec2:DeregisterImage",
}
ATTACHING = {"ec2:AttachVolume", "iam:PassRole"}
TAGGING = {"ec2:CreateTags", "ec2:DeleteTags"}
# A creating action must be conditioned where it authorises on what it creates.
CREATES = {
    "ec2:RunInstances": ("instance/", "volume/"),
    "ec2:CreateVolume": ("volume/",),
    "ec2:CreateSnapshot": ("snapshot/",),
    "ec2:CreateSnapshots": ("snapshot/",),
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(resource: Any) -> str:
    """A resource as text; CloudFormation functions (a role ARN, a table) as their JSON."""
    return resource if isinstance(resource, str) else repr(resource)


def allows(statement: Statement) -> bool:
    return statement.get("Effect") == "Allow"


def unconditioned(statements: Iterable[Statement]) -> list[str]:
    """Every destructive, attaching or tagging action (and a creating one on what it creates) needs a condition,
    and none of them may be granted on `*`."""
    found = []
    for statement in filter(allows, statements):
        actions = set(as_list(statement["Action"]))
        resources = [_text(r) for r in as_list(statement["Resource"])]
        guarded = actions & (DESTRUCTIVE | ATTACHING | TAGGING)
        guarded |= {
            action
            for action, created in CREATES.items()
            if action in actions and any(r == "*" or any(kind in r for kind in created) for r in resources)
        }
        if guarded and not statement.get("Condition"):
            found.append(f"{statement.get('Sid')}: {sorted(guarded)} without a condition")
        if guarded and "*" in resources:
            found.append(f"{statement.get('Sid')}: {sorted(guarded)} on *")
    return found


def tag_key_limits_without_null(statements: Iterable[Statement]) -> list[str]:
    """ForAllValues is true for a request without tags (DeleteTags without tags deletes them all): every limit on
    aws:TagKeys comes with "Null": {"aws:TagKeys": "false"}."""
    found = []
    for statement in statements:
        condition = statement.get("Condition", {})
        limited = any(
            operator.startswith("ForAllValues:") and "aws:TagKeys" in keys for operator, keys in condition.items()
        )
        if limited and condition.get("Null", {}).get("aws:TagKeys") != "false":
            found.append(f"{statement.get('Sid')}: aws:TagKeys limited without the Null check")
    return found


def tag_writes_beyond_trainctl(statements: Iterable[Statement], scope_tag: str) -> list[str]:
    """Tags on resources trainctl did not just create are written (or deleted) only under trainctl's own keys."""
    found = []
    for statement in filter(allows, statements):
        if not TAGGING & set(as_list(statement["Action"])):
            continue
        condition = statement.get("Condition", {})
        if "ec2:CreateAction" in condition.get("StringEquals", {}):
            continue  # tags written by the call that creates the resource: trainctl's own new resource
        keys = condition.get("ForAllValues:StringEquals", {}).get("aws:TagKeys")
        if keys is None:
            found.append(f"{statement.get('Sid')}: tag keys not limited")
            continue
        foreign = [k for k in as_list(keys) if not (k.startswith("trainctl:") or k == scope_tag)]
        if foreign:
            found.append(f"{statement.get('Sid')}: writes tag keys {foreign}")
    return found


_ROLE_WILDCARD = re.compile(r":role/(.*/)?\*$|^\*$")


def pass_role_unnamed(statements: Iterable[Statement]) -> list[str]:
    """iam:PassRole names its roles, never role/* (or *), and only to EC2."""
    found = []
    for statement in filter(allows, statements):
        if "iam:PassRole" not in as_list(statement["Action"]):
            continue
        wild = [r for r in as_list(statement["Resource"]) if isinstance(r, str) and _ROLE_WILDCARD.search(r)]
        if wild:
            found.append(f"{statement.get('Sid')}: passes {wild}")
        passed_to = statement.get("Condition", {}).get("StringEquals", {}).get("iam:PassedToService")
        if not passed_to:
            found.append(f"{statement.get('Sid')}: PassRole to any service")
    return found


def without_persistent_deny(statements: Iterable[Statement], *, may_detach: bool = False) -> list[str]:
    """The role denies every destructive action on anything tagged trainctl:persistent but explicitly false.

    `may_detach`: the pre-warm workflow's role, which detaches a forced persistent volume it attached."""
    key = f"aws:ResourceTag/{tags.PERSISTENT}"
    denied = set(PERSISTENT_DENIED) - ({"ec2:DetachVolume"} if may_detach else set())
    for statement in statements:
        if (
            statement.get("Effect") == "Deny"
            and denied <= set(as_list(statement["Action"]))
            and as_list(statement["Resource"]) == ["*"]
            and statement.get("Condition")
            == {"Null": {key: "false"}, "StringNotEqualsIgnoreCase": {key: EXPLICIT_FALSE}}
        ):
            return []
    return ["no Deny of destructive actions on trainctl:persistent resources"]
