"""The EBS pre-warm capability: its SSM document, the worker's role and profile, the plan and report functions,
the workflow (infra/prewarm_workflow.py) on a Standard state machine, its IAM and cdk-nag acknowledgements."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.function import TrainctlFunction
from infra.permissions import IN_SCOPE_VALUES, acknowledge, logical_id
from infra.prewarm_workflow import PrewarmWorkflow
from infra.workflow import state_machine
from trainctl.aws import ssm_documents as documents
from trainctl.core import names, tags


class Prewarm(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        buckets: Sequence[str],
        regions: Sequence[str],
        scope_tag: str,
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
        self._worker(buckets)
        self._functions(layer, failures, log_retention, scope_tag, buckets)
        workflow = PrewarmWorkflow(
            self,
            planner=self.planner.function,
            reporter=self.reporter.function,
            account=account,
            regions=regions,
            scope_tag=scope_tag,
        )
        self.state_machine, self.role, self.log_group = state_machine(
            self,
            name=names.PREWARM_STATE_MACHINE,
            start=workflow.start,
            timeout=cdk.Duration.hours(14),
            log_retention=log_retention,
        )
        for statement in self._guard_statements(account, regions, scope_tag):
            self.role.add_to_policy(statement)
        self._acknowledge_findings(account, regions, buckets)

    def _worker(self, buckets: Sequence[str]) -> None:
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
    ) -> None:
        """The workflow's two Lambda tasks: plan (reads EC2 and S3) and report (reads nothing)."""
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
        self.planner.function.add_to_role_policy(
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
        if buckets:
            self.planner.function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="SizeTheData",
                    actions=["s3:ListBucket"],
                    resources=[f"arn:aws:s3:::{b}" for b in buckets],
                )
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
            # It may terminate only its workers, whatever the task statements allow.
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
            "Launch, attach, detach and describe act on a worker and a volume that do not exist at deploy time; "
            "TerminateInstances is denied on anything not tagged trainctl:role=prewarm-worker.",
        )
        for region in regions:
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:ec2:{region}:{account}:instance/*]",
                "The pre-warm document runs on the worker the workflow launched or the instance the caller named.",
            )
