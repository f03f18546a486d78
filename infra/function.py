"""One trainctl Lambda function: its own log group and role, the layer, tracing, and a failure queue."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.layer import RUNTIME
from trainctl.core import names

FUNCTIONS = Path(__file__).resolve().parents[1] / "functions"


class TrainctlFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        folder: str,
        description: str,
        layer: lambda_.ILayerVersion,
        environment: dict[str, str],
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
        timeout: cdk.Duration,
        memory_size: int = 512,
        reserved_concurrency: int | None = None,
        retry_attempts: int = 2,
        function_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=cdk.RemovalPolicy.DESTROY)
        # An explicit role: the managed basic-execution policy would grant logs on every log group.
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description
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
            description=description,
            function_name=function_name,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS / folder), exclude=["__pycache__", "*.pyc"]),
            layers=[layer],
            role=self.role,
            memory_size=memory_size,
            timeout=timeout,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            environment={**environment, **names.FUNCTION_ENVIRONMENT},
            retry_attempts=retry_attempts,
            on_failure=destinations.SqsDestination(failures),
        )


def scheduled_invocation(
    scope: Construct,
    function: lambda_.IFunction,
    *,
    description: str,
    expression: str,
    task: str,
    failures: sqs.IQueue,
    retry_attempts: int,
    max_event_age: cdk.Duration,
) -> scheduler.Schedule:
    """An EventBridge Scheduler schedule that invokes `function` with {"task": task}; undeliverable runs go to
    the failure queue."""
    return scheduler.Schedule(
        scope,
        "Schedule",
        description=description,
        schedule=scheduler.ScheduleExpression.expression(expression),
        target=scheduler_targets.LambdaInvoke(
            function,
            input=scheduler.ScheduleTargetInput.from_object({"task": task}),
            dead_letter_queue=failures,
            retry_attempts=retry_attempts,
            max_event_age=max_event_age,
        ),
    )
