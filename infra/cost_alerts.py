"""The cost capability: its function, its schedule, the state-change rule, the burn-rate alarms, its grants and
read-only IAM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.function import TrainctlFunction, scheduled_invocation
from infra.policy import Route, read_routes, reads_on_any, service
from trainctl.aws.observability import BURN_RATE_METRIC, NAMESPACE, PROJECTION_METRIC, SERVICE

RECORDED_STATES = ["running", "stopping", "stopped", "shutting-down", "terminated"]


class CostAlerts(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        regions: Sequence[str],
        pricing_region: str,
        schedule_expression: str,
        hourly_threshold_usd: float,
        daily_threshold_usd: float,
        ledger: dynamodb.ITable,
        prices: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
        recorded_providers: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        # Each deployed provider's function records its burn in the ledger; this check adds it (and no provider's
        # code is loaded here when there is none).
        recorded = {"TRAINCTL_RECORDED_PROVIDERS": ",".join(recorded_providers)} if recorded_providers else {}
        handler = TrainctlFunction(
            self,
            "Estimate",
            folder="cost_alerts",
            description="trainctl cost alerts: the money burning now, from the live inventory",
            layer=layer,
            environment={
                **settings_environment,
                "TRAINCTL_LEDGER_TABLE": ledger.table_name,
                "TRAINCTL_TOPIC_ARN": topic.topic_arn,
                "TRAINCTL_PRICE_TABLE": prices.table_name,
                **recorded,
            },
            failures=failures,
            log_retention=log_retention,
            timeout=cdk.Duration.minutes(5),
            # Checks run every 15 minutes; a failed one is simply superseded by the next.
            retry_attempts=0,
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        self.schedule = scheduled_invocation(
            self,
            self.function,
            description="trainctl cost check",
            expression=schedule_expression,
            task="cost_alerts",
            failures=failures,
            retry_attempts=1,
            max_event_age=cdk.Duration.minutes(15),
        )
        self._state_changes(failures)
        self._alarms(topic, hourly_threshold_usd, daily_threshold_usd)
        # History and alert state live in the ledger; the price table is the chain's shared cache.
        handler.grant_declared(
            [
                Route(
                    "History", [ledger.table_arn], actions=["dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem"]
                ),
                Route("PriceCache", [prices.table_arn], actions=["dynamodb:BatchGetItem", "dynamodb:PutItem"]),
                Route("Notify", [topic.topic_arn], select=service("sns")),
                Route("EncryptedTopicAndTables", [key.key_arn], select=service("kms")),
                *cost_routes(regions=regions, account=cdk.Stack.of(self).account, pricing_region=pricing_region),
            ]
        )

    def _state_changes(self, failures: sqs.IQueue) -> None:
        # Running intervals give accumulated cost; without them it is a lower bound since the last start.
        self.state_changes = events.Rule(
            self,
            "StateChanges",
            description="trainctl cost: record instance running intervals",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["EC2 Instance State-change Notification"],
                detail={"state": RECORDED_STATES},
            ),
            targets=[
                events_targets.LambdaFunction(
                    self.function, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(6)
                )
            ],
        )

    def _alarms(self, topic: sns.ITopic, hourly_threshold_usd: float, daily_threshold_usd: float) -> None:
        # Alarms on the published estimate, so the standard alarm routes (SNS, chat, paging) work too.
        action = cloudwatch_actions.SnsAction(topic)
        self.alarms: list[cloudwatch.Alarm] = []
        for alarm_id, metric_name, threshold, what in (
            ("BurnRateAlarm", BURN_RATE_METRIC, hourly_threshold_usd, "burn rate in USD per hour"),
            ("ProjectionAlarm", PROJECTION_METRIC, daily_threshold_usd, "24-hour cost projection in USD"),
        ):
            alarm = cloudwatch.Alarm(
                self,
                alarm_id,
                alarm_description=f"trainctl: estimated {what} over {threshold:g}",
                metric=cloudwatch.Metric(
                    namespace=NAMESPACE,
                    metric_name=metric_name,
                    dimensions_map={"service": SERVICE},
                    statistic="Maximum",
                    period=cdk.Duration.minutes(15),
                ),
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                # No estimate is no evidence of spending: a silent function is caught by its failure queue.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms.append(alarm)


def cost_routes(*, regions: Sequence[str], account: str, pricing_region: str) -> list[Route]:
    """Read-only: the inventory and spot price history in the swept regions, the Price List API in its own."""
    in_regions = {"StringEquals": {"aws:RequestedRegion": list(regions)}}
    [reads, *attributes] = read_routes(regions, account, conditions=in_regions)
    return [
        Route(
            reads.sid,
            reads.resources,
            select=lambda a: a.startswith(("ec2:", "autoscaling:")) and reads_on_any(a),
            conditions=in_regions,
        ),
        *attributes,
        Route(
            "ReadListPrices",
            ["*"],
            actions=["pricing:GetProducts"],
            conditions={"StringEquals": {"aws:RequestedRegion": [pricing_region]}},
        ),
    ]
