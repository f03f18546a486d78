"""The age guard capability: its function, the EventBridge rules that feed it, its IAM and cdk-nag
acknowledgements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.function import TrainctlFunction
from infra.permissions import acknowledge, ec2_arns
from trainctl.age_guard.rules import STAMPED_EVENTS
from trainctl.core import tags

STAMP_KEYS = [tags.CREATED_AT, tags.CREATED_BY, tags.OWNER]


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
            environment={**settings_environment, "TRAINCTL_ACCOUNT_ID": account},
            failures=failures,
            log_retention=log_retention,
            timeout=cdk.Duration.seconds(60),
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        self._rules(failures)
        for statement in age_guard_statements(regions=regions, account=account, scope_tag=scope_tag):
            self.function.add_to_role_policy(statement)
        for arn in _stamped(regions, account):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "Any new resource may need stamping; only the trainctl:created-at, created-by and owner keys "
                "may be written, and the scope tag only where none is set.",
            )

    def _rules(self, failures: sqs.IQueue) -> None:
        target = targets.LambdaFunction(
            self.function, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(2)
        )
        # Needs a CloudTrail trail with management events on: EventBridge only sees what the trail records.
        self.api_calls = events.Rule(
            self,
            "ApiCalls",
            description="trainctl age guard: EC2 resources created",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["AWS API Call via CloudTrail"],
                detail={"eventSource": ["ec2.amazonaws.com"], "eventName": list(STAMPED_EVENTS)},
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


def _stamped(regions: Sequence[str], account: str) -> list[str]:
    """Every kind of resource age guard may stamp, in every region."""
    return [
        *ec2_arns(regions, account, "instance", "volume", "snapshot", "spot-instances-request"),
        *[f"arn:aws:ec2:{region}::image/*" for region in regions],
    ]


def age_guard_statements(*, regions: Sequence[str], account: str, scope_tag: str) -> list[iam.PolicyStatement]:
    stamped = _stamped(regions, account)
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
