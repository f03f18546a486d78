"""The spot capability: the handler, the EventBridge rules that feed it, its SSM document, its grants and IAM,
its cdk-nag acknowledgements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.function import TrainctlFunction
from infra.permissions import (
    acknowledge,
    created_by,
    document_arns,
    ec2_arns,
    in_scope_condition,
    merged,
    tag_keys_only,
    tag_present,
)
from infra.policy import Route, read_routes, service
from infra.spoke_access import SPOKE_ACCESS_WITHHELD
from trainctl.aws import ssm_documents as documents
from trainctl.core import names, tags

SPOT_DETAIL_TYPES = ["EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation"]
# The instance's last moments and its end: the handler keeps only spot instances (the event does not say).
STATE_CHANGES = ["stopping", "shutting-down", "terminated"]


class SpotInterruption(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        regions: Sequence[str],
        scope_tag: str,
        recovery: sfn.IStateMachine,
        ledger: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.document = ssm.CfnDocument(
            self,
            "CheckpointDocument",
            name=names.SPOT_DOCUMENT,
            document_type="Command",
            document_format="JSON",
            content=documents.load(documents.SPOT_CHECKPOINT),
            update_method="NewVersion",
        )
        handler = TrainctlFunction(
            self,
            "Checkpoint",
            folder="spot_interruption",
            description="trainctl spot interruption: checkpoint, snapshot, keep persistent data, tell the owner",
            layer=layer,
            environment={
                **settings_environment,
                "TRAINCTL_LEDGER_TABLE": ledger.table_name,
                "TRAINCTL_TOPIC_ARN": topic.topic_arn,
                "TRAINCTL_SPOT_DOCUMENT": names.SPOT_DOCUMENT,
                "TRAINCTL_RECOVERY_STATE_MACHINE_ARN": recovery.state_machine_arn,
            },
            failures=failures,
            log_retention=log_retention,
            # More memory is more CPU: a faster cold start inside the two-minute window.
            memory_size=1024,
            # The warning comes two minutes ahead; work that has not finished by then is moot.
            timeout=cdk.Duration.seconds(110),
            retry_attempts=2,
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        self._rules(failures)
        account = cdk.Stack.of(self).account
        handler.grant_declared(
            [
                # The idempotency records (Powertools) and the interruption records share the ledger.
                Route("Ledger", [ledger.table_arn], select=service("dynamodb")),
                Route("Notify", [topic.topic_arn], select=service("sns")),
                Route("EncryptedTopicAndLedger", [key.key_arn], select=service("kms")),
                Route("StartRecovery", [recovery.state_machine_arn], select=service("states")),
                *spot_routes(regions=regions, account=account, scope_tag=scope_tag),
            ],
            withheld=SPOKE_ACCESS_WITHHELD,
        )
        self._acknowledge_findings(regions, account)

    def _rules(self, failures: sqs.IQueue) -> None:
        target = targets.LambdaFunction(
            self.function, dead_letter_queue=failures, retry_attempts=2, max_event_age=cdk.Duration.minutes(2)
        )
        self.warnings = events.Rule(
            self,
            "Warnings",
            description="trainctl spot: interruption warnings and rebalance recommendations",
            event_pattern=events.EventPattern(source=["aws.ec2"], detail_type=SPOT_DETAIL_TYPES),
            targets=[target],
        )
        self.endings = events.Rule(
            self,
            "Endings",
            description="trainctl spot: instances stopping or terminated (recovery starts on termination)",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["EC2 Instance State-change Notification"],
                detail={"state": STATE_CHANGES},
            ),
            targets=[
                targets.LambdaFunction(
                    self.function, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(1)
                )
            ],
        )

    def _acknowledge_findings(self, regions: Sequence[str], account: str) -> None:
        for arn in ec2_arns(regions, account, "instance", "volume", "snapshot"):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "A spot warning may come for any instance: SendCommand, CreateSnapshots and "
                "ModifyInstanceAttribute are conditioned on the instance's scope tag; volumes and new snapshots "
                "are reached only through CreateSnapshots of such an instance, and tags only on creation.",
            )


# What the spot handler tags the snapshots it takes with (trainctl.spot.rules.snapshot_tags), at creation only.
SNAPSHOT_TAG_KEYS = ["Name", tags.SPOT_INSTANCE, tags.INTERRUPTION, tags.OWNER]


def spot_routes(*, regions: Sequence[str], account: str, scope_tag: str) -> list[Route]:
    """Checkpoint, snapshot and keep, only for in-scope instances; tag only the snapshots it takes."""
    instances = ec2_arns(regions, account, "instance")
    snapshots = ec2_arns(regions, account, "snapshot")
    return [
        *read_routes(regions, account),
        Route("CheckpointDocument", document_arns(regions, account, names.SPOT_DOCUMENT), ["ssm:SendCommand"]),
        Route(
            "CheckpointInScopeInstances",
            instances,
            ["ssm:SendCommand"],
            conditions=in_scope_condition(scope_tag, key_prefix="ssm:resourceTag"),
        ),
        # Only to keep volumes that must outlive the instance (DeleteOnTermination=false); IAM has no key for
        # the attribute, so the code is what limits it to that.
        Route(
            "SnapshotAndKeepInScopeInstances",
            instances,
            ["ec2:CreateSnapshots", "ec2:ModifyInstanceAttribute"],
            conditions=in_scope_condition(scope_tag),
        ),
        # CreateSnapshots also authorises on the instance's volumes (reached only through the instance above)...
        Route("SnapshotTheirVolumes", ec2_arns(regions, account, "volume"), ["ec2:CreateSnapshots"]),
        # ...and on the snapshots it creates, which carry the instance they came from.
        Route(
            "NewSnapshotsNamedForTheirInstance",
            snapshots,
            ["ec2:CreateSnapshots"],
            conditions=tag_present(tags.SPOT_INSTANCE, prefix="aws:RequestTag"),
        ),
        Route(
            "TagNewSnapshotsOnly",
            snapshots,
            ["ec2:CreateTags"],
            conditions=merged(created_by("CreateSnapshots"), tag_keys_only([*SNAPSHOT_TAG_KEYS, scope_tag])),
        ),
    ]
