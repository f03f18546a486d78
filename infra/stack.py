"""The trainctl stack: shared stateful resources, one construct per capability, grants, outputs, cdk-nag."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.age_guard import AgeGuard
from infra.cleanup_sweep import CleanupSweep
from infra.config import DeployConfig
from infra.cost_alerts import CostAlerts
from infra.layer import DomainLayer
from infra.permissions import age_guard_statements, cost_statements, spot_statements, sweep_statements
from infra.prewarm import Prewarm
from infra.spot_interruption import SpotInterruption
from infra.spot_recovery import SpotRecovery
from trainctl.aws import ssm_documents as documents
from trainctl.aws.observability import TRACE_AWS_CALLS
from trainctl.core import names


def acknowledge(scope: Construct, rule: str, reason: str) -> None:
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def trace_aws_calls(scope: Construct) -> None:
    """Every function in scope builds Powertools' Tracer (and imports the X-Ray SDK): see trainctl.aws.observability."""
    for construct in scope.node.find_all():
        if isinstance(construct, lambda_.Function):
            construct.add_environment(TRACE_AWS_CALLS, "true")


class TrainctlStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        sweep_settings = config.sweep

        self.key = kms.Key(self, "Key", enable_key_rotation=True, description="trainctl topic and queue encryption")
        self.ledger = self._table("Ledger", names.LEDGER_TABLE, sort_key="sk", keep=True)
        # Prices from the Price List API, shared by every run; a cache that refills itself, so not retained.
        self.prices = self._table("Prices", names.PRICE_TABLE, sort_key=None, keep=False)
        self.topic = sns.Topic(
            self,
            "SweepTopic",
            topic_name=names.SWEEP_TOPIC,
            display_name="trainctl sweep",
            master_key=self.key,
            enforce_ssl=True,
        )
        self.failures = sqs.Queue(
            self,
            "Failures",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.key,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        if config.options.notification_email:
            # Undeliverable notices land in the failure queue rather than vanishing.
            self.topic.add_subscription(
                subscriptions.EmailSubscription(config.options.notification_email, dead_letter_queue=self.failures)
            )
        self.training_document = ssm.CfnDocument(
            self,
            "TrainingCheckDocument",
            name=names.TRAINING_DOCUMENT,
            document_type="Command",
            document_format="JSON",
            content=documents.load(documents.TRAINING_CHECK),
            update_method="NewVersion",
        )
        # Run by `trainctl transfer` against instances; deployed so that people need no document of their own.
        self.transfer_document = ssm.CfnDocument(
            self,
            "TransferDocument",
            name=names.TRANSFER_DOCUMENT,
            document_type="Command",
            document_format="JSON",
            content=documents.load(documents.TRANSFER),
            update_method="NewVersion",
        )
        layer = DomainLayer(self, "Domain").layer

        environment = {
            **config.function_environment(),
            "TRAINCTL_LEDGER_TABLE": self.ledger.table_name,
            "TRAINCTL_TOPIC_ARN": self.topic.topic_arn,
            "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
        }
        self.cleanup = CleanupSweep(
            self,
            "CleanupSweep",
            layer=layer,
            environment=environment,
            schedule_expression=config.options.sweep_schedule,
            failures=self.failures,
            log_retention=_retention(config.options.log_retention_days),
        )

        self.age_guard = AgeGuard(
            self,
            "AgeGuard",
            layer=layer,
            environment={**config.age_guard_environment(), "TRAINCTL_ACCOUNT_ID": self.account},
            failures=self.failures,
            log_retention=_retention(config.options.log_retention_days),
        )
        for statement in age_guard_statements(
            regions=config.age_guard.regions, account=self.account, scope_tag=config.age_guard.scope_tag
        ):
            self.age_guard.function.add_to_role_policy(statement)

        cost_settings = config.cost
        self.cost = CostAlerts(
            self,
            "CostAlerts",
            layer=layer,
            environment={
                **config.cost_environment(),
                "TRAINCTL_LEDGER_TABLE": self.ledger.table_name,
                "TRAINCTL_TOPIC_ARN": self.topic.topic_arn,
                "TRAINCTL_PRICE_TABLE": self.prices.table_name,
            },
            schedule_expression=config.options.cost_schedule,
            failures=self.failures,
            log_retention=_retention(config.options.log_retention_days),
            topic=self.topic,
            hourly_threshold_usd=cost_settings.hourly_threshold_usd,
            daily_threshold_usd=cost_settings.daily_threshold_usd,
        )
        cost_function = self.cost.function
        # History and alert state live in the ledger; the price table is the chain's shared cache.
        self.ledger.grant(cost_function, "dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem")
        self.prices.grant(cost_function, "dynamodb:BatchGetItem", "dynamodb:PutItem")
        self.key.grant(cost_function, "kms:Decrypt", "kms:GenerateDataKey")
        self.topic.grant_publish(cost_function)
        for statement in cost_statements(regions=cost_settings.regions, pricing_region=cost_settings.pricing_region):
            cost_function.add_to_role_policy(statement)

        spot_settings = config.spot
        spot_documents = [
            f"arn:aws:ssm:{region}:{self.account}:document/{names.SPOT_DOCUMENT}" for region in spot_settings.regions
        ]
        self.recovery = SpotRecovery(
            self,
            "SpotRecovery",
            topic=self.topic,
            log_retention=_retention(config.options.log_retention_days),
            document_arns=spot_documents,
            regions=spot_settings.regions,
            account=self.account,
        )
        self.spot = SpotInterruption(
            self,
            "SpotInterruption",
            layer=layer,
            environment={
                **config.spot_environment(),
                "TRAINCTL_LEDGER_TABLE": self.ledger.table_name,
                "TRAINCTL_TOPIC_ARN": self.topic.topic_arn,
                "TRAINCTL_SPOT_DOCUMENT": names.SPOT_DOCUMENT,
                "TRAINCTL_RECOVERY_STATE_MACHINE_ARN": self.recovery.state_machine.state_machine_arn,
            },
            failures=self.failures,
            log_retention=_retention(config.options.log_retention_days),
        )
        spot_function = self.spot.function
        # The idempotency records (Powertools) and the interruption records share the ledger.
        self.ledger.grant(
            spot_function,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
        )
        self.key.grant(spot_function, "kms:Decrypt", "kms:GenerateDataKey")
        self.topic.grant_publish(spot_function)
        self.topic.grant_publish(self.recovery.state_machine)
        self.key.grant(self.recovery.state_machine, "kms:Decrypt", "kms:GenerateDataKey")
        for statement in spot_statements(
            regions=spot_settings.regions,
            account=self.account,
            scope_tag=spot_settings.scope_tag,
            document_arns=spot_documents,
            state_machine_arn=self.recovery.state_machine.state_machine_arn,
        ):
            spot_function.add_to_role_policy(statement)

        self.prewarm = Prewarm(
            self,
            "Prewarm",
            layer=layer,
            failures=self.failures,
            log_retention=_retention(config.options.log_retention_days),
            buckets=config.options.prewarm_buckets,
            account=self.account,
            regions=sweep_settings.regions,
            scope_tag=sweep_settings.scope_tag,
        )
        planner = self.prewarm.functions[0].function
        planner.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadWhatThePlanChecks",
                actions=[
                    "ec2:DescribeVolumes",
                    "ec2:DescribeInstances",
                    "ec2:DescribeSnapshots",
                    "ec2:DescribeAvailabilityZones",
                ],
                resources=["*"],
            )
        )
        if config.options.prewarm_buckets:
            planner.add_to_role_policy(
                iam.PolicyStatement(
                    sid="SizeTheData",
                    actions=["s3:ListBucket"],
                    resources=[f"arn:aws:s3:::{b}" for b in config.options.prewarm_buckets],
                )
            )

        # Grants: the ledger and topic are written only here, EC2 only under the scope tag.
        function = self.cleanup.function
        # PutItem and DeleteItem also take and free the sweep's lease (conditional writes).
        self.ledger.grant(function, "dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
        self.key.grant(function, "kms:Decrypt", "kms:GenerateDataKey")
        self.topic.grant_publish(function)
        document_arns = [
            f"arn:aws:ssm:{region}:{self.account}:document/{names.TRAINING_DOCUMENT}"
            for region in sweep_settings.regions
        ]
        for statement in sweep_statements(
            regions=sweep_settings.regions,
            account=self.account,
            scope_tag=sweep_settings.scope_tag,
            training_document_arns=document_arns,
        ):
            function.add_to_role_policy(statement)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ServicesDeliverFailures",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                principals=[
                    iam.ServicePrincipal("scheduler.amazonaws.com"),
                    iam.ServicePrincipal("lambda.amazonaws.com"),
                    iam.ServicePrincipal("sns.amazonaws.com"),
                    # Alarm actions publish to the encrypted topic.
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                ],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )

        cdk.CfnOutput(self, names.OUTPUT_LEDGER_TABLE, value=self.ledger.table_name)
        cdk.CfnOutput(self, names.OUTPUT_TOPIC_ARN, value=self.topic.topic_arn)
        cdk.CfnOutput(self, names.OUTPUT_TRAINING_DOCUMENT, value=names.TRAINING_DOCUMENT)
        cdk.CfnOutput(self, names.OUTPUT_PRICE_TABLE, value=self.prices.table_name)
        cdk.CfnOutput(self, names.OUTPUT_RECOVERY_STATE_MACHINE, value=self.recovery.state_machine.state_machine_arn)
        cdk.CfnOutput(self, names.OUTPUT_PREWARM_STATE_MACHINE, value=self.prewarm.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "DryRun", value=json.dumps(sweep_settings.dry_run))

        if config.options.trace_aws_calls:
            trace_aws_calls(self)
        self._acknowledge_findings(sweep_settings.regions)

    def _table(self, construct_id: str, name: str, *, sort_key: str | None, keep: bool) -> dynamodb.Table:
        """A trainctl table: on demand, trainctl's KMS key, point-in-time recovery, TTL on expires_at."""
        return dynamodb.Table(
            self,
            construct_id,
            table_name=name,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING) if sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute="expires_at",
            removal_policy=cdk.RemovalPolicy.RETAIN if keep else cdk.RemovalPolicy.DESTROY,
        )

    def _acknowledge_findings(self, regions: tuple[str, ...]) -> None:
        """Every cdk-nag finding left standing, each with the reason it is acceptable."""
        for capability in (self.cleanup, self.age_guard, self.cost, self.spot):
            self._acknowledge_function_basics(capability.function, capability.role, capability.log_group)
        for region in regions:
            for kind, owner in (("instance", self.account), ("volume", self.account), ("snapshot", "")):
                acknowledge(
                    self.cleanup.role,
                    f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:ec2:{region}:{owner}:{kind}/*]",
                    f"The sweep acts on any {kind} but only under the scope-tag condition, and a Deny "
                    "protects anything tagged trainctl:persistent.",
                )
            for arn in (
                *(
                    f"arn:aws:ec2:{region}:{self.account}:{kind}/*"
                    for kind in ("instance", "volume", "spot-instances-request")
                ),
                f"arn:aws:ec2:{region}::snapshot/*",
                f"arn:aws:ec2:{region}::image/*",
            ):
                acknowledge(
                    self.age_guard.role,
                    f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                    "Any new resource may need stamping; only the trainctl:created-at, created-by and owner keys "
                    "may be written, and the scope tag only where none is set.",
                )
        for region in regions:
            for arn in (
                f"arn:aws:ec2:{region}:{self.account}:instance/*",
                f"arn:aws:ec2:{region}:{self.account}:volume/*",
                f"arn:aws:ec2:{region}::snapshot/*",
            ):
                acknowledge(
                    self.spot.role,
                    f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                    "A spot warning may come for any instance: SendCommand, CreateSnapshots and "
                    "ModifyInstanceAttribute are conditioned on the instance's scope tag; volumes and new snapshots "
                    "are reached only through CreateSnapshots of such an instance, and tags only on creation.",
                )
            acknowledge(
                self.recovery.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:ec2:{region}:{self.account}:instance/*]",
                "The resume command goes to the instance the workflow just launched, through trainctl's document.",
            )
        recovery_role = self.recovery.role
        acknowledge(
            recovery_role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "RunInstances and DescribeInstances take no instance ARN before it exists; TerminateInstances and "
            "ModifyInstanceAttribute are denied on anything not tagged trainctl:recovered-from by this workflow.",
        )
        acknowledge(
            recovery_role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:iam::{self.account}:role/*]",
            "The launch template names the instance profile; PassRole is limited to EC2 as the receiving service.",
        )
        acknowledge(
            recovery_role,
            "AwsSolutions::AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "CDK's grant to publish to the KMS-encrypted topic; limited to trainctl's own key.",
        )
        for handler in self.prewarm.functions:
            self._acknowledge_function_basics(handler.function, handler.role, handler.log_group)
            function_id = self.resolve(self.get_logical_id(_cfn(handler.function)))
            acknowledge(
                self.prewarm.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
                "CDK's grant for the workflow to invoke any version of its own two task functions.",
            )
        acknowledge(
            self.prewarm.worker_role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "The SSM agent's channel and message actions take no resource ARNs; the worker reads S3 only from "
            "the configured buckets.",
        )
        acknowledge(
            self.prewarm.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "Launch, attach, detach and describe act on a worker and a volume that do not exist at deploy time; "
            "TerminateInstances is denied on anything not tagged trainctl:role=prewarm-worker.",
        )
        for region in regions:
            acknowledge(
                self.prewarm.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:ec2:{region}:{self.account}:instance/*]",
                "The pre-warm document runs on the worker the workflow launched or the instance the caller named.",
            )
        for scheduled in (self.cleanup.function, self.cost.function):
            function_id = self.resolve(self.get_logical_id(_cfn(scheduled)))
            acknowledge(
                self,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
                "The scheduler role CDK makes may invoke any version of this one function, nothing else.",
            )
        acknowledge(
            self.failures,
            "Serverless::Serverless-SQSRedrivePolicy",
            "This queue is itself the dead-letter queue of the schedule and the function; it has no consumer "
            "that could fail.",
        )
        acknowledge(
            self.failures,
            "AwsSolutions::AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the schedule and the function.",
        )

    def _acknowledge_function_basics(self, function: Construct, role: Construct, log_group: Construct) -> None:
        log_group_id = self.resolve(self.get_logical_id(_cfn(log_group)))
        acknowledge(
            role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "EC2 Describe*, CloudWatch GetMetricData, SSM GetCommandInvocation and X-Ray PutTraceSegments "
            "support no resource-level permissions; all of them only read or trace.",
        )
        acknowledge(
            role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{log_group_id}.Arn>:log-stream:*]",
            "Log streams are created at run time inside the function's own log group.",
        )
        for kms_action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(
                role,
                f"AwsSolutions::AwsSolutions-IAM5[Action::{kms_action}]",
                "CDK's grant to send to the KMS-encrypted failure queue; limited to trainctl's own key.",
            )
        acknowledge(
            function,
            "Serverless::Serverless-LambdaDLQ",
            "Failures go to the on-failure destination, which carries the error; a DLQ as well would deliver "
            "each failure twice to the same queue.",
        )


def _cfn(construct: Construct) -> cdk.CfnElement:
    resource = construct.node.default_child
    assert isinstance(resource, cdk.CfnElement)
    return resource


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
}


def _retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch retention that keeps logs at least `days` days."""
    for limit in sorted(_RETENTION):
        if limit >= days:
            return _RETENTION[limit]
    return _RETENTION[731]
