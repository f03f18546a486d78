"""The trainctl stack: shared stateful resources, one construct per capability, outputs, cdk-nag.

It only composes: each capability's construct owns its functions, roles, grants and acknowledgements, and is
given the shared resources it uses, by name.
"""

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
from infra.alarms import Alarms
from infra.chat import ChatChannels
from infra.cleanup_sweep import CleanupSweep
from infra.config import DeployConfig, key_secret_of
from infra.cost_alerts import CostAlerts
from infra.dashboard import DASHBOARD_NAME, Dashboard
from infra.function import TrainctlFunction
from infra.layer import DomainLayer
from infra.organization import Organization, OrganizationCostProps
from infra.permissions import acknowledge
from infra.prewarm import Prewarm
from infra.providers import DeployedProvider, ProviderSweeps
from infra.spot_interruption import SpotInterruption
from infra.spot_recovery import SpotRecovery
from trainctl.aws import ssm_documents as documents
from trainctl.aws.observability import TRACE_AWS_CALLS
from trainctl.core import names


def trace_aws_calls(scope: Construct) -> None:
    """Every function in scope builds Powertools' Tracer (and imports the X-Ray SDK): see trainctl.aws.observability."""
    for construct in scope.node.find_all():
        if isinstance(construct, lambda_.Function):
            construct.add_environment(TRACE_AWS_CALLS, "true")


class TrainctlStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self._stateful_resources(config)
        layer = DomainLayer(self, "Domain").layer
        retention = _retention(config.options.log_retention_days)
        self._sweep_and_age_guard(config, layer, retention)
        self._provider_sweeps(config, layer, retention)
        self.organization = self._organization(config, layer, retention)
        self._cost_and_spot(config, layer, retention)
        if self.organization is not None:
            # What spokes forward is handled by the hub's own spot and age_guard functions, through the spoke role.
            self.organization.handle_forwarded(
                spot=self.spot.function,
                spot_role=self.spot.role,
                age_guard=self.age_guard.function,
                age_guard_role=self.age_guard.role,
                organization_environment=config.organization_environment(),
                failures=self.failures,
            )
        sweep_settings = config.sweep
        self.prewarm = Prewarm(
            self,
            "Prewarm",
            layer=layer,
            buckets=config.options.prewarm_buckets,
            bucket_keys=config.options.prewarm_bucket_keys,
            regions=sweep_settings.regions,
            scope_tag=sweep_settings.scope_tag,
            key=self.key,
            failures=self.failures,
            log_retention=retention,
        )
        self._observability(config)
        self._let_services_deliver_failures()
        self._let_logs_encrypt()
        self._outputs(dry_run=sweep_settings.dry_run)
        if config.options.trace_aws_calls:
            trace_aws_calls(self)

    def _stateful_resources(self, config: DeployConfig) -> None:
        """What outlives a deploy and every capability shares: key, tables, topic, failure queue, documents."""
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
        self._acknowledge_failure_queue()
        if config.options.notification_email:
            # Undeliverable notices land in the failure queue rather than vanishing.
            self.topic.add_subscription(
                subscriptions.EmailSubscription(config.options.notification_email, dead_letter_queue=self.failures)
            )
        if config.options.slack_channel_id or config.options.teams_channel_id:
            ChatChannels(self, "Chat", options=config.options, topic=self.topic)
        self.training_document = self._document(
            "TrainingCheckDocument", names.TRAINING_DOCUMENT, documents.TRAINING_CHECK
        )
        # Run by `trainctl transfer` against instances; deployed so that people need no document of their own.
        self.transfer_document = self._document("TransferDocument", names.TRANSFER_DOCUMENT, documents.TRANSFER)
        # Run by `trainctl transfer --to-cache`: fills a folder on an instance's instance store from S3.
        self.local_cache_document = self._document(
            "LocalCacheDocument", names.LOCAL_CACHE_DOCUMENT, documents.LOCAL_CACHE
        )

    def _sweep_and_age_guard(
        self, config: DeployConfig, layer: lambda_.ILayerVersion, retention: logs.RetentionDays
    ) -> None:
        self.cleanup = CleanupSweep(
            self,
            "CleanupSweep",
            layer=layer,
            settings_environment=config.function_environment(),
            regions=config.sweep.regions,
            scope_tag=config.sweep.scope_tag,
            schedule_expression=config.options.sweep_schedule,
            ledger=self.ledger,
            topic=self.topic,
            key=self.key,
            failures=self.failures,
            log_retention=retention,
        )
        self.age_guard = AgeGuard(
            self,
            "AgeGuard",
            layer=layer,
            settings_environment=config.age_guard_environment(),
            regions=config.age_guard.regions,
            scope_tag=config.age_guard.scope_tag,
            ledger=self.ledger,
            failures=self.failures,
            log_retention=retention,
        )

    def _provider_sweeps(
        self, config: DeployConfig, layer: lambda_.ILayerVersion, retention: logs.RetentionDays
    ) -> None:
        """A function and schedule per configured provider; nothing at all when none is configured."""
        deployed = [
            DeployedProvider(
                name=provider,
                environment=config.provider_environment(provider),
                key_secret=secret,
                timeout=getattr(config.options, f"{provider}_sweep_timeout"),
            )
            for provider in config.providers
            if (secret := key_secret_of(config, provider)) is not None
        ]
        if deployed:
            self.provider_sweeps = ProviderSweeps(
                self,
                "ProviderSweeps",
                providers=deployed,
                layer=layer,
                settings_environment=config.function_environment(),
                schedule_expression=config.options.sweep_schedule,
                cost_schedule_expression=config.options.cost_schedule,
                ledger=self.ledger,
                topic=self.topic,
                key=self.key,
                failures=self.failures,
                log_retention=retention,
            )

    def _organization(
        self, config: DeployConfig, layer: lambda_.ILayerVersion, retention: logs.RetentionDays
    ) -> Organization | None:
        """The spoke StackSet, the organization bus and the organization run; nothing at all for one account."""
        if not config.covers_organization or config.options.org_id is None:
            return None
        return Organization(
            self,
            "Organization",
            organization=config.organization,
            organization_id=config.options.org_id,
            tolerated_failure_percentage=config.options.org_tolerated_failure_percentage,
            regions=config.organization.regions_or(config.sweep.regions),
            scope_tag=config.sweep.scope_tag,
            settings_environment={**config.function_environment(), **config.organization_environment()},
            schedule_expression=config.options.sweep_schedule,
            layer=layer,
            ledger=self.ledger,
            topic=self.topic,
            key=self.key,
            failures=self.failures,
            log_retention=retention,
            cost=OrganizationCostProps(
                settings_environment=config.cost_environment(),
                schedule_expression=config.options.cost_schedule,
                prices=self.prices,
                pricing_region=config.cost.pricing_region,
            ),
        )

    def _cost_and_spot(self, config: DeployConfig, layer: lambda_.ILayerVersion, retention: logs.RetentionDays) -> None:
        cost = config.cost
        self.cost = CostAlerts(
            self,
            "CostAlerts",
            layer=layer,
            settings_environment=config.cost_environment(),
            regions=cost.regions,
            pricing_region=cost.pricing_region,
            schedule_expression=config.options.cost_schedule,
            hourly_threshold_usd=cost.hourly_threshold_usd,
            daily_threshold_usd=cost.daily_threshold_usd,
            ledger=self.ledger,
            prices=self.prices,
            topic=self.topic,
            key=self.key,
            failures=self.failures,
            log_retention=retention,
            recorded_providers=config.providers,
        )
        self.recovery = SpotRecovery(
            self,
            "SpotRecovery",
            layer=layer,
            settings_environment=config.spot_environment(),
            regions=config.spot.regions,
            scope_tag=config.spot.scope_tag,
            instance_roles=config.options.recovery_instance_roles,
            ledger=self.ledger,
            topic=self.topic,
            key=self.key,
            failures=self.failures,
            log_retention=retention,
        )
        self.spot = SpotInterruption(
            self,
            "SpotInterruption",
            layer=layer,
            settings_environment=config.spot_environment(),
            regions=config.spot.regions,
            scope_tag=config.spot.scope_tag,
            recovery=self.recovery.state_machine,
            ledger=self.ledger,
            topic=self.topic,
            key=self.key,
            failures=self.failures,
            log_retention=retention,
        )

    def _observability(self, config: DeployConfig) -> None:
        """Alarms to the topic and the dashboard, over every function and workflow the stack holds."""
        functions = [c for c in self.node.find_all() if isinstance(c, TrainctlFunction)]
        workflows = {"recovery": self.recovery.state_machine, "prewarm": self.prewarm.state_machine}
        if self.organization is not None:
            workflows["organization"] = self.organization.state_machine
            workflows["organization_cost"] = self.organization.cost_state_machine
        schedules = {"sweep_schedule": config.options.sweep_schedule, "cost_schedule": config.options.cost_schedule}
        self.alarms = Alarms(
            self,
            "Alarms",
            functions=functions,
            state_machines=workflows,
            failures=self.failures,
            topic=self.topic,
            **schedules,
        )
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            functions=functions,
            state_machines=workflows,
            failures=self.failures,
            alarms=[*self.alarms.alarms, *self.cost.alarms],
            hourly_threshold_usd=config.cost.hourly_threshold_usd,
            **schedules,
        )

    def _let_services_deliver_failures(self) -> None:
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

    def _let_logs_encrypt(self) -> None:
        """Every trainctl log group is encrypted with trainctl's key: CloudWatch Logs may use it for them only."""
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="LogsEncryptTrainctlLogGroups",
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:GenerateDataKeyWithoutPlaintext",
                    "kms:DescribeKey",
                ],
                principals=[iam.ServicePrincipal(f"logs.{self.region}.amazonaws.com")],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{self.region}:{self.account}:log-group:*"
                    }
                },
            )
        )

    def _outputs(self, *, dry_run: bool) -> None:
        """What the command line finds the deployed stack by."""
        cdk.CfnOutput(self, names.OUTPUT_LEDGER_TABLE, value=self.ledger.table_name)
        cdk.CfnOutput(self, names.OUTPUT_TOPIC_ARN, value=self.topic.topic_arn)
        cdk.CfnOutput(self, names.OUTPUT_TRAINING_DOCUMENT, value=names.TRAINING_DOCUMENT)
        cdk.CfnOutput(self, names.OUTPUT_PRICE_TABLE, value=self.prices.table_name)
        cdk.CfnOutput(self, names.OUTPUT_RECOVERY_STATE_MACHINE, value=self.recovery.state_machine.state_machine_arn)
        cdk.CfnOutput(self, names.OUTPUT_PREWARM_STATE_MACHINE, value=self.prewarm.state_machine.state_machine_arn)
        cdk.CfnOutput(self, "DryRun", value=json.dumps(dry_run))
        cdk.CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://console.aws.amazon.com/cloudwatch/home?region={self.region}#dashboards/dashboard/"
            + DASHBOARD_NAME,
        )

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

    def _document(self, construct_id: str, name: str, source: str) -> ssm.CfnDocument:
        """A trainctl SSM Command document from its shipped JSON (trainctl.aws.documents), versioned in place."""
        return ssm.CfnDocument(
            self,
            construct_id,
            name=name,
            document_type="Command",
            document_format="JSON",
            content=documents.load(source),
            update_method="NewVersion",
        )

    def _acknowledge_failure_queue(self) -> None:
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
