"""The spot capability: the handler, the EventBridge rules that feed it, its SSM document. Grants live in the stack."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.function import TrainctlFunction
from trainctl.aws import ssm_documents as documents
from trainctl.core import names

SPOT_DETAIL_TYPES = ["EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation"]
# The instance's last moments and its end: the handler keeps only spot instances (the event does not say).
STATE_CHANGES = ["stopping", "shutting-down", "terminated"]


class SpotInterruption(Construct):
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
        self.document = ssm.CfnDocument(
            self,
            "CheckpointDocument",
            name=names.SPOT_DOCUMENT,
            document_type="Command",
            document_format="JSON",
            content=documents.load(documents.SPOT_CHECKPOINT),
            update_method="NewVersion",
        )
        handler = TrainctlFunction(
            self,
            "Checkpoint",
            folder="spot_interruption",
            description="trainctl spot interruption: checkpoint, snapshot, keep persistent data, tell the owner",
            layer=layer,
            environment=environment,
            failures=failures,
            log_retention=log_retention,
            # More memory is more CPU: a faster cold start inside the two-minute window.
            memory_size=1024,
            # The warning comes two minutes ahead; work that has not finished by then is moot.
            timeout=cdk.Duration.seconds(110),
            retry_attempts=2,
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        target = targets.LambdaFunction(
            self.function, dead_letter_queue=failures, retry_attempts=2, max_event_age=cdk.Duration.minutes(2)
        )
        self.warnings = events.Rule(
            self,
            "Warnings",
            description="trainctl spot: interruption warnings and rebalance recommendations",
            event_pattern=events.EventPattern(source=["aws.ec2"], detail_type=SPOT_DETAIL_TYPES),
            targets=[target],
        )
        self.endings = events.Rule(
            self,
            "Endings",
            description="trainctl spot: instances stopping or terminated (recovery starts on termination)",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["EC2 Instance State-change Notification"],
                detail={"state": STATE_CHANGES},
            ),
            targets=[
                targets.LambdaFunction(
                    self.function, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(1)
                )
            ],
        )
