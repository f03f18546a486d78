"""The cleanup sweep capability: its function, its schedule, its grants and IAM, its cdk-nag acknowledgements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.function import TrainctlFunction, scheduled_invocation
from infra.permissions import acknowledge, document_arns, ec2_arns, in_scope_condition, merged, tag_keys_only
from infra.policy import Route, read_routes, service
from trainctl.core import names, tags

DESTRUCTIVE_EC2_ACTIONS = ["ec2:TerminateInstances", "ec2:StopInstances", "ec2:DeleteVolume", "ec2:DeleteSnapshot"]


class CleanupSweep(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        regions: Sequence[str],
        scope_tag: str,
        schedule_expression: str,
        ledger: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
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
            environment={
                **settings_environment,
                "TRAINCTL_LEDGER_TABLE": ledger.table_name,
                "TRAINCTL_TOPIC_ARN": topic.topic_arn,
                "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
            },
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
        account = cdk.Stack.of(self).account
        handler.grant_declared(
            [
                # The ledger also holds the sweep's lease (conditional writes).
                Route("Ledger", [ledger.table_arn], select=service("dynamodb")),
                Route("Notify", [topic.topic_arn], select=service("sns")),
                Route("EncryptedTopicAndLedger", [key.key_arn], select=service("kms")),
                *sweep_routes(regions=regions, account=account, scope_tag=scope_tag),
            ]
        )
        self._acknowledge_findings(regions, account)

    def _acknowledge_findings(self, regions: Sequence[str], account: str) -> None:
        for region in regions:
            for kind, owner in (("instance", account), ("volume", account), ("snapshot", "")):
                acknowledge(
                    self.role,
                    f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:ec2:{region}:{owner}:{kind}/*]",
                    f"The sweep acts on any {kind} but only under the scope-tag condition, and a Deny "
                    "protects anything tagged trainctl:persistent.",
                )


def sweep_routes(*, regions: Sequence[str], account: str, scope_tag: str) -> list[Route]:
    """Reads where EC2 has no resource-level permissions; every write scoped by tag (persistent resources are
    denied to every trainctl role: infra.permissions.never_destroy_persistent)."""
    resources = ec2_arns(regions, account, "instance", "volume", "snapshot")
    in_scope = in_scope_condition(scope_tag)
    return [
        *read_routes(regions, account),
        Route(
            "MarkInScopeOnly",
            resources,
            actions=["ec2:CreateTags", "ec2:DeleteTags"],
            conditions=merged(in_scope, tag_keys_only([tags.CLEANUP_AFTER])),
        ),
        Route("ActOnInScopeOnly", resources, actions=DESTRUCTIVE_EC2_ACTIONS, conditions=in_scope),
        # Only to keep volumes that must outlive an instance (DeleteOnTermination=false); IAM has no key for
        # the attribute, so the code is what limits it to that.
        Route(
            "KeepVolumesOfInScopeInstances",
            ec2_arns(regions, account, "instance"),
            actions=["ec2:ModifyInstanceAttribute"],
            conditions=in_scope,
        ),
        Route("TrainingCheckDocument", document_arns(regions, account, names.TRAINING_DOCUMENT), ["ssm:SendCommand"]),
        Route(
            "TrainingCheckInScopeInstances",
            ec2_arns(regions, account, "instance"),
            ["ssm:SendCommand"],
            conditions=in_scope_condition(scope_tag, key_prefix="ssm:resourceTag"),
        ),
    ]
