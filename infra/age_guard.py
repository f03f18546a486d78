"""The age guard capability: its function, the EventBridge rules that feed it, its IAM and cdk-nag
acknowledgements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.function import TrainctlFunction
from infra.permissions import acknowledge, ec2_arns, in_scope_condition, merged, tag_keys_only
from infra.policy import Route, read_routes, service
from infra.spoke_access import SPOKE_ACCESS_WITHHELD
from trainctl.age_guard.rules import STAMPED_EVENTS, USE_EVENTS
from trainctl.core import tags


class AgeGuard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        regions: Sequence[str],
        scope_tag: str,
        ledger: dynamodb.ITable,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        account = cdk.Stack.of(self).account
        handler = TrainctlFunction(
            self,
            "Stamp",
            folder="age_guard",
            description="trainctl age guard: stamp who made each resource and when",
            layer=layer,
            environment={
                **settings_environment,
                "TRAINCTL_ACCOUNT_ID": account,
                # A resource used between two sweeps: its mark is voided, and the ledger says why.
                "TRAINCTL_LEDGER_TABLE": ledger.table_name,
            },
            failures=failures,
            log_retention=log_retention,
            timeout=cdk.Duration.seconds(60),
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        self._rules(failures)
        handler.grant_declared(
            [
                Route("RecordUses", [ledger.table_arn], select=service("dynamodb")),
                *age_guard_routes(regions=regions, account=account, scope_tag=scope_tag),
            ],
            withheld=SPOKE_ACCESS_WITHHELD,
        )
        for statement in never_restamp(scope_tag):
            self.role.add_to_policy(statement)
        for arn in stamped_arns(["*"], account):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "Any new resource may need stamping, in the configured regions (aws:RequestedRegion); only the "
                "trainctl:created-at, created-by, owner and scope keys, each only where unset.",
            )
        for arn in ec2_arns(regions, account, "instance", "volume", "snapshot"):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "A resource used between two sweeps loses its mark: only the trainctl:cleanup-after key, in scope.",
            )

    def _rules(self, failures: sqs.IQueue) -> None:
        target = targets.LambdaFunction(
            self.function, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(2)
        )
        # Needs a CloudTrail trail with management events on: EventBridge only sees what the trail records.
        self.api_calls = events.Rule(
            self,
            "ApiCalls",
            description="trainctl age guard: EC2 resources created, used, or moved in or out of scope",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["AWS API Call via CloudTrail"],
                # Creations are stamped; a use between two sweeps voids the mark on what it touched.
                detail={"eventSource": ["ec2.amazonaws.com"], "eventName": [*STAMPED_EVENTS, *USE_EVENTS]},
            ),
            targets=[target],
        )
        self.first_starts = events.Rule(
            self,
            "FirstStarts",
            description="trainctl age guard: instances the trail did not attribute",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["EC2 Instance State-change Notification"],
                detail={"state": ["running"]},
            ),
            targets=[target],
        )


def stamped_arns(regions: Sequence[str], account: str) -> list[str]:
    """Every kind of resource age guard may stamp, in every region."""
    return [
        *ec2_arns(regions, account, "instance", "volume", "snapshot", "spot-instances-request"),
        *[f"arn:aws:ec2:{region}::image/*" for region in regions],
    ]


def stamp_keys(scope_tag: str) -> list[str]:
    """The keys age guard writes, each only on a resource that lacks it."""
    return [tags.CREATED_AT, tags.CREATED_BY, tags.OWNER, scope_tag]


def restamp_denials(scope_tag: str) -> list[tuple[str, dict[str, dict[str, str]]]]:
    """(sid, conditions) of each refusal: a request that writes a stamp key the resource already has (any case)."""
    names = {tags.CREATED_AT: "CreatedAt", tags.CREATED_BY: "Creator", tags.OWNER: "Owner"}
    return [
        (
            f"NeverRewrite{names.get(key, 'Scope')}",
            {"ForAnyValue:StringEquals": {"aws:TagKeys": key}, "Null": {f"aws:ResourceTag/{key}": "false"}},
        )
        for key in stamp_keys(scope_tag)
    ]


def never_restamp(scope_tag: str) -> list[iam.PolicyStatement]:
    """IAM's conditions hold for a whole request, so "each key only where unset" is one Deny per key beside the one
    Allow (a statement per set of keys would be fifteen, and overflow the role's policy)."""
    return [
        iam.PolicyStatement(
            sid=sid, effect=iam.Effect.DENY, actions=["ec2:CreateTags"], resources=["*"], conditions=conditions
        )
        for sid, conditions in restamp_denials(scope_tag)
    ]


def age_guard_routes(*, regions: Sequence[str], account: str, scope_tag: str) -> list[Route]:
    return [
        *read_routes(regions, account),
        # Creator, owner, birth time and scope, in the configured regions; each only where unset: never_restamp.
        Route(
            "StampOnlyTrainctlKeys",
            stamped_arns(["*"], account),
            actions=["ec2:CreateTags"],
            conditions=merged(
                tag_keys_only(stamp_keys(scope_tag)), {"StringEquals": {"aws:RequestedRegion": list(regions)}}
            ),
        ),
        # A resource in use loses the sweep's mark (where the code declares it does): that one key, in scope.
        Route(
            "VoidMarksOnUse",
            ec2_arns(regions, account, "instance", "volume", "snapshot"),
            select=lambda action: action == "ec2:DeleteTags",
            conditions=merged(in_scope_condition(scope_tag), tag_keys_only([tags.CLEANUP_AFTER])),
        ),
    ]
