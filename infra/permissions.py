"""IAM for the sweep: reads where EC2 has no resource-level permissions, and every write scoped by tag."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import aws_iam as iam

from trainctl.core import tags

IN_SCOPE_VALUES = ["true", "yes", "1"]  # mirrors trainctl.core.tags.opts_in
EXPLICIT_FALSE = ["false", "no", "0"]  # mirrors trainctl.core.tags.protects
DESTRUCTIVE_EC2_ACTIONS = ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:DeleteVolume", "ec2:DeleteSnapshot"]


def ec2_arns(regions: Sequence[str], account: str, *kinds: str) -> list[str]:
    arns = []
    for region in regions:
        for kind in kinds:
            # Snapshot ARNs carry no account.
            owner = "" if kind == "snapshot" else account
            arns.append(f"arn:aws:ec2:{region}:{owner}:{kind}/*")
    return arns


def in_scope_condition(scope_tag: str, key_prefix: str = "aws:ResourceTag") -> dict[str, dict[str, list[str]]]:
    return {"StringEqualsIgnoreCase": {f"{key_prefix}/{scope_tag}": IN_SCOPE_VALUES}}


def sweep_statements(
    *, regions: Sequence[str], account: str, scope_tag: str, training_document_arns: Sequence[str]
) -> list[iam.PolicyStatement]:
    resources = ec2_arns(regions, account, "instance", "volume", "snapshot")
    return [
        iam.PolicyStatement(
            sid="ReadInventoryAndMetrics",
            actions=[
                "ec2:DescribeInstances",
                "ec2:DescribeVolumes",
                "ec2:DescribeSnapshots",
                "ec2:DescribeImages",
                "cloudwatch:GetMetricData",
                "ssm:GetCommandInvocation",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="MarkInScopeOnly",
            actions=["ec2:CreateTags", "ec2:DeleteTags"],
            resources=resources,
            conditions={
                **in_scope_condition(scope_tag),
                "ForAllValues:StringEquals": {"aws:TagKeys": [tags.CLEANUP_AFTER]},
            },
        ),
        iam.PolicyStatement(
            sid="ActOnInScopeOnly",
            actions=[*DESTRUCTIVE_EC2_ACTIONS, "ec2:ModifyInstanceAttribute"],
            resources=resources,
            conditions=in_scope_condition(scope_tag),
        ),
        iam.PolicyStatement(
            sid="NeverDestroyPersistent",
            effect=iam.Effect.DENY,
            actions=DESTRUCTIVE_EC2_ACTIONS,
            resources=resources,
            conditions={
                "Null": {f"aws:ResourceTag/{tags.PERSISTENT}": "false"},
                "StringNotEqualsIgnoreCase": {f"aws:ResourceTag/{tags.PERSISTENT}": EXPLICIT_FALSE},
            },
        ),
        iam.PolicyStatement(
            sid="TrainingCheckDocument",
            actions=["ssm:SendCommand"],
            resources=list(training_document_arns),
        ),
        iam.PolicyStatement(
            sid="TrainingCheckInScopeInstances",
            actions=["ssm:SendCommand"],
            resources=ec2_arns(regions, account, "instance"),
            conditions=in_scope_condition(scope_tag, key_prefix="ssm:resourceTag"),
        ),
    ]


STAMP_KEYS = [tags.CREATED_AT, tags.CREATED_BY, tags.OWNER]


def age_guard_statements(*, regions: Sequence[str], account: str, scope_tag: str) -> list[iam.PolicyStatement]:
    stamped = [
        *ec2_arns(regions, account, "instance", "volume", "snapshot", "spot-instances-request"),
        *[f"arn:aws:ec2:{region}::image/*" for region in regions],
    ]
    return [
        iam.PolicyStatement(
            sid="ReadWhatWasCreated",
            actions=["ec2:DescribeTags", "ec2:DescribeInstances", "ec2:DescribeSpotInstanceRequests"],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="StampWhoAndWhen",
            actions=["ec2:CreateTags"],
            resources=stamped,
            conditions={"ForAllValues:StringEquals": {"aws:TagKeys": STAMP_KEYS}},
        ),
        iam.PolicyStatement(
            sid="BringIntoScopeOnlyWhereUnset",
            actions=["ec2:CreateTags"],
            resources=stamped,
            conditions={
                "ForAllValues:StringEquals": {"aws:TagKeys": [*STAMP_KEYS, scope_tag]},
                # Never overwrite a scope decision a person made.
                "Null": {f"aws:ResourceTag/{scope_tag}": "true"},
            },
        ),
    ]


def cost_statements(*, regions: Sequence[str], pricing_region: str) -> list[iam.PolicyStatement]:
    """Read-only: the inventory, spot price history and the Price List API, none of which take resource ARNs."""
    return [
        iam.PolicyStatement(
            sid="ReadInventoryAndSpotPrices",
            actions=[
                "ec2:DescribeInstances",
                "ec2:DescribeVolumes",
                "ec2:DescribeSnapshots",
                "ec2:DescribeSpotPriceHistory",
            ],
            resources=["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": list(regions)}},
        ),
        iam.PolicyStatement(
            sid="ReadListPrices",
            actions=["pricing:GetProducts"],
            resources=["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": [pricing_region]}},
        ),
    ]


def spot_statements(
    *, regions: Sequence[str], account: str, scope_tag: str, document_arns: Sequence[str], state_machine_arn: str
) -> list[iam.PolicyStatement]:
    """Checkpoint, snapshot and keep, only for in-scope instances; start recovery, nothing else."""
    instances = ec2_arns(regions, account, "instance")
    return [
        iam.PolicyStatement(
            sid="ReadTheInstance",
            actions=[
                "ec2:DescribeInstances",
                "ec2:DescribeVolumes",
                "ec2:DescribeAvailabilityZones",
                "ssm:GetCommandInvocation",
            ],
            resources=["*"],
        ),
        iam.PolicyStatement(
            sid="CheckpointDocument",
            actions=["ssm:SendCommand"],
            resources=list(document_arns),
        ),
        iam.PolicyStatement(
            sid="CheckpointInScopeInstances",
            actions=["ssm:SendCommand"],
            resources=instances,
            conditions=in_scope_condition(scope_tag, key_prefix="ssm:resourceTag"),
        ),
        iam.PolicyStatement(
            sid="SnapshotAndKeepInScopeInstances",
            actions=["ec2:CreateSnapshots", "ec2:ModifyInstanceAttribute"],
            resources=instances,
            conditions=in_scope_condition(scope_tag),
        ),
        iam.PolicyStatement(
            # CreateSnapshots also authorises on the instance's volumes and the new snapshots.
            sid="SnapshotTheirVolumes",
            actions=["ec2:CreateSnapshots"],
            resources=[*ec2_arns(regions, account, "volume"), *ec2_arns(regions, account, "snapshot")],
        ),
        iam.PolicyStatement(
            sid="TagNewSnapshotsOnly",
            actions=["ec2:CreateTags"],
            resources=ec2_arns(regions, account, "snapshot"),
            conditions={"StringEquals": {"ec2:CreateAction": "CreateSnapshots"}},
        ),
        iam.PolicyStatement(sid="StartRecovery", actions=["states:StartExecution"], resources=[state_machine_arn]),
    ]
