"""The EBS pre-warm capability: its SSM document, the worker's role and profile, the plan and report functions,
the workflow (infra/prewarm_workflow.py) on a Standard state machine, its IAM and cdk-nag acknowledgements.

The workflow's role acts only on what is in scope or what the execution itself created: the worker it launches
carries the scope tag and trainctl:role=prewarm-worker from its launch request, a volume it creates carries
trainctl:prewarmed-from from its creation request, and every later call is conditioned on those tags. A volume
it restores from a snapshot for EBS to initialise (no worker) is in scope and trainctl:role=prewarmed-volume from
its creation request: should its execution fail, the sweep sees it as any in-scope volume. Nothing deletes a volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.function import TrainctlFunction
from infra.permissions import (
    IN_SCOPE_VALUES,
    Conditions,
    acknowledge,
    checkov_skip,
    created_by,
    document_arns,
    ec2_arns,
    in_scope_condition,
    logical_id,
    merged,
    never_destroy_persistent,
    tag_keys_only,
    tag_present,
)
from infra.policy import Route, read_routes
from infra.prewarm_workflow import AMI_PARAMETER, PrewarmWorkflow, worker_tags
from infra.workflow import state_machine
from trainctl.aws import ssm_documents as documents
from trainctl.core import names, tags
from trainctl.core.protections import PREWARM_LONGEST_WAIT


class Prewarm(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        buckets: Sequence[str],
        bucket_keys: Sequence[str],
        regions: Sequence[str],
        scope_tag: str,
        key: kms.IKey,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        account = cdk.Stack.of(self).account
        self.document = ssm.CfnDocument(
            self,
            "Document",
            name=names.PREWARM_DOCUMENT,
            document_type="Command",
            document_format="JSON",
            content=documents.load(documents.PREWARM),
            update_method="NewVersion",
        )
        self._worker(buckets, bucket_keys)
        self._functions(layer, failures, log_retention, scope_tag, buckets, regions)
        workflow = PrewarmWorkflow(
            self,
            planner=self.planner.function,
            reporter=self.reporter.function,
            account=account,
            regions=regions,
            scope_tag=scope_tag,
        )
        tasks = [
            arn
            for fn in (self.planner.function, self.reporter.function)
            for arn in (fn.function_arn, f"{fn.function_arn}:*")
        ]
        self.state_machine, self.role, self.log_group = state_machine(
            self,
            name=names.PREWARM_STATE_MACHINE,
            start=workflow.start,
            # A forced pre-warm fills a persistent volume: the workflow must detach what it attached.
            detaches_persistent=True,
            # The sweep keeps a restored volume unattached for as long as an execution may wait on it.
            timeout=cdk.Duration.seconds(int(PREWARM_LONGEST_WAIT.total_seconds())),
            log_retention=log_retention,
            key=key,
            routes=[
                Route("RunItsTasks", tasks, ["lambda:InvokeFunction"]),
                Route(
                    "PassOnlyTheWorkerRole",
                    [self.worker_role.role_arn],
                    ["iam:PassRole"],
                    conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
                ),
                *prewarm_routes(regions, account, scope_tag),
            ],
        )
        for statement in self._guard_statements(account, regions, scope_tag):
            self.role.add_to_policy(statement)
        self._acknowledge_findings(account, regions, buckets)

    def _worker(self, buckets: Sequence[str], bucket_keys: Sequence[str]) -> None:
        """The worker's role and profile: it reads only the configured buckets and talks to SSM; nothing else."""
        self.worker_role = iam.Role(
            self,
            "WorkerRole",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="trainctl pre-warm worker: read the data buckets, be managed by SSM",
        )
        self.worker_role.add_to_policy(
            iam.PolicyStatement(
                sid="SsmManaged",
                actions=[
                    "ssm:UpdateInstanceInformation",
                    "ssmmessages:CreateControlChannel",
                    "ssmmessages:CreateDataChannel",
                    "ssmmessages:OpenControlChannel",
                    "ssmmessages:OpenDataChannel",
                    "ec2messages:AcknowledgeMessage",
                    "ec2messages:DeleteMessage",
                    "ec2messages:FailMessage",
                    "ec2messages:GetEndpoint",
                    "ec2messages:GetMessages",
                    "ec2messages:SendReply",
                ],
                resources=["*"],
            )
        )
        if buckets:
            self.worker_role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadDataBuckets",
                    actions=["s3:GetObject", "s3:ListBucket"],
                    resources=[arn for b in buckets for arn in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")],
                )
            )
        if bucket_keys:
            # SSE-KMS buckets: reading an object decrypts its data key, through S3 only.
            self.worker_role.add_to_policy(
                iam.PolicyStatement(
                    sid="DecryptDataBucketObjects",
                    actions=["kms:Decrypt"],
                    resources=list(bucket_keys),
                    conditions={"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
                )
            )
        self.worker_role.add_to_policy(never_destroy_persistent())
        worker_policy = self.worker_role.node.find_child("DefaultPolicy")
        checkov_skip(
            worker_policy,
            "CKV_AWS_111",
            "The SSM agent's own registration and message-channel calls (AWS's AmazonSSMManagedInstanceCore set) "
            "take no resource ARNs; the worker writes nothing else.",
        )
        self.instance_profile = iam.InstanceProfile(
            self, "WorkerProfile", role=self.worker_role, instance_profile_name=names.PREWARM_PROFILE
        )

    def _functions(
        self,
        layer: lambda_.ILayerVersion,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
        scope_tag: str,
        buckets: Sequence[str],
        regions: Sequence[str],
    ) -> None:
        """The workflow's two Lambda tasks: plan (reads EC2 and S3) and report (reads nothing)."""
        account = cdk.Stack.of(self).account
        common = {"layer": layer, "failures": failures, "log_retention": log_retention, "retry_attempts": 0}
        self.planner = TrainctlFunction(
            self,
            "PlanFunction",
            folder="prewarm_plan",
            description="trainctl pre-warm: validate the request and size the worker",
            environment={
                "TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN": self.instance_profile.instance_profile_arn,
                "TRAINCTL_SCOPE_TAG": scope_tag,
            },
            timeout=cdk.Duration.seconds(60),
            function_name=names.PREWARM_PLAN_FUNCTION,
            **common,  # type: ignore[arg-type]
        )
        self.reporter = TrainctlFunction(
            self,
            "ReportFunction",
            folder="prewarm_report",
            description="trainctl pre-warm: read the worker's report into tags",
            environment={},
            timeout=cdk.Duration.seconds(30),
            function_name=names.PREWARM_REPORT_FUNCTION,
            **common,  # type: ignore[arg-type]
        )
        # Both tasks run trainctl.prewarm.run, which declares what the plan reads.
        bucket_routes = [Route("SizeTheData", [f"arn:aws:s3:::{b}" for b in buckets], ["s3:ListBucket"])]
        withheld = {"s3:ListBucket": "no prewarm_buckets configured: the plan may list no bucket"}
        for task in (self.planner, self.reporter):
            task.grant_declared(
                [*read_routes(regions, account), *(bucket_routes if buckets else [])],
                withheld=None if buckets else withheld,
            )

    def _guard_statements(self, account: str, regions: Sequence[str], scope_tag: str) -> list[iam.PolicyStatement]:
        """What bounds the workflow's role beyond its tasks' own statements."""
        return [
            iam.PolicyStatement(
                sid="PassWorkerRole",
                actions=["iam:PassRole"],
                resources=[self.worker_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            ),
            # The document runs as root: only on in-scope instances (its own workers are), whatever else allows.
            iam.PolicyStatement(
                sid="RunOnlyOnInScopeInstances",
                effect=iam.Effect.DENY,
                actions=["ssm:SendCommand"],
                resources=[f"arn:aws:ec2:{r}:{account}:instance/*" for r in regions],
                conditions={"StringNotEqualsIgnoreCase": {f"ssm:resourceTag/{scope_tag}": IN_SCOPE_VALUES}},
            ),
            # It may terminate only its workers, whatever else allows.
            iam.PolicyStatement(
                sid="TerminateOnlyWorkers",
                effect=iam.Effect.DENY,
                actions=["ec2:TerminateInstances"],
                resources=["*"],
                conditions={"StringNotEquals": {f"aws:ResourceTag/{tags.ROLE}": tags.PREWARM_WORKER_ROLE}},
            ),
        ]

    def _acknowledge_findings(self, account: str, regions: Sequence[str], buckets: Sequence[str]) -> None:
        for task in (self.planner, self.reporter):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id(task.function)}.Arn>:*]",
                "CDK's grant for the workflow to invoke any version of its own two task functions.",
            )
        acknowledge(
            self.worker_role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "The SSM agent's channel and message actions take no resource ARNs; the worker reads S3 only from "
            "the configured buckets.",
        )
        for bucket in buckets:
            acknowledge(
                self.worker_role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:s3:::{bucket}/*]",
                "The worker copies a dataset from a bucket the deployer configured: it may read any object "
                "there (GetObject only), and no other bucket.",
            )
        acknowledge(
            self.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "Describe calls, GetCommandInvocation, log delivery and X-Ray take no resource ARNs; they only read "
            "or trace.",
        )
        for arn in ec2_arns(regions, account, "instance", "volume", "snapshot", *LAUNCH_INPUTS):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "The worker and the volume do not exist at deploy time: instances and volumes are reached only "
                "in scope or when the execution created them (request tags at creation, resource tags later); "
                "the image, subnet and security group a launch uses are only read.",
            )


# What RunInstances of the worker reads (besides the instance and the root volume it creates).
LAUNCH_INPUTS = ["image", "subnet", "security-group", "network-interface"]
RECORD_TAG_KEYS = [
    tags.PREWARMED_FROM,
    tags.PREWARMED_AT,
    tags.PREWARMED_BYTES,
    tags.PREWARMED_SECONDS,
    tags.PREWARMED_RATE,
]


def prewarm_routes(regions: Sequence[str], account: str, scope_tag: str) -> list[Route]:
    """Every write in scope or on what the execution created; tags only trainctl's own keys."""
    instances = ec2_arns(regions, account, "instance")
    volumes = ec2_arns(regions, account, "volume")
    snapshots = ec2_arns(regions, account, "snapshot")
    in_scope = in_scope_condition(scope_tag)
    # What the execution created carries trainctl:prewarmed-from from its CreateVolume and no scope decision yet;
    # a pre-warmed volume someone then took out of scope (its scope tag set to false) is not "created here".
    created_here = merged(tag_present(tags.PREWARMED_FROM), {"Null": {f"aws:ResourceTag/{scope_tag}": "true"}})
    worker = {"StringEquals": {f"aws:RequestTag/{tags.ROLE}": tags.PREWARM_WORKER_ROLE}}
    worker_keys = [tag["Key"] for tag in worker_tags(scope_tag)]
    return [
        *read_routes(regions, account),
        Route(
            "LatestAmazonLinux", [f"arn:aws:ssm:{r}::parameter{AMI_PARAMETER}" for r in regions], ["ssm:GetParameter"]
        ),
        *_create_volume_routes(volumes, snapshots, scope_tag),
        Route(
            "LaunchOnlyInScopeWorkers",
            [*instances, *volumes],
            ["ec2:RunInstances"],
            conditions=merged(
                in_scope_condition(scope_tag, key_prefix="aws:RequestTag"), worker, tag_keys_only(worker_keys)
            ),
        ),
        Route("LaunchFromTheImage", ec2_arns(regions, account, *LAUNCH_INPUTS), ["ec2:RunInstances"]),
        Route(
            "TagWorkersAtLaunch",
            [*instances, *volumes],
            ["ec2:CreateTags"],
            conditions=merged(created_by("RunInstances"), tag_keys_only(worker_keys)),
        ),
        Route("AttachOnlyToInScopeInstances", instances, ["ec2:AttachVolume", "ec2:DetachVolume"], conditions=in_scope),
        *_volume_routes(volumes, snapshots, in_scope, created_here, scope_tag),
        Route(
            "TerminateOnlyInScopeWorkers",
            instances,
            ["ec2:TerminateInstances"],
            conditions=merged(in_scope, {"StringEquals": {f"aws:ResourceTag/{tags.ROLE}": tags.PREWARM_WORKER_ROLE}}),
        ),
        Route("PrewarmDocument", document_arns(regions, account, names.PREWARM_DOCUMENT), ["ssm:SendCommand"]),
        Route(
            "PrewarmOnInScopeInstances",
            instances,
            ["ssm:SendCommand"],
            conditions=in_scope_condition(scope_tag, key_prefix="ssm:resourceTag"),
        ),
    ]


def _create_volume_routes(volumes: list[str], snapshots: list[str], scope_tag: str) -> list[Route]:
    """A volume the execution creates carries trainctl:prewarmed-from from its creation request; one it restores
    for EBS to initialise also the scope tag and trainctl:role=prewarmed-volume, so that the sweep sees it."""
    keys = tag_keys_only([tags.PREWARMED_FROM, scope_tag, tags.ROLE])
    return [
        Route(
            "CreateOnlyVolumesMarkedPrewarmed",
            volumes,
            ["ec2:CreateVolume"],
            conditions=merged(tag_present(tags.PREWARMED_FROM, prefix="aws:RequestTag"), keys),
        ),
        # Restoring reads the source snapshot, which the plan checked exists.
        Route("RestoreFromSnapshots", snapshots, ["ec2:CreateVolume"]),
        Route(
            "TagVolumesAtCreation",
            volumes,
            ["ec2:CreateTags"],
            conditions=merged(created_by("CreateVolume"), keys),
        ),
    ]


def _volume_routes(
    volumes: list[str], snapshots: list[str], in_scope: Conditions, created_here: Conditions, scope_tag: str
) -> list[Route]:
    """Attach, detach, record and snapshot a volume that is in scope, or one the execution created (either).

    The snapshot also carries the scope tag: a later pre-warm restores only an in-scope snapshot of the account."""
    record = tag_keys_only(RECORD_TAG_KEYS)
    snapshot_keys = tag_keys_only([*RECORD_TAG_KEYS, scope_tag])
    return [
        Route(
            "UseInScopeVolumes",
            volumes,
            ["ec2:AttachVolume", "ec2:DetachVolume", "ec2:CreateSnapshot"],
            conditions=in_scope,
        ),
        Route(
            "UseVolumesItCreated",
            volumes,
            ["ec2:AttachVolume", "ec2:DetachVolume", "ec2:CreateSnapshot"],
            conditions=created_here,
        ),
        Route("RecordOnInScopeVolumes", volumes, ["ec2:CreateTags"], conditions=merged(in_scope, record)),
        Route("RecordOnVolumesItCreated", volumes, ["ec2:CreateTags"], conditions=merged(created_here, record)),
        Route(
            "SnapshotsMarkedPrewarmed",
            snapshots,
            ["ec2:CreateSnapshot"],
            conditions=merged(tag_present(tags.PREWARMED_FROM, prefix="aws:RequestTag"), snapshot_keys),
        ),
        Route(
            "TagSnapshotsAtCreation",
            snapshots,
            ["ec2:CreateTags"],
            conditions=merged(created_by("CreateSnapshot"), snapshot_keys),
        ),
    ]
