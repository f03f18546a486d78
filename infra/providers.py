"""The providers' sweep (RunPod, Lyceum): per configured provider its function, schedule and grants; one alarm.

Each provider is its own function with its own timeout and its own schedule, at the sweep's cadence: a slow
provider API can stall neither the AWS sweep nor the other provider, and each role may read its own provider's
key and no other. The key stays in a Secrets Manager secret the user creates; the stack only names it.

A second schedule, at the cost check's cadence, has the same function price its provider and record that burn in
the ledger (trainctl.providers.burn): cost_alerts adds the record to its totals and never calls a provider.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.declarations import declared_for
from infra.function import TrainctlFunction, scheduled_invocation
from infra.metrics import emitted
from infra.policy import Route, service

FOLDER = "provider_sweep"
# The task the cost schedule sends: price the provider and record its burn for cost_alerts.
COST_TASK = "provider_cost"
TITLES = {"runpod": "RunPod", "lyceum": "Lyceum"}
# What a provider's sweep calls on AWS: the ledger (and its lease), the topic, the key both are encrypted with,
# and its own provider's secret.
CALLED_SERVICES = ("dynamodb", "sns", "kms", "secretsmanager")
# Emitted by functions/provider_sweep/handler.py: 1 for a run that could not read its key or its provider.
FAILED_RUNS_METRIC = "ProviderErrors"


@dataclass(frozen=True)
class DeployedProvider:
    """One configured provider: its name, its settings as variables, the secret that holds its key, its timeout."""

    name: str
    environment: Mapping[str, str]
    key_secret: str
    timeout: timedelta


def withheld_from_provider_sweeps() -> dict[str, str]:
    """Actions the provider sweep's modules declare through the AWS sweep's and cost check's code (their result,
    vouching and pricing types), which no provider sweep calls: not granted, each with the reason."""
    return {
        action: "declared by the AWS sweep's or cost check's modules the provider sweep imports for its types; it "
        "makes no such call"
        for action in declared_for(FOLDER).actions
        if action.split(":", 1)[0] not in CALLED_SERVICES
    }


class ProviderSweeps(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        providers: Sequence[DeployedProvider],
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        schedule_expression: str,
        cost_schedule_expression: str,
        ledger: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.sweeps = [
            ProviderSweep(
                self,
                TITLES[provider.name],
                provider=provider,
                layer=layer,
                settings_environment=settings_environment,
                schedule_expression=schedule_expression,
                cost_schedule_expression=cost_schedule_expression,
                ledger=ledger,
                topic=topic,
                key=key,
                failures=failures,
                log_retention=log_retention,
            )
            for provider in providers
        ]
        self.alarm = cloudwatch.Alarm(
            self,
            "Failed",
            alarm_description="trainctl: a RunPod or Lyceum sweep could not run (a refused key, an unreadable secret "
            "or an API that did not answer); the provider_sweep log groups say which and why",
            metric=emitted(FAILED_RUNS_METRIC, statistic="Maximum", period=cdk.Duration.minutes(5)),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))


class ProviderSweep(Construct):
    """One provider's sweep: one function, one schedule, exactly its grants."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        provider: DeployedProvider,
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        schedule_expression: str,
        cost_schedule_expression: str,
        ledger: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        title = TITLES[provider.name]
        handler = TrainctlFunction(
            self,
            "Sweep",
            folder=FOLDER,
            name=f"{provider.name}_sweep",
            description=f"trainctl {title} sweep: mark, then act on forgotten {title} resources",
            layer=layer,
            environment={
                **settings_environment,
                **provider.environment,
                "TRAINCTL_LEDGER_TABLE": ledger.table_name,
                "TRAINCTL_TOPIC_ARN": topic.topic_arn,
            },
            failures=failures,
            log_retention=log_retention,
            timeout=cdk.Duration.seconds(int(provider.timeout.total_seconds())),
            # Two runs of one provider at once could act on the same resource twice (its lease says so too).
            reserved_concurrency=1,
            # A failed run goes to the failure queue once; the next scheduled run starts afresh.
            retry_attempts=0,
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        self.schedule: scheduler.Schedule = scheduled_invocation(
            self,
            self.function,
            description=f"trainctl {title} sweep",
            expression=schedule_expression,
            task=FOLDER,
            failures=failures,
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(1),
            provider=provider.name,
        )
        # Its own scope: one schedule per construct id. A run late behind a sweep (one at a time) records late,
        # which cost_alerts names as unknown rather than counting as $0.
        self.cost_schedule: scheduler.Schedule = scheduled_invocation(
            Construct(self, "Cost"),
            self.function,
            description=f"trainctl {title} burn for the cost check",
            expression=cost_schedule_expression,
            task=COST_TASK,
            failures=failures,
            retry_attempts=1,
            max_event_age=cdk.Duration.minutes(15),
            provider=provider.name,
        )
        # A reference by name: the user creates the secret and puts the key in it; the template never holds it.
        self.secret = secretsmanager.Secret.from_secret_name_v2(self, "KeySecret", provider.key_secret)
        # Secrets Manager ends a secret's ARN with six random characters, which a name alone does not know.
        self.secret_arn = f"{self.secret.secret_arn}-??????"
        handler.grant_declared(
            [
                # The ledger also holds this provider's lease (conditional writes).
                Route("Ledger", [ledger.table_arn], select=service("dynamodb")),
                Route("Notify", [topic.topic_arn], select=service("sns")),
                Route("EncryptedTopicAndLedger", [key.key_arn], select=service("kms")),
                Route("OwnProviderKeyOnly", [self.secret_arn], select=service("secretsmanager")),
            ],
            withheld=withheld_from_provider_sweeps(),
        )
