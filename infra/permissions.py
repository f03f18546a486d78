"""IAM helpers every capability's construct shares: EC2 and document ARNs, the scope-tag conditions, and
cdk-nag acknowledgements. Each capability's own statements live in its construct."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from constructs import Construct

IN_SCOPE_VALUES = ["true", "yes", "1"]  # mirrors trainctl.core.tags.opts_in
EXPLICIT_FALSE = ["false", "no", "0"]  # mirrors trainctl.core.tags.protects


def ec2_arns(regions: Sequence[str], account: str, *kinds: str) -> list[str]:
    arns = []
    for region in regions:
        for kind in kinds:
            # Snapshot ARNs carry no account.
            owner = "" if kind == "snapshot" else account
            arns.append(f"arn:aws:ec2:{region}:{owner}:{kind}/*")
    return arns


def document_arns(regions: Sequence[str], account: str, document: str) -> list[str]:
    """One SSM document of trainctl's, in every region it is deployed to."""
    return [f"arn:aws:ssm:{region}:{account}:document/{document}" for region in regions]


def in_scope_condition(scope_tag: str, key_prefix: str = "aws:ResourceTag") -> dict[str, dict[str, list[str]]]:
    return {"StringEqualsIgnoreCase": {f"{key_prefix}/{scope_tag}": IN_SCOPE_VALUES}}


def acknowledge(scope: Construct, rule: str, reason: str) -> None:
    """A cdk-nag finding accepted on `scope` and below, with the reason it is acceptable."""
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def logical_id(construct: Construct) -> str:
    """The logical id of a construct's CloudFormation resource, as cdk-nag names it in a finding."""
    resource = construct.node.default_child
    assert isinstance(resource, cdk.CfnElement)
    stack = cdk.Stack.of(construct)
    return str(stack.resolve(stack.get_logical_id(resource)))
