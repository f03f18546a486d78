"""The age guard capability: its function and the EventBridge rules that feed it. Grants live in the stack."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.function import TrainctlFunction
from trainctl.age_guard.rules import STAMPED_EVENTS


class AgeGuard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        environment: dict[str, str],
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        handler = TrainctlFunction(
            self,
            "Stamp",
            folder="age_guard",
            description="trainctl age guard: stamp who made each resource and when",
            layer=layer,
            environment=environment,
            failures=failures,
            log_retention=log_retention,
            timeout=cdk.Duration.seconds(60),
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
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
