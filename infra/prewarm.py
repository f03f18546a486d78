"""The EBS pre-warm workflow: a Standard state machine of direct SDK calls, two Lambda tasks where logic is needed.

Plan (validate, size) -> [create the volume] -> [launch a worker] -> attach -> run the pre-warm document
(retried until SSM manages the worker) -> poll the command, backing off -> detach -> terminate the worker ->
report -> tag -> [snapshot]. Every step after the launch has a Catch into compensation that detaches the
volume and terminates the worker (never the volume, never an instance the caller brought), then fails with
the cause. Every wait is a bounded loop.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.function import TrainctlFunction
from infra.workflow import state_machine
from trainctl.aws import ssm_documents as documents
from trainctl.core import names, tags

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
POLL_SECONDS = 2
MAX_POLLS = 60  # each wait loop: at most this many polls
COMMAND_POLL_CAP_SECONDS = 60
MAX_COMMAND_POLLS = 800  # backing off to a minute: about 13 hours, the document's own timeout


def state_is(path: str, value: str) -> sfn.Condition:
    """A selected state equals `value`, whether the selector gave a string or a one-element list.

    Step Functions gives a string for `[0]` paths and a list for `[*]`; some emulators give either for either.
    """
    return sfn.Condition.or_(
        sfn.Condition.and_(sfn.Condition.is_string(path), sfn.Condition.string_equals(path, value)),
        sfn.Condition.and_(sfn.Condition.is_present(f"{path}[0]"), sfn.Condition.string_equals(f"{path}[0]", value)),
    )


class Prewarm(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
        buckets: tuple[str, ...],
        account: str,
        regions: tuple[str, ...],
        scope_tag: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.document = ssm.CfnDocument(
            self,
            "Document",
            name=names.PREWARM_DOCUMENT,
            document_type="Command",
            document_format="JSON",
            content=documents.load(documents.PREWARM),
            update_method="NewVersion",
        )
        # The worker reads only the configured buckets and talks to SSM; nothing else.
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

        common = {"layer": layer, "failures": failures, "log_retention": log_retention, "retry_attempts": 0}
        planner = TrainctlFunction(
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
        reporter = TrainctlFunction(
            self,
            "ReportFunction",
            folder="prewarm_report",
            description="trainctl pre-warm: read the worker's report into tags",
            environment={},
            timeout=cdk.Duration.seconds(30),
            function_name=names.PREWARM_REPORT_FUNCTION,
            **common,  # type: ignore[arg-type]
        )
        self.functions = (planner, reporter)
        ec2_all = ["*"]

        def sdk(
            state_id: str,
            service: str,
            action: str,
            parameters: dict[str, object],
            *,
            iam_action: str,
            result_selector: dict[str, object] | None = None,
            result_path: str | None = None,
            resources: list[str] | None = None,
            comment: str | None = None,
        ) -> tasks.CallAwsService:
            return tasks.CallAwsService(
                self,
                state_id,
                service=service,
                action=action,
                parameters=parameters,
                iam_action=iam_action,
                iam_resources=resources or ec2_all,
                result_selector=result_selector,
                result_path=result_path if result_path is not None else sfn.JsonPath.DISCARD,
                comment=comment,
            )

        def bounded_poll(
            prefix: str,
            check: tasks.CallAwsService,
            done: sfn.Condition,
            then: sfn.IChainable,
            on_timeout: sfn.IChainable,
        ) -> sfn.IChainable:
            """check, then done? -> then; else wait and check again, at most MAX_POLLS times."""
            start = sfn.Pass(self, f"{prefix}Start", result=sfn.Result.from_number(0), result_path=f"$.polls.{prefix}")
            count = sfn.Pass(
                self,
                f"{prefix}Count",
                parameters={"value.$": f"States.MathAdd($.polls.{prefix}, 1)"},
                result_path=f"$.counted.{prefix}",
            )
            carry = sfn.Pass(
                self, f"{prefix}Carry", input_path=f"$.counted.{prefix}.value", result_path=f"$.polls.{prefix}"
            )
            wait = sfn.Wait(self, f"{prefix}Wait", time=sfn.WaitTime.duration(cdk.Duration.seconds(POLL_SECONDS)))
            decide = sfn.Choice(self, f"{prefix}Done")
            decide.when(done, then)
            decide.when(sfn.Condition.number_greater_than(f"$.polls.{prefix}", MAX_POLLS), on_timeout)
            decide.otherwise(count)
            count.next(carry).next(wait).next(check)
            check.next(decide)
            start.next(check)
            return start

        def timed_out(state_id: str, error: str, cause: str) -> sfn.Pass:
            """A bounded wait ran out: the error that compensation and the Fail state report."""
            return sfn.Pass(self, state_id, parameters={"Error": error, "Cause": cause}, result_path="$.error")

        failed = sfn.Fail(self, "Failed", error="PrewarmFailed", cause_path="$.error.Cause")
        refused = sfn.Fail(self, "Refused", error="InvalidRequest", cause_path="$.error.Cause")
        cleanup_failed = sfn.Fail(self, "CleanupFailed", error="CompensationFailed", cause_path="$.cleanup.Cause")

        # --- compensation: detach (best effort), wait until detached, terminate the worker we launched
        comp_detach = sdk(
            "CompensateDetach",
            "ec2",
            "detachVolume",
            {
                "VolumeId.$": "$.plan.volume_id",
                "InstanceId.$": "States.ArrayGetItem($.worker.InstanceIds, 0)",
            },
            iam_action="ec2:DetachVolume",
            comment="Best effort: the volume may never have been attached",
        )
        comp_check = sdk(
            "CompensateCheckDetached",
            "ec2",
            "describeVolumes",
            {"VolumeIds.$": "States.Array($.plan.volume_id)"},
            iam_action="ec2:DescribeVolumes",
            result_selector={"State.$": "$.Volumes[0].State"},
            result_path="$.volume_state",
        )
        comp_terminate = sdk(
            "CompensateTerminate",
            "ec2",
            "terminateInstances",
            {"InstanceIds.$": "$.worker.InstanceIds"},
            iam_action="ec2:TerminateInstances",
            comment="Idempotent; only a worker this execution launched",
        )
        comp_terminate.add_retry(
            errors=["States.ALL"], interval=cdk.Duration.seconds(5), max_attempts=5, backoff_rate=2
        )
        comp_terminate.add_catch(cleanup_failed, errors=["States.ALL"], result_path="$.cleanup")
        comp_terminate.next(failed)
        launched_here = sfn.Choice(self, "CompensateWorkerLaunchedHere")
        launched_here.when(sfn.Condition.boolean_equals("$.plan.launch_worker", True), comp_terminate)
        launched_here.otherwise(failed)
        comp_detach.add_catch(launched_here, errors=["States.ALL"], result_path="$.detach_error")
        comp_wait = bounded_poll(
            "CompensateDetached",
            comp_check,
            state_is("$.volume_state.State", "available"),
            launched_here,
            launched_here,
        )
        comp_check.add_catch(launched_here, errors=["States.ALL"], result_path="$.detach_error")
        comp_detach.next(comp_wait)
        compensate = comp_detach

        # --- plan
        plan = tasks.LambdaInvoke(
            self,
            "Plan",
            lambda_function=planner.function,
            payload=sfn.TaskInput.from_object(
                {
                    "volume_id.$": "$.volume_id",
                    "volume.$": "$.volume",
                    "s3_uri.$": "$.s3_uri",
                    "mount_point.$": "$.mount_point",
                    "instance_id.$": "$.instance_id",
                    "snapshot.$": "$.snapshot",
                }
            ),
            payload_response_only=True,
            result_path="$.plan",
            retry_on_service_exceptions=True,
        )
        plan.add_catch(refused, errors=["States.ALL"], result_path="$.error")

        # --- volume: use the given one, or create it from the spec
        def create_volume(state_id: str, *optional: str) -> tasks.CallAwsService:
            """CreateVolume from the plan's fields; ASL parameters cannot be conditional, so one task per shape."""
            fields = ("AvailabilityZone", "Size", "VolumeType", *optional, "TagSpecifications")
            return sdk(
                state_id,
                "ec2",
                "createVolume",
                {f"{name}.$": f"$.plan.create_volume.{name}" for name in fields},
                iam_action="ec2:CreateVolume",
                result_selector={"VolumeId.$": "$.VolumeId"},
                result_path="$.created",
            )

        create_plain = create_volume("CreateVolume")
        create_restore = create_volume("RestoreVolume", "SnapshotId")
        create_at_rate = create_volume("RestoreVolumeAtRate", "SnapshotId", "VolumeInitializationRate")
        for create in (create_plain, create_restore, create_at_rate):
            create.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        use_created = sfn.Pass(
            self, "UseCreatedVolume", input_path="$.created.VolumeId", result_path="$.plan.volume_id"
        )
        check_created = sdk(
            "CheckCreatedVolume",
            "ec2",
            "describeVolumes",
            {"VolumeIds.$": "States.Array($.plan.volume_id)"},
            iam_action="ec2:DescribeVolumes",
            result_selector={"State.$": "$.Volumes[0].State"},
            result_path="$.volume_state",
        )
        check_created.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        volume_timeout = timed_out(
            "VolumeNotAvailable", "VolumeTimeout", "the new volume did not become available in time"
        )
        volume_timeout.next(failed)

        # --- worker: the caller's instance, or one launched for this
        use_instance = sfn.Pass(
            self,
            "UseGivenInstance",
            parameters={"InstanceIds.$": "States.Array($.plan.instance_id)"},
            result_path="$.worker",
        )
        ami = sdk(
            "LatestAmazonLinux",
            "ssm",
            "getParameter",
            {"Name": AMI_PARAMETER},
            iam_action="ssm:GetParameter",
            resources=[f"arn:aws:ssm:{r}::parameter{AMI_PARAMETER}" for r in regions],
            result_selector={"ImageId.$": "$.Parameter.Value"},
            result_path="$.ami",
        )
        ami.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        launch = sdk(
            "LaunchWorker",
            "ec2",
            "runInstances",
            {
                "ImageId.$": "$.ami.ImageId",
                "InstanceType.$": "$.plan.instance_type",
                "MinCount": 1,
                "MaxCount": 1,
                "Placement": {"AvailabilityZone.$": "$.plan.zone"},
                "IamInstanceProfile": {"Arn.$": "$.plan.instance_profile_arn"},
                "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
                "TagSpecifications": [
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": scope_tag, "Value": "true"},
                            {"Key": tags.ROLE, "Value": tags.PREWARM_WORKER_ROLE},
                            {"Key": "Name", "Value": "trainctl pre-warm worker"},
                        ],
                    }
                ],
            },
            iam_action="ec2:RunInstances",
            result_selector={"InstanceIds.$": "$.Instances[*].InstanceId"},
            result_path="$.worker",
        )
        launch.add_catch(failed, errors=["States.ALL"], result_path="$.error")
        check_running = sdk(
            "CheckWorkerRunning",
            "ec2",
            "describeInstances",
            {"InstanceIds.$": "$.worker.InstanceIds"},
            iam_action="ec2:DescribeInstances",
            result_selector={"State.$": "$.Reservations[0].Instances[0].State.Name"},
            result_path="$.worker_state",
        )
        check_running.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        worker_timeout = timed_out("WorkerNotRunning", "WorkerTimeout", "the worker did not reach running in time")
        worker_timeout.next(compensate)

        # --- attach, run, poll
        attach = sdk(
            "Attach",
            "ec2",
            "attachVolume",
            {
                "VolumeId.$": "$.plan.volume_id",
                "InstanceId.$": "States.ArrayGetItem($.worker.InstanceIds, 0)",
                "Device.$": "$.plan.device",
            },
            iam_action="ec2:AttachVolume",
        )
        attach.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        check_attached = sdk(
            "CheckAttached",
            "ec2",
            "describeVolumes",
            {"VolumeIds.$": "States.Array($.plan.volume_id)"},
            iam_action="ec2:DescribeVolumes",
            result_selector={"State.$": "$.Volumes[0].Attachments[*].State"},
            result_path="$.attachment",
        )
        check_attached.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        attach_timeout = timed_out("NotAttached", "AttachTimeout", "the volume did not attach in time")
        attach_timeout.next(compensate)
        run = sdk(
            "RunPrewarmDocument",
            "ssm",
            "sendCommand",
            {
                "DocumentName": names.PREWARM_DOCUMENT,
                "InstanceIds.$": "$.worker.InstanceIds",
                "Parameters": {
                    "VolumeId.$": "States.Array($.plan.volume_id)",
                    "MountPoint.$": "States.Array($.plan.mount_point)",
                    "S3Uri.$": "States.Array($.plan.s3_uri)",
                    "ReadAllBlocks.$": "States.Array($.plan.read_all_blocks)",
                },
                "TimeoutSeconds": 600,
                "Comment": "trainctl pre-warm",
            },
            iam_action="ssm:SendCommand",
            resources=[
                *(f"arn:aws:ssm:{r}:{account}:document/{names.PREWARM_DOCUMENT}" for r in regions),
                *(f"arn:aws:ec2:{r}:{account}:instance/*" for r in regions),
            ],
            result_selector={"CommandId.$": "$.Command.CommandId"},
            result_path="$.command",
            comment="Retried until SSM manages the worker: that is the wait for the agent",
        )
        run.add_retry(
            errors=["Ssm.InvalidInstanceIdException"],
            interval=cdk.Duration.seconds(15),
            max_attempts=12,
            backoff_rate=1.5,
        )
        run.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        poll_start = sfn.Pass(
            self,
            "PollStart",
            parameters={"seconds": POLL_SECONDS, "n": 0},
            result_path="$.poll",
        )
        poll_wait = sfn.Wait(self, "PollWait", time=sfn.WaitTime.seconds_path("$.poll.seconds"))
        get_invocation = sdk(
            "GetCommandInvocation",
            "ssm",
            "getCommandInvocation",
            {"CommandId.$": "$.command.CommandId", "InstanceId.$": "States.ArrayGetItem($.worker.InstanceIds, 0)"},
            iam_action="ssm:GetCommandInvocation",
            result_selector={"Status.$": "$.Status", "Output.$": "$.StandardOutputContent"},
            result_path="$.invocation",
        )
        get_invocation.add_retry(
            errors=["Ssm.InvocationDoesNotExistException"], interval=cdk.Duration.seconds(5), max_attempts=6
        )
        get_invocation.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        backoff = sfn.Pass(
            self,
            "PollBackOff",
            parameters={
                "seconds.$": "States.MathAdd($.poll.seconds, $.poll.seconds)",
                "n.$": "States.MathAdd($.poll.n, 1)",
            },
            result_path="$.poll",
        )
        cap = sfn.Pass(
            self,
            "PollCap",
            parameters={"seconds": COMMAND_POLL_CAP_SECONDS, "n.$": "$.poll.n"},
            result_path="$.poll",
        )
        command_failed = sfn.Pass(
            self,
            "CommandFailed",
            parameters={
                "Error": "CommandFailed",
                "Cause.$": "States.Format('the pre-warm command ended {}', $.invocation.Status)",
            },
            result_path="$.error",
        )
        command_failed.next(compensate)
        command_timeout = timed_out("CommandTimedOut", "CommandTimeout", "the pre-warm command did not finish in time")
        command_timeout.next(compensate)

        # --- finish: detach, wait, terminate, report, tag, snapshot
        detach = sdk(
            "Detach",
            "ec2",
            "detachVolume",
            {"VolumeId.$": "$.plan.volume_id", "InstanceId.$": "States.ArrayGetItem($.worker.InstanceIds, 0)"},
            iam_action="ec2:DetachVolume",
        )
        detach.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        check_detached = sdk(
            "CheckDetached",
            "ec2",
            "describeVolumes",
            {"VolumeIds.$": "States.Array($.plan.volume_id)"},
            iam_action="ec2:DescribeVolumes",
            result_selector={"State.$": "$.Volumes[0].State"},
            result_path="$.volume_state",
        )
        check_detached.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        detach_timeout = timed_out("NotDetached", "DetachTimeout", "the volume did not detach in time")
        detach_timeout.next(compensate)
        terminate = sdk(
            "TerminateWorker",
            "ec2",
            "terminateInstances",
            {"InstanceIds.$": "$.worker.InstanceIds"},
            iam_action="ec2:TerminateInstances",
        )
        terminate.add_retry(errors=["States.ALL"], interval=cdk.Duration.seconds(5), max_attempts=5, backoff_rate=2)
        terminate.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        report = tasks.LambdaInvoke(
            self,
            "Report",
            lambda_function=reporter.function,
            payload=sfn.TaskInput.from_object(
                {
                    "output.$": "$.invocation.Output",
                    "source.$": "$.plan.s3_uri",
                    "started_at.$": "$$.Execution.StartTime",
                    "estimated_seconds.$": "$.plan.estimated_seconds",
                }
            ),
            payload_response_only=True,
            result_path="$.report",
            retry_on_service_exceptions=True,
        )
        tag = sdk(
            "TagVolume",
            "ec2",
            "createTags",
            {"Resources.$": "States.Array($.plan.volume_id)", "Tags.$": "$.report.tags"},
            iam_action="ec2:CreateTags",
        )
        snapshot = sdk(
            "SnapshotVolume",
            "ec2",
            "createSnapshot",
            {
                "VolumeId.$": "$.plan.volume_id",
                "Description": "trainctl: pre-warmed volume",
                "TagSpecifications": [{"ResourceType": "snapshot", "Tags.$": "$.report.tags"}],
            },
            iam_action="ec2:CreateSnapshot",
            result_selector={"SnapshotId.$": "$.SnapshotId"},
            result_path="$.snapshot",
        )
        # The worker is gone and the volume is whole from here: a failure to tag or snapshot is reported, no more.
        done = sfn.Succeed(self, "Prewarmed")
        not_recorded = sfn.Fail(self, "NotRecorded", error="TagOrSnapshotFailed", cause_path="$.error.Cause")
        for step in (report, tag, snapshot):
            step.add_catch(not_recorded, errors=["States.ALL"], result_path="$.error")

        # --- wiring
        worker_choice = sfn.Choice(self, "LaunchWorkerOrUseGiven")
        worker_choice.when(sfn.Condition.boolean_equals("$.plan.launch_worker", True), ami)
        worker_choice.otherwise(use_instance)
        has_spec = sfn.Choice(self, "CreateVolumeFirst")
        which_create = sfn.Choice(self, "WhichCreate")
        has_spec.when(sfn.Condition.is_null("$.plan.create_volume"), worker_choice)
        has_spec.otherwise(which_create)
        which_create.when(sfn.Condition.is_present("$.plan.create_volume.VolumeInitializationRate"), create_at_rate)
        which_create.when(sfn.Condition.is_present("$.plan.create_volume.SnapshotId"), create_restore)
        which_create.otherwise(create_plain)
        for create in (create_plain, create_restore, create_at_rate):
            create.next(use_created)
        use_created.next(
            bounded_poll(
                "VolumeAvailable",
                check_created,
                state_is("$.volume_state.State", "available"),
                worker_choice,
                volume_timeout,
            )
        )
        plan.next(has_spec)
        ami.next(launch)
        launch.next(
            bounded_poll(
                "WorkerRunning",
                check_running,
                state_is("$.worker_state.State", "running"),
                attach,
                worker_timeout,
            )
        )
        use_instance.next(attach)
        attach.next(
            bounded_poll(
                "Attached",
                check_attached,
                state_is("$.attachment.State", "attached"),
                run,
                attach_timeout,
            )
        )
        run.next(poll_start)
        poll_start.next(poll_wait)
        poll_wait.next(get_invocation)
        status = sfn.Choice(self, "CommandStatus")
        get_invocation.next(status)
        status.when(sfn.Condition.string_equals("$.invocation.Status", "Success"), detach)
        status.when(
            sfn.Condition.or_(
                *(sfn.Condition.string_equals("$.invocation.Status", s) for s in ("Pending", "InProgress", "Delayed"))
            ),
            backoff,
        )
        status.otherwise(command_failed)
        bound = sfn.Choice(self, "PollBound")
        backoff.next(bound)
        bound.when(sfn.Condition.number_greater_than("$.poll.n", MAX_COMMAND_POLLS), command_timeout)
        bound.when(sfn.Condition.number_greater_than("$.poll.seconds", COMMAND_POLL_CAP_SECONDS), cap)
        bound.otherwise(poll_wait)
        cap.next(poll_wait)
        finished_worker = sfn.Choice(self, "TerminateWorkerLaunchedHere")
        detach.next(
            bounded_poll(
                "Detached",
                check_detached,
                state_is("$.volume_state.State", "available"),
                finished_worker,
                detach_timeout,
            )
        )
        finished_worker.when(sfn.Condition.boolean_equals("$.plan.launch_worker", True), terminate)
        finished_worker.otherwise(report)
        terminate.next(report)
        report.next(tag)
        snapshot_wanted = sfn.Choice(self, "SnapshotWanted")
        tag.next(snapshot_wanted)
        snapshot_wanted.when(sfn.Condition.boolean_equals("$.plan.snapshot", True), snapshot)
        snapshot_wanted.otherwise(done)
        snapshot.next(done)
        chain_start = plan

        self.state_machine, role, self.log_group = state_machine(
            self,
            name=names.PREWARM_STATE_MACHINE,
            start=chain_start,
            timeout=cdk.Duration.hours(14),
            log_retention=log_retention,
        )
        self.role = role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PassWorkerRole",
                actions=["iam:PassRole"],
                resources=[self.worker_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
        # The document runs as root: only on in-scope instances (its own workers are), whatever else allows.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RunOnlyOnInScopeInstances",
                effect=iam.Effect.DENY,
                actions=["ssm:SendCommand"],
                resources=[f"arn:aws:ec2:{r}:{account}:instance/*" for r in regions],
                conditions={"StringNotEqualsIgnoreCase": {f"ssm:resourceTag/{scope_tag}": ["true", "yes", "1"]}},
            )
        )
        # It may terminate only its workers, whatever the task statements allow.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="TerminateOnlyWorkers",
                effect=iam.Effect.DENY,
                actions=["ec2:TerminateInstances"],
                resources=["*"],
                conditions={"StringNotEquals": {f"aws:ResourceTag/{tags.ROLE}": tags.PREWARM_WORKER_ROLE}},
            )
        )
