"""The age guard capability: its function, the EventBridge rules that feed it, its IAM and cdk-nag
acknowledgements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.function import TrainctlFunction
from infra.permissions import acknowledge, ec2_arns, in_scope_condition, merged, tag_keys_only
from infra.policy import Route, read_routes, service
from trainctl.age_guard.rules import STAMPED_EVENTS, USE_EVENTS
from trainctl.core import tags

STAMP_KEYS = [tags.CREATED_AT, tags.CREATED_BY, tags.OWNER]


class AgeGuard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        regions: Sequence[str],
        scope_tag: str,
        ledger: dynamodb.ITable,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        account = cdk.Stack.of(self).account
        handler = TrainctlFunction(
            self,
            "Stamp",
            folder="age_guard",
            description="trainctl age guard: stamp who made each resource and when",
            layer=layer,
            environment={
                **settings_environment,
                "TRAINCTL_ACCOUNT_ID": account,
                # A resource used between two sweeps: its mark is voided, and the ledger says why.
                "TRAINCTL_LEDGER_TABLE": ledger.table_name,
            },
            failures=failures,
            log_retention=log_retention,
            timeout=cdk.Duration.seconds(60),
        )
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        self._rules(failures)
        handler.grant_declared(
            [
                Route("RecordUses", [ledger.table_arn], select=service("dynamodb")),
                *age_guard_routes(regions=regions, account=account, scope_tag=scope_tag),
            ]
        )
        for arn in _stamped(["*"], account):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "Any new resource may need stamping, in the configured regions (aws:RequestedRegion); only the "
                "trainctl:created-at, created-by, owner and scope keys, each only where unset.",
            )
        for arn in ec2_arns(regions, account, "instance", "volume", "snapshot"):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "A resource used between two sweeps loses its mark: only the trainctl:cleanup-after key, in scope.",
            )

    def _rules(self, failures: sqs.IQueue) -> None:
        target = targets.LambdaFunction(
            self.function, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(2)
        )
        # Needs a CloudTrail trail with management events on: EventBridge only sees what the trail records.
        self.api_calls = events.Rule(
            self,
            "ApiCalls",
            description="trainctl age guard: EC2 resources created, used, or moved in or out of scope",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["AWS API Call via CloudTrail"],
                # Creations are stamped; a use between two sweeps voids the mark on what it touched.
                detail={"eventSource": ["ec2.amazonaws.com"], "eventName": [*STAMPED_EVENTS, *USE_EVENTS]},
            ),
            targets=[target],
        )
        self.first_starts = events.Rule(
            self,
            "FirstStarts",
            description="trainctl age guard: instances the trail did not attribute",
            event_pattern=events.EventPattern(
                source=["aws.ec2"],
                detail_type=["EC2 Instance State-change Notification"],
                detail={"state": ["running"]},
            ),
            targets=[target],
        )


def _stamped(regions: Sequence[str], account: str) -> list[str]:
    """Every kind of resource age guard may stamp, in every region."""
    return [
        *ec2_arns(regions, account, "instance", "volume", "snapshot", "spot-instances-request"),
        *[f"arn:aws:ec2:{region}::image/*" for region in regions],
    ]


_KEY_NAMES = {tags.CREATED_AT: "At", tags.CREATED_BY: "By", tags.OWNER: "Owner"}


def _key_sets(keys: Sequence[str]) -> list[list[str]]:
    """Every non-empty set of the keys, smallest first."""
    return [list(chosen) for size in range(1, len(keys) + 1) for chosen in combinations(keys, size)]


def age_guard_routes(*, regions: Sequence[str], account: str, scope_tag: str) -> list[Route]:
    return [
        *read_routes(regions, account),
        # Creator, owner, birth time and scope only where unset, key by key: IAM's conditions hold for the whole
        # request, so there is one statement per set of those keys the code may write (it writes exactly the keys a
        # resource lacks), each requiring all of them to be absent.
        *(
            Route(
                "Stamp" + "".join(_KEY_NAMES.get(k, "Scope") for k in keys) + "OnlyWhereUnset",
                # Each names the kinds once for every region, so the role's policy keeps its size.
                _stamped(["*"], account),
                actions=["ec2:CreateTags"],
                conditions=merged(
                    tag_keys_only(keys),
                    {"Null": {f"aws:ResourceTag/{k}": "true" for k in keys}},
                    {"StringEquals": {"aws:RequestedRegion": list(regions)}},
                ),
            )
            for keys in _key_sets([tags.CREATED_AT, tags.CREATED_BY, tags.OWNER, scope_tag])
        ),
        # A resource in use loses the sweep's mark (where the code declares it does): that one key, in scope.
        Route(
            "VoidMarksOnUse",
            ec2_arns(regions, account, "instance", "volume", "snapshot"),
            select=lambda action: action == "ec2:DeleteTags",
            conditions=merged(in_scope_condition(scope_tag), tag_keys_only([tags.CLEANUP_AFTER])),
        ),
    ]
