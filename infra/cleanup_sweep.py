"""The cleanup sweep capability: its function and its schedule. Grants live in the stack."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.function import TrainctlFunction, scheduled_invocation


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
        handler = TrainctlFunction(
            self,
            "Sweep",
            folder="cleanup_sweep",
            description="trainctl cleanup sweep: mark, then act on forgotten instances, volumes and snapshots",
            layer=layer,
            environment=environment,
            failures=failures,
            log_retention=log_retention,
            memory_size=1024,
            # A sweep of a large fleet needs minutes; it stops itself before this deadline and resumes next run.
            timeout=cdk.Duration.minutes(15),
            # Two sweeps at once could act on the same resource twice.
            reserved_concurrency=1,
            # A failed sweep goes to the failure queue once; the next scheduled sweep starts afresh.
            retry_attempts=0,
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        self.schedule = scheduled_invocation(
            self,
            self.function,
            description="trainctl cleanup sweep",
            expression=schedule_expression,
            task="cleanup_sweep",
            failures=failures,
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(1),
        )
