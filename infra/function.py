"""One trainctl Lambda function: its own encrypted log group and role, the layer, tracing, a failure queue, the
policy built from what its code declares, and the cdk-nag acknowledgements and checkov skips every such function
needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.declarations import declared_for
from infra.layer import RUNTIME
from infra.permissions import acknowledge, checkov_skip, logical_id, never_destroy_persistent
from infra.policy import ATTRIBUTE_READS, DeclaredPolicy, Route, platform_statement
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
        name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.folder = folder
        # What alarms and the dashboard call it: its folder, unless one folder is deployed as several functions.
        self.name = name or folder
        key = failures.encryption_master_key
        assert key is not None, "the failure queue is encrypted with trainctl's key"
        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, encryption_key=key, removal_policy=cdk.RemovalPolicy.DESTROY
        )
        # An explicit role: the managed basic-execution policy would grant logs on every log group.
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description
        )
        self._platform_statements(failures, key.key_arn)
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
            on_failure=FailureQueue(failures),
        )
        self._acknowledge_basics()
        self._skip_checkov_findings(reserved_concurrency)

    def grant_declared(self, routes: Iterable[Route], withheld: Mapping[str, str] | None = None) -> None:
        """The function's policy: exactly the actions its code declares, on the routes' resources and conditions.

        Synth fails on a declared action no route grants and on a routed action no code declares; `withheld`
        names declared actions this deployment does not grant, each with the reason.
        """
        declared = declared_for(self.folder).actions
        for statement in DeclaredPolicy(self.folder, declared, dict(withheld or {})).statements(routes):
            self.role.add_to_policy(statement)
            if statement.sid in ATTRIBUTE_READS:
                for resource in statement.resources:
                    acknowledge(
                        self.role,
                        f"AwsSolutions::AwsSolutions-IAM5[Resource::{resource}]",
                        "Reading an attribute (termination protection, sharing) of any instance or snapshot the "
                        "inventory holds is a read; every write stays conditioned on the scope tag.",
                    )

    def _platform_statements(self, failures: sqs.IQueue, key_arn: str) -> None:
        """What Lambda does with the role on the function's behalf (infra.policy.FUNCTION_PLATFORM says why)."""
        arn = self.log_group.log_group_arn
        self.role.add_to_policy(
            platform_statement(
                "OwnLogGroupOnly", ["logs:CreateLogStream", "logs:PutLogEvents"], [arn, f"{arn}:log-stream:*"]
            )
        )
        self.role.add_to_policy(platform_statement("DeliverFailures", ["sqs:SendMessage"], [failures.queue_arn]))
        self.role.add_to_policy(
            platform_statement("DeliverFailuresEncrypted", ["kms:Decrypt", "kms:GenerateDataKey"], [key_arn])
        )
        self.role.add_to_policy(never_destroy_persistent())

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
        acknowledge(
            self.function,
            "Serverless::Serverless-LambdaDLQ",
            "Failures go to the on-failure destination, which carries the error; a DLQ as well would deliver "
            "each failure twice to the same queue.",
        )

    def _skip_checkov_findings(self, reserved_concurrency: int | None) -> None:
        for check_id, comment in FUNCTION_CHECKOV_SKIPS.items():
            checkov_skip(self.function, check_id, comment)
        if reserved_concurrency is None:
            checkov_skip(
                self.function,
                "CKV_AWS_115",
                "Event-driven (spot warnings, CloudTrail calls, schedules): reserving concurrency would take it "
                "from the account's pool and throttle the two-minute spot window; only the sweep is single-flight.",
            )


FUNCTION_CHECKOV_SKIPS = {
    "CKV_AWS_116": "Failures go to the on-failure destination (an SQS queue), which carries the error as well; "
    "a DLQ too would deliver each failure twice.",
    "CKV_AWS_117": "The function calls only AWS APIs and reaches nothing inside a VPC; a VPC would add NAT or "
    "endpoints and cold-start time for no isolation gained.",
    "CKV_AWS_173": "The environment holds no secret, only resource names and settings, encrypted at rest with "
    "Lambda's own key; a customer key would add a KMS call to every cold start.",
}


@jsii.implements(lambda_.IDestination)
class FailureQueue:
    """The on-failure destination without CDK's grant, which would add sqs:GetQueueAttributes, GetQueueUrl and
    kms wildcards: TrainctlFunction grants exactly SendMessage and the key's two actions itself."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self._queue = queue

    def bind(
        self, _scope: Construct, _fn: lambda_.IFunction, *, type: lambda_.DestinationType
    ) -> lambda_.DestinationConfig:
        return lambda_.DestinationConfig(destination=self._queue.queue_arn)


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
    **details: str,
) -> scheduler.Schedule:
    """An EventBridge Scheduler schedule that invokes `function` with {"task": task, **details}; undeliverable
    runs go to the failure queue."""
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
            input=scheduler.ScheduleTargetInput.from_object({"task": task, **details}),
            dead_letter_queue=failures,
            retry_attempts=retry_attempts,
            max_event_age=max_event_age,
        ),
    )
