"""IAM helpers every capability's construct shares: EC2 and document ARNs, the scope-tag and tag-key conditions,
the Deny that keeps persistent resources alive under every role, cdk-nag acknowledgements and checkov skips.
Each capability's own statements live in its construct."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct

from trainctl.core import tags

IN_SCOPE_VALUES = ["true", "yes", "1"]  # mirrors trainctl.core.tags.opts_in
EXPLICIT_FALSE = ["false", "no", "0"]  # mirrors trainctl.core.tags.protects

# Denied on anything tagged trainctl:persistent (any value but an explicit false), under every trainctl role.
# ModifyInstanceAttribute is here because IAM cannot tell one attribute from another: a role allowed to set
# DeleteOnTermination could as well change any other attribute of the instance.
PERSISTENT_DENIED = [
    "ec2:TerminateInstances",
    "ec2:StopInstances",
    "ec2:DeleteVolume",
    "ec2:DeleteSnapshot",
    "ec2:DetachVolume",
    "ec2:ModifyInstanceAttribute",
    "ec2:ModifyVolume",
    "ec2:DeregisterImage",
]

Conditions = dict[str, dict[str, Any]]


def ec2_arns(regions: Sequence[str], account: str, *kinds: str) -> list[str]:
    arns = []
    for region in regions:
        for kind in kinds:
            # Snapshot and image ARNs carry no account.
            owner = "" if kind in ("snapshot", "image") else account
            arns.append(f"arn:aws:ec2:{region}:{owner}:{kind}/*")
    return arns


def document_arns(regions: Sequence[str], account: str, document: str) -> list[str]:
    """One SSM document of trainctl's, in every region it is deployed to."""
    return [f"arn:aws:ssm:{region}:{account}:document/{document}" for region in regions]


def merged(*parts: Mapping[str, Mapping[str, Any]]) -> Conditions:
    """Conditions joined (AND), operator by operator; the same key under one operator twice is a bug."""
    result: Conditions = {}
    for part in parts:
        for operator, keys in part.items():
            into = result.setdefault(operator, {})
            clash = set(into) & set(keys)
            if clash:
                raise ValueError(f"{operator} on {sorted(clash)} given twice")
            into.update(keys)
    return result


def in_scope_condition(scope_tag: str, key_prefix: str = "aws:ResourceTag") -> Conditions:
    return {"StringEqualsIgnoreCase": {f"{key_prefix}/{scope_tag}": IN_SCOPE_VALUES}}


def tag_keys_only(keys: Sequence[str]) -> Conditions:
    """The request's tag keys are all among `keys`, and there are some.

    ForAllValues is true when the request has no tag keys at all, and a DeleteTags call without tags deletes
    every user tag: the Null check refuses such a request.
    """
    return {"ForAllValues:StringEquals": {"aws:TagKeys": sorted(set(keys))}, "Null": {"aws:TagKeys": "false"}}


def tag_present(key: str, prefix: str = "aws:ResourceTag") -> Conditions:
    return {"Null": {f"{prefix}/{key}": "false"}}


def created_by(action: str) -> Conditions:
    """Tags written by the call that creates the resource (TagSpecifications), not on anything else."""
    return {"StringEquals": {"ec2:CreateAction": action}}


def never_destroy_persistent(*, except_detach: bool = False) -> iam.PolicyStatement:
    """Deny destroying what is tagged trainctl:persistent (anything but an explicit false), whatever else allows it.

    `except_detach`: for the pre-warm workflow alone, which may fill a persistent volume when the request forces
    it and must then detach what it attached (detaching destroys nothing; its grant is held to scope)."""
    return iam.PolicyStatement(
        sid="NeverDestroyPersistent",
        effect=iam.Effect.DENY,
        actions=[a for a in PERSISTENT_DENIED if not (except_detach and a == "ec2:DetachVolume")],
        resources=["*"],
        conditions={
            "Null": {f"aws:ResourceTag/{tags.PERSISTENT}": "false"},
            "StringNotEqualsIgnoreCase": {f"aws:ResourceTag/{tags.PERSISTENT}": EXPLICIT_FALSE},
        },
    )


def acknowledge(scope: Construct, rule: str, reason: str) -> None:
    """A cdk-nag finding accepted on `scope` and below, with the reason it is acceptable.

    A rule id built from a token (an ARN with the stack's account when synth knows no account) is spelled the
    way cdk-nag spells the finding: `<AWS::AccountId>`. The token itself cannot be a key (jsii refuses it).
    """
    if cdk.Token.is_unresolved(rule):
        rule = flatten_reference(cdk.Stack.of(scope).resolve(rule))
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def flatten_reference(node: Any) -> str:
    """A resolved CloudFormation value as cdk-nag flattens it into a finding (its flattenCfnReference)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict) and "Fn::Join" in node:
        delimiter, items = node["Fn::Join"]
        return str(delimiter).join(flatten_reference(item) for item in items)
    if isinstance(node, dict) and "Fn::Sub" in node:
        return flatten_reference(node["Fn::Sub"])
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        resource, attribute = node["Fn::GetAtt"]
        return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"
    if isinstance(node, dict) and "Fn::ImportValue" in node:
        return flatten_reference(node["Fn::ImportValue"])
    if isinstance(node, dict) and "Ref" in node:
        return f"<{flatten_reference(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"))


def checkov_skip(construct: IConstruct, check_id: str, comment: str) -> None:
    """A checkov finding accepted on the construct's CloudFormation resource, with the reason, in its Metadata."""
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    assert isinstance(resource, cdk.CfnResource), construct.node.path
    current = resource.get_metadata("checkov") or {"skip": []}
    resource.add_metadata("checkov", {"skip": [*current["skip"], {"id": check_id, "comment": comment}]})


def logical_id(construct: Construct) -> str:
    """The logical id of a construct's CloudFormation resource, as cdk-nag names it in a finding."""
    resource = construct.node.default_child
    assert isinstance(resource, cdk.CfnElement)
    stack = cdk.Stack.of(construct)
    return str(stack.resolve(stack.get_logical_id(resource)))
