"""One trainctl Lambda function: its own log group and role, the layer, tracing, a failure queue, and the cdk-nag
acknowledgements every such function needs."""

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
from infra.permissions import acknowledge, logical_id
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
        self._acknowledge_basics()

    def _acknowledge_basics(self) -> None:
        acknowledge(
            self.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "EC2 Describe*, CloudWatch GetMetricData, SSM GetCommandInvocation and X-Ray PutTraceSegments "
            "support no resource-level permissions; all of them only read or trace.",
        )
        acknowledge(
            self.role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id(self.log_group)}.Arn>:log-stream:*]",
            "Log streams are created at run time inside the function's own log group.",
        )
        for kms_action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Action::{kms_action}]",
                "CDK's grant to send to the KMS-encrypted failure queue; limited to trainctl's own key.",
            )
        acknowledge(
            self.function,
            "Serverless::Serverless-LambdaDLQ",
            "Failures go to the on-failure destination, which carries the error; a DLQ as well would deliver "
            "each failure twice to the same queue.",
        )


def scheduled_invocation(
    scope: Construct,
    function: lambda_.Function,
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
    # CDK makes the scheduler's role in the stack, not in `scope`: the acknowledgement goes where the role is.
    acknowledge(
        cdk.Stack.of(scope),
        f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id(function)}.Arn>:*]",
        "The scheduler role CDK makes may invoke any version of this one function, nothing else.",
    )
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
