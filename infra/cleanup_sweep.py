"""The cleanup sweep capability: its function, its schedule and its log group. Grants live in the stack."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.layer import RUNTIME

FUNCTION_DIR = Path(__file__).resolve().parents[1] / "functions" / "cleanup_sweep"


class CleanupSweep(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        environment: dict[str, str],
        schedule_expression: str,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=cdk.RemovalPolicy.DESTROY)
        # An explicit role: the managed basic-execution policy would grant logs on every log group.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="trainctl cleanup sweep",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroupOnly",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn, f"{self.log_group.log_group_arn}:log-stream:*"],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description="trainctl cleanup sweep: mark, then act on forgotten instances, volumes and snapshots",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(FUNCTION_DIR), exclude=["__pycache__", "*.pyc"]),
            layers=[layer],
            role=self.role,
            memory_size=1024,
            # A sweep of a large fleet needs minutes; it stops itself before this deadline and resumes next run.
            timeout=cdk.Duration.minutes(15),
            # Two sweeps at once could act on the same resource twice.
            reserved_concurrent_executions=1,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": "trainctl",
                "POWERTOOLS_METRICS_NAMESPACE": "trainctl",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            # A failed sweep goes to the failure queue once; the next scheduled sweep starts afresh.
            retry_attempts=0,
            on_failure=destinations.SqsDestination(failures),
        )
        self.schedule = scheduler.Schedule(
            self,
            "Schedule",
            description="trainctl cleanup sweep",
            schedule=scheduler.ScheduleExpression.expression(schedule_expression),
            target=targets.LambdaInvoke(
                self.function,
                input=scheduler.ScheduleTargetInput.from_object({"task": "cleanup_sweep"}),
                dead_letter_queue=failures,
                retry_attempts=2,
                max_event_age=cdk.Duration.hours(1),
            ),
        )
