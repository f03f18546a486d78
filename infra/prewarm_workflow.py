"""The EBS pre-warm state machine's definition, built phase by phase.

From S3: Plan (validate, size) -> [create the volume] -> [launch a worker] -> attach -> run the pre-warm document
(retried until SSM manages the worker) -> poll the command, backing off -> detach -> terminate the worker ->
report -> tag -> [snapshot]. Every step after the launch has a Catch into compensation that detaches the
volume and terminates the worker (never the volume, never an instance the caller brought), then fails with
the cause.

From a snapshot: Plan -> create the volume at a provisioned initialisation rate -> poll DescribeVolumeStatus,
backing off, until EBS reports 100 % -> report -> tag. No instance, no SSM. A failure ends the execution with
its cause; the volume, created in scope as trainctl's prewarmed-volume, is left to the sweep like any other.

Every wait is a bounded loop.

Each phase is built from its successor backwards, so each helper is given the state it leads to. Every read of
the plan goes through plan_path, named after a field of trainctl.prewarm.plan.PrewarmPlan.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct
from pydantic import BaseModel

from trainctl.core import names, tags
from trainctl.prewarm.plan import PrewarmPlan

AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
POLL_SECONDS = 2
MAX_POLLS = 60  # each wait loop: at most this many polls
COMMAND_POLL_CAP_SECONDS = 60
MAX_COMMAND_POLLS = 800  # backing off to a minute: about 13 hours, the document's own timeout
MAX_INITIALISATION_POLLS = 800  # likewise: the plan refuses a restore its rate would not finish in 12 hours
PLAN = "$.plan"  # where the plan task's result sits in the execution's state
WORKER = "States.ArrayGetItem($.worker.InstanceIds, 0)"
CATCH_ALL = ["States.ALL"]


def plan_path(*fields: str) -> str:
    """The JSONPath of a plan field (nested fields in order), as the plan task writes it; anything else fails."""
    model: type[BaseModel] | None = PrewarmPlan
    parts = [PLAN]
    for name in fields:
        if model is None or name not in model.model_fields:
            known = sorted(model.model_fields) if model else []
            raise ValueError(f"{'.'.join(parts)} has no field {name!r}; it has {known}")
        field = model.model_fields[name]
        parts.append(field.alias or name)
        model = _model_of(field.annotation)
    return ".".join(parts)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (also when optional), or None for a plain value."""
    candidates = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def worker_tags(scope_tag: str) -> list[dict[str, str]]:
    """What the worker and its root volume carry from their launch request: in scope, trainctl's pre-warm worker."""
    return [
        {"Key": scope_tag, "Value": "true"},
        {"Key": tags.ROLE, "Value": tags.PREWARM_WORKER_ROLE},
        {"Key": "Name", "Value": "trainctl pre-warm worker"},
    ]


def state_is(path: str, value: str) -> sfn.Condition:
    """A selected state equals `value`, whether the selector gave a string or a one-element list.

    Step Functions gives a string for `[0]` paths and a list for `[*]`; some emulators give either for either.
    """
    return sfn.Condition.or_(
        sfn.Condition.and_(sfn.Condition.is_string(path), sfn.Condition.string_equals(path, value)),
        sfn.Condition.and_(sfn.Condition.is_present(f"{path}[0]"), sfn.Condition.string_equals(f"{path}[0]", value)),
    )


def copies_from_s3() -> sfn.Condition:
    """The S3 path (a worker copies); otherwise EBS initialises a volume restored from a snapshot."""
    return sfn.Condition.boolean_equals(plan_path("copies_from_s3"), True)


def launched_here() -> sfn.Condition:
    """The worker is one this execution launched, not the caller's instance."""
    return sfn.Condition.boolean_equals(plan_path("launch_worker"), True)


class PrewarmWorkflow:
    """The workflow's states, made in `scope` (a state's name is its construct id); `start` is the first."""

    def __init__(
        self,
        scope: Construct,
        *,
        planner: lambda_.IFunction,
        reporter: lambda_.IFunction,
        account: str,
        regions: Sequence[str],
        scope_tag: str,
    ) -> None:
        self._scope = scope
        self._account = account
        self._regions = tuple(regions)
        self._scope_tag = scope_tag
        self._failed = sfn.Fail(scope, "Failed", error="PrewarmFailed", cause_path="$.error.Cause")
        self._compensate = self._compensation()
        copied, initialised = self._report_tag_and_snapshot(reporter)
        detach = self._detach_and_end_worker(then=copied)
        poll = self._poll_command(then=detach)
        run = self._run_document(then=poll)
        attach = self._attach(then=run)
        worker = self._worker(then=attach)
        wait_initialised = self._wait_initialised(then=initialised)
        fork = sfn.Choice(scope, "CopyOrInitialise")
        fork.when(copies_from_s3(), worker)
        fork.otherwise(wait_initialised)
        volume = self._volume(then=fork)
        self.start = self._plan(planner, then=volume)

    # --- the building blocks every phase uses

    def _sdk(
        self,
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
            self._scope,
            state_id,
            service=service,
            action=action,
            parameters=parameters,
            iam_action=iam_action,
            iam_resources=resources or ["*"],
            result_selector=result_selector,
            result_path=result_path if result_path is not None else sfn.JsonPath.DISCARD,
            comment=comment,
        )

    def _volume_state(self, state_id: str, selector: str, result_path: str) -> tasks.CallAwsService:
        """DescribeVolumes of the plan's volume, keeping only what `selector` picks."""
        return self._sdk(
            state_id,
            "ec2",
            "describeVolumes",
            {"VolumeIds.$": f"States.Array({plan_path('volume_id')})"},
            iam_action="ec2:DescribeVolumes",
            result_selector={"State.$": selector},
            result_path=result_path,
        )

    def _bounded_poll(
        self,
        prefix: str,
        check: tasks.CallAwsService,
        done: sfn.Condition,
        then: sfn.IChainable,
        on_timeout: sfn.IChainable,
    ) -> sfn.IChainable:
        """check, then done? -> then; else wait and check again, at most MAX_POLLS times."""
        scope = self._scope
        start = sfn.Pass(scope, f"{prefix}Start", result=sfn.Result.from_number(0), result_path=f"$.polls.{prefix}")
        count = sfn.Pass(
            scope,
            f"{prefix}Count",
            parameters={"value.$": f"States.MathAdd($.polls.{prefix}, 1)"},
            result_path=f"$.counted.{prefix}",
        )
        carry = sfn.Pass(
            scope, f"{prefix}Carry", input_path=f"$.counted.{prefix}.value", result_path=f"$.polls.{prefix}"
        )
        wait = sfn.Wait(scope, f"{prefix}Wait", time=sfn.WaitTime.duration(cdk.Duration.seconds(POLL_SECONDS)))
        decide = sfn.Choice(scope, f"{prefix}Done")
        decide.when(done, then)
        decide.when(sfn.Condition.number_greater_than(f"$.polls.{prefix}", MAX_POLLS), on_timeout)
        decide.otherwise(count)
        count.next(carry).next(wait).next(check)
        check.next(decide)
        start.next(check)
        return start

    def _timed_out(self, state_id: str, error: str, cause: str, then: sfn.IChainable) -> sfn.Pass:
        """A bounded wait ran out: the error that compensation and the Fail state report."""
        timed_out = sfn.Pass(self._scope, state_id, parameters={"Error": error, "Cause": cause}, result_path="$.error")
        timed_out.next(then)
        return timed_out

    # --- the phases, in the order an execution meets them

    def _plan(self, planner: lambda_.IFunction, *, then: sfn.IChainable) -> sfn.IChainable:
        """Validate and size: a refused request fails before anything exists."""
        plan = tasks.LambdaInvoke(
            self._scope,
            "Plan",
            lambda_function=planner,
            # No payload: the Lambda gets the whole request; owner and force reach it, an unknown field is refused.
            payload_response_only=True,
            result_path=PLAN,
            retry_on_service_exceptions=True,
        )
        refused = sfn.Fail(self._scope, "Refused", error="InvalidRequest", cause_path="$.error.Cause")
        plan.add_catch(refused, errors=CATCH_ALL, result_path="$.error")
        plan.next(then)
        return plan

    def _volume(self, *, then: sfn.IChainable) -> sfn.IChainable:
        """Use the given volume, or create it from the plan's spec and wait until it is available."""
        scope = self._scope
        create_plain = self._create_volume("CreateVolume")
        create_restore = self._create_volume("RestoreVolume", "snapshot_id")
        create_at_rate = self._create_volume("RestoreVolumeAtRate", "snapshot_id", "volume_initialization_rate")
        use_created = sfn.Pass(
            scope, "UseCreatedVolume", input_path="$.created.VolumeId", result_path=plan_path("volume_id")
        )
        for create in (create_plain, create_restore, create_at_rate):
            create.add_catch(self._failed, errors=CATCH_ALL, result_path="$.error")
            create.next(use_created)
        check_created = self._volume_state("CheckCreatedVolume", "$.Volumes[0].State", "$.volume_state")
        check_created.add_catch(self._failed, errors=CATCH_ALL, result_path="$.error")
        volume_timeout = self._timed_out(
            "VolumeNotAvailable", "VolumeTimeout", "the new volume did not become available in time", self._failed
        )
        use_created.next(
            self._bounded_poll(
                "VolumeAvailable", check_created, state_is("$.volume_state.State", "available"), then, volume_timeout
            )
        )
        has_spec = sfn.Choice(scope, "CreateVolumeFirst")
        which_create = sfn.Choice(scope, "WhichCreate")
        has_spec.when(sfn.Condition.is_null(plan_path("create_volume")), then)
        has_spec.otherwise(which_create)
        which_create.when(
            sfn.Condition.is_present(plan_path("create_volume", "volume_initialization_rate")), create_at_rate
        )
        which_create.when(sfn.Condition.is_present(plan_path("create_volume", "snapshot_id")), create_restore)
        which_create.otherwise(create_plain)
        return has_spec

    def _create_volume(self, state_id: str, *optional: str) -> tasks.CallAwsService:
        """CreateVolume from the plan's fields; ASL parameters cannot be conditional, so one task per shape."""
        fields = ("availability_zone", "size", "volume_type", *optional, "tag_specifications")
        paths = [plan_path("create_volume", field) for field in fields]
        return self._sdk(
            state_id,
            "ec2",
            "createVolume",
            {f"{path.rsplit('.', 1)[1]}.$": path for path in paths},
            iam_action="ec2:CreateVolume",
            result_selector={"VolumeId.$": "$.VolumeId"},
            result_path="$.created",
        )

    def _wait_initialised(self, *, then: sfn.IChainable) -> sfn.IChainable:
        """Poll DescribeVolumeStatus, doubling the wait up to a cap, until EBS reports the initialisation at 100 %.

        EBS may take minutes to report any initialisation at all: a status without it is polled again."""
        scope = self._scope
        start = sfn.Pass(
            scope, "InitialisePollStart", parameters={"seconds": POLL_SECONDS, "n": 0}, result_path="$.init_poll"
        )
        wait = sfn.Wait(scope, "InitialiseWait", time=sfn.WaitTime.seconds_path("$.init_poll.seconds"))
        check = self._sdk(
            "CheckInitialisation",
            "ec2",
            "describeVolumeStatus",
            {"VolumeIds.$": f"States.Array({plan_path('volume_id')})"},
            iam_action="ec2:DescribeVolumeStatus",
            # The whole list: a path into a status EBS has not reported yet would fail the task.
            result_selector={"Statuses.$": "$.VolumeStatuses"},
            result_path="$.initialisation",
        )
        check.add_catch(self._failed, errors=CATCH_ALL, result_path="$.error")
        progress = "$.initialisation.Statuses[0].InitializationStatusDetails.Progress"
        reported = sfn.Choice(scope, "InitialisationReported")
        complete = sfn.Choice(scope, "Initialised")
        backoff = sfn.Pass(
            scope,
            "InitialiseBackOff",
            parameters={
                "seconds.$": "States.MathAdd($.init_poll.seconds, $.init_poll.seconds)",
                "n.$": "States.MathAdd($.init_poll.n, 1)",
            },
            result_path="$.init_poll",
        )
        cap = sfn.Pass(
            scope,
            "InitialiseCap",
            parameters={"seconds": COMMAND_POLL_CAP_SECONDS, "n.$": "$.init_poll.n"},
            result_path="$.init_poll",
        )
        timed_out = self._timed_out(
            "NotInitialised",
            "InitialisationTimeout",
            "EBS did not finish initialising the volume in time",
            self._failed,
        )
        bound = sfn.Choice(scope, "InitialiseBound")
        start.next(wait)
        wait.next(check)
        check.next(reported)
        # Two choices, not one And: a numeric comparison of a path that is absent is an error in Step Functions.
        reported.when(sfn.Condition.is_numeric(progress), complete)
        reported.otherwise(backoff)
        complete.when(sfn.Condition.number_greater_than_equals(progress, 100), then)
        complete.otherwise(backoff)
        backoff.next(bound)
        bound.when(sfn.Condition.number_greater_than("$.init_poll.n", MAX_INITIALISATION_POLLS), timed_out)
        bound.when(sfn.Condition.number_greater_than("$.init_poll.seconds", COMMAND_POLL_CAP_SECONDS), cap)
        bound.otherwise(wait)
        cap.next(wait)
        return start

    def _worker(self, *, then: sfn.IChainable) -> sfn.IChainable:
        """The caller's instance, or a worker launched for this and waited on until it runs."""
        scope = self._scope
        use_instance = sfn.Pass(
            scope,
            "UseGivenInstance",
            parameters={"InstanceIds.$": f"States.Array({plan_path('instance_id')})"},
            result_path="$.worker",
        )
        use_instance.next(then)
        ami = self._sdk(
            "LatestAmazonLinux",
            "ssm",
            "getParameter",
            {"Name": AMI_PARAMETER},
            iam_action="ssm:GetParameter",
            resources=[f"arn:aws:ssm:{r}::parameter{AMI_PARAMETER}" for r in self._regions],
            result_selector={"ImageId.$": "$.Parameter.Value"},
            result_path="$.ami",
        )
        ami.add_catch(self._failed, errors=CATCH_ALL, result_path="$.error")
        launch = self._launch()
        launch.add_catch(self._failed, errors=CATCH_ALL, result_path="$.error")
        check_running = self._sdk(
            "CheckWorkerRunning",
            "ec2",
            "describeInstances",
            {"InstanceIds.$": "$.worker.InstanceIds"},
            iam_action="ec2:DescribeInstances",
            result_selector={"State.$": "$.Reservations[0].Instances[0].State.Name"},
            result_path="$.worker_state",
        )
        check_running.add_catch(self._compensate, errors=CATCH_ALL, result_path="$.error")
        worker_timeout = self._timed_out(
            "WorkerNotRunning", "WorkerTimeout", "the worker did not reach running in time", self._compensate
        )
        ami.next(launch)
        launch.next(
            self._bounded_poll(
                "WorkerRunning", check_running, state_is("$.worker_state.State", "running"), then, worker_timeout
            )
        )
        worker_choice = sfn.Choice(scope, "LaunchWorkerOrUseGiven")
        worker_choice.when(launched_here(), ami)
        worker_choice.otherwise(use_instance)
        return worker_choice

    def _launch(self) -> tasks.CallAwsService:
        """RunInstances of the planned worker: IMDSv2 only, in scope, tagged as trainctl's pre-warm worker."""
        return self._sdk(
            "LaunchWorker",
            "ec2",
            "runInstances",
            {
                "ImageId.$": "$.ami.ImageId",
                "InstanceType.$": plan_path("instance_type"),
                "MinCount": 1,
                "MaxCount": 1,
                "Placement": {"AvailabilityZone.$": plan_path("zone")},
                "IamInstanceProfile": {"Arn.$": plan_path("instance_profile_arn")},
                "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
                "TagSpecifications": [
                    {"ResourceType": kind, "Tags": worker_tags(self._scope_tag)} for kind in ("instance", "volume")
                ],
            },
            iam_action="ec2:RunInstances",
            result_selector={"InstanceIds.$": "$.Instances[*].InstanceId"},
            result_path="$.worker",
        )

    def _attach(self, *, then: sfn.IChainable) -> sfn.IChainable:
        """Attach the volume to the worker and wait until it is attached."""
        attach = self._sdk(
            "Attach",
            "ec2",
            "attachVolume",
            {
                "VolumeId.$": plan_path("volume_id"),
                "InstanceId.$": WORKER,
                "Device.$": plan_path("device"),
            },
            iam_action="ec2:AttachVolume",
        )
        attach.add_catch(self._compensate, errors=CATCH_ALL, result_path="$.error")
        check_attached = self._volume_state("CheckAttached", "$.Volumes[0].Attachments[*].State", "$.attachment")
        check_attached.add_catch(self._compensate, errors=CATCH_ALL, result_path="$.error")
        attach_timeout = self._timed_out(
            "NotAttached", "AttachTimeout", "the volume did not attach in time", self._compensate
        )
        attach.next(
            self._bounded_poll(
                "Attached", check_attached, state_is("$.attachment.State", "attached"), then, attach_timeout
            )
        )
        return attach

    def _run_document(self, *, then: sfn.IChainable) -> sfn.IChainable:
        """SendCommand of the pre-warm document to the worker, retried until SSM manages it."""
        run = self._sdk(
            "RunPrewarmDocument",
            "ssm",
            "sendCommand",
            {
                "DocumentName": names.PREWARM_DOCUMENT,
                "InstanceIds.$": "$.worker.InstanceIds",
                "Parameters": {
                    "VolumeId.$": f"States.Array({plan_path('volume_id')})",
                    "MountPoint.$": f"States.Array({plan_path('mount_point')})",
                    "S3Uri.$": f"States.Array({plan_path('s3_uri')})",
                    "ReadAllBlocks.$": f"States.Array({plan_path('read_all_blocks')})",
                },
                "TimeoutSeconds": 600,
                "Comment": "trainctl pre-warm",
            },
            iam_action="ssm:SendCommand",
            resources=[
                *(f"arn:aws:ssm:{r}:{self._account}:document/{names.PREWARM_DOCUMENT}" for r in self._regions),
                *(f"arn:aws:ec2:{r}:{self._account}:instance/*" for r in self._regions),
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
        run.add_catch(self._compensate, errors=CATCH_ALL, result_path="$.error")
        run.next(then)
        return run

    def _poll_command(self, *, then: sfn.IChainable) -> sfn.IChainable:
        """Poll the command, doubling the wait up to a cap, a bounded number of times; Success -> then."""
        scope = self._scope
        poll_start = sfn.Pass(scope, "PollStart", parameters={"seconds": POLL_SECONDS, "n": 0}, result_path="$.poll")
        poll_wait = sfn.Wait(scope, "PollWait", time=sfn.WaitTime.seconds_path("$.poll.seconds"))
        get_invocation = self._sdk(
            "GetCommandInvocation",
            "ssm",
            "getCommandInvocation",
            {"CommandId.$": "$.command.CommandId", "InstanceId.$": WORKER},
            iam_action="ssm:GetCommandInvocation",
            result_selector={"Status.$": "$.Status", "Output.$": "$.StandardOutputContent"},
            result_path="$.invocation",
        )
        get_invocation.add_retry(
            errors=["Ssm.InvocationDoesNotExistException"], interval=cdk.Duration.seconds(5), max_attempts=6
        )
        get_invocation.add_catch(self._compensate, errors=CATCH_ALL, result_path="$.error")
        backoff = sfn.Pass(
            scope,
            "PollBackOff",
            parameters={
                "seconds.$": "States.MathAdd($.poll.seconds, $.poll.seconds)",
                "n.$": "States.MathAdd($.poll.n, 1)",
            },
            result_path="$.poll",
        )
        cap = sfn.Pass(
            scope, "PollCap", parameters={"seconds": COMMAND_POLL_CAP_SECONDS, "n.$": "$.poll.n"}, result_path="$.poll"
        )
        command_failed = sfn.Pass(
            scope,
            "CommandFailed",
            parameters={
                "Error": "CommandFailed",
                "Cause.$": "States.Format('the pre-warm command ended {}', $.invocation.Status)",
            },
            result_path="$.error",
        )
        command_failed.next(self._compensate)
        command_timeout = self._timed_out(
            "CommandTimedOut", "CommandTimeout", "the pre-warm command did not finish in time", self._compensate
        )
        poll_start.next(poll_wait)
        poll_wait.next(get_invocation)
        status = sfn.Choice(scope, "CommandStatus")
        get_invocation.next(status)
        status.when(sfn.Condition.string_equals("$.invocation.Status", "Success"), then)
        status.when(
            sfn.Condition.or_(
                *(sfn.Condition.string_equals("$.invocation.Status", s) for s in ("Pending", "InProgress", "Delayed"))
            ),
            backoff,
        )
        status.otherwise(command_failed)
        bound = sfn.Choice(scope, "PollBound")
        backoff.next(bound)
        bound.when(sfn.Condition.number_greater_than("$.poll.n", MAX_COMMAND_POLLS), command_timeout)
        bound.when(sfn.Condition.number_greater_than("$.poll.seconds", COMMAND_POLL_CAP_SECONDS), cap)
        bound.otherwise(poll_wait)
        cap.next(poll_wait)
        return poll_start

    def _detach_and_end_worker(self, *, then: sfn.IChainable) -> sfn.IChainable:
        """Detach, wait until detached, terminate the worker if this execution launched it."""
        detach = self._sdk(
            "Detach",
            "ec2",
            "detachVolume",
            {"VolumeId.$": plan_path("volume_id"), "InstanceId.$": WORKER},
            iam_action="ec2:DetachVolume",
        )
        detach.add_catch(self._compensate, errors=CATCH_ALL, result_path="$.error")
        check_detached = self._volume_state("CheckDetached", "$.Volumes[0].State", "$.volume_state")
        check_detached.add_catch(self._compensate, errors=CATCH_ALL, result_path="$.error")
        detach_timeout = self._timed_out(
            "NotDetached", "DetachTimeout", "the volume did not detach in time", self._compensate
        )
        terminate = self._sdk(
            "TerminateWorker",
            "ec2",
            "terminateInstances",
            {"InstanceIds.$": "$.worker.InstanceIds"},
            iam_action="ec2:TerminateInstances",
        )
        terminate.add_retry(errors=CATCH_ALL, interval=cdk.Duration.seconds(5), max_attempts=5, backoff_rate=2)
        terminate.add_catch(self._compensate, errors=CATCH_ALL, result_path="$.error")
        finished_worker = sfn.Choice(self._scope, "TerminateWorkerLaunchedHere")
        detach.next(
            self._bounded_poll(
                "Detached",
                check_detached,
                state_is("$.volume_state.State", "available"),
                finished_worker,
                detach_timeout,
            )
        )
        finished_worker.when(launched_here(), terminate)
        finished_worker.otherwise(then)
        terminate.next(then)
        return detach

    def _report_tag_and_snapshot(self, reporter: lambda_.IFunction) -> tuple[sfn.IChainable, sfn.IChainable]:
        """Read the worker's report (or the restored volume's) into tags on the volume, then snapshot it if asked.

        Returns the report states of the two paths: the copy's, then the initialisation's."""
        scope = self._scope
        report = tasks.LambdaInvoke(
            scope,
            "Report",
            lambda_function=reporter,
            payload=sfn.TaskInput.from_object(
                {
                    "output.$": "$.invocation.Output",
                    "source.$": plan_path("s3_uri"),
                    "started_at.$": "$$.Execution.StartTime",
                    "estimated_seconds.$": plan_path("estimated_seconds"),
                    "scope_tag.$": plan_path("scope_tag"),
                }
            ),
            payload_response_only=True,
            result_path="$.report",
            retry_on_service_exceptions=True,
        )
        # The volume's id only: the report reads its creation time, size and snapshot from EC2 itself.
        report_initialised = tasks.LambdaInvoke(
            scope,
            "ReportInitialised",
            lambda_function=reporter,
            payload=sfn.TaskInput.from_object(
                {
                    "copies_from_s3.$": plan_path("copies_from_s3"),
                    "volume_id.$": plan_path("volume_id"),
                    "estimated_seconds.$": plan_path("estimated_seconds"),
                    "initialization.$": "$.initialisation.Statuses[0].InitializationStatusDetails",
                }
            ),
            payload_response_only=True,
            result_path="$.report",
            retry_on_service_exceptions=True,
        )
        tag = self._sdk(
            "TagVolume",
            "ec2",
            "createTags",
            {"Resources.$": f"States.Array({plan_path('volume_id')})", "Tags.$": "$.report.tags"},
            iam_action="ec2:CreateTags",
        )
        snapshot = self._sdk(
            "SnapshotVolume",
            "ec2",
            "createSnapshot",
            {
                "VolumeId.$": plan_path("volume_id"),
                "Description": "trainctl: pre-warmed volume",
                # In scope, so that a later pre-warm may restore it (the plan restores no other of this account).
                "TagSpecifications": [{"ResourceType": "snapshot", "Tags.$": "$.report.snapshot_tags"}],
            },
            iam_action="ec2:CreateSnapshot",
            result_selector={"SnapshotId.$": "$.SnapshotId"},
            result_path="$.snapshot",
        )
        # The worker is gone and the volume is whole from here: a failure to tag or snapshot is reported, no more.
        done = sfn.Succeed(scope, "Prewarmed")
        not_recorded = sfn.Fail(scope, "NotRecorded", error="TagOrSnapshotFailed", cause_path="$.error.Cause")
        for step in (report, report_initialised, tag, snapshot):
            step.add_catch(not_recorded, errors=CATCH_ALL, result_path="$.error")
        report.next(tag)
        report_initialised.next(tag)
        snapshot_wanted = sfn.Choice(scope, "SnapshotWanted")
        tag.next(snapshot_wanted)
        snapshot_wanted.when(sfn.Condition.boolean_equals(plan_path("snapshot"), True), snapshot)
        snapshot_wanted.otherwise(done)
        snapshot.next(done)
        return report, report_initialised

    def _compensation(self) -> sfn.IChainable:
        """Detach (best effort), wait until detached, terminate the worker if launched here; then fail."""
        scope = self._scope
        cleanup_failed = sfn.Fail(scope, "CleanupFailed", error="CompensationFailed", cause_path="$.cleanup.Cause")
        comp_detach = self._sdk(
            "CompensateDetach",
            "ec2",
            "detachVolume",
            {"VolumeId.$": plan_path("volume_id"), "InstanceId.$": WORKER},
            iam_action="ec2:DetachVolume",
            comment="Best effort: the volume may never have been attached",
        )
        comp_check = self._volume_state("CompensateCheckDetached", "$.Volumes[0].State", "$.volume_state")
        comp_terminate = self._sdk(
            "CompensateTerminate",
            "ec2",
            "terminateInstances",
            {"InstanceIds.$": "$.worker.InstanceIds"},
            iam_action="ec2:TerminateInstances",
            comment="Idempotent; only a worker this execution launched",
        )
        comp_terminate.add_retry(errors=CATCH_ALL, interval=cdk.Duration.seconds(5), max_attempts=5, backoff_rate=2)
        comp_terminate.add_catch(cleanup_failed, errors=CATCH_ALL, result_path="$.cleanup")
        comp_terminate.next(self._failed)
        worker_launched_here = sfn.Choice(scope, "CompensateWorkerLaunchedHere")
        worker_launched_here.when(launched_here(), comp_terminate)
        worker_launched_here.otherwise(self._failed)
        comp_detach.add_catch(worker_launched_here, errors=CATCH_ALL, result_path="$.detach_error")
        comp_check.add_catch(worker_launched_here, errors=CATCH_ALL, result_path="$.detach_error")
        comp_detach.next(
            self._bounded_poll(
                "CompensateDetached",
                comp_check,
                state_is("$.volume_state.State", "available"),
                worker_launched_here,
                worker_launched_here,
            )
        )
        return comp_detach
