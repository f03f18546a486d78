"""The spot recovery workflow: relaunch from the launch template in another zone, restore, resume, or give up clean.

Direct SDK integrations only, no Lambda: the spot handler prepares the input (zones to try, the block device
mappings that restore the snapshots, the resume command). The data volumes are restored by RunInstances
itself, with DeleteOnTermination=true, so that compensation is one idempotent TerminateInstances; only after
the instance runs are they switched to DeleteOnTermination=false.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.workflow import state_machine
from trainctl.core import names, tags

# Every wait has a bound: the instance must run within this many polls of POLL_SECONDS.
POLL_SECONDS = 10
MAX_POLLS = 30
RESUME_ATTEMPTS = 8  # SSM needs the new instance's agent registered: retried 15 s apart, backing off


class SpotRecovery(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        topic: sns.ITopic,
        log_retention: logs.RetentionDays,
        document_arns: list[str],
        regions: tuple[str, ...],
        account: str,
    ) -> None:
        super().__init__(scope, construct_id)
        ec2_all = ["*"]
        pick_zone = sfn.Pass(
            self,
            "PickZone",
            comment="The next zone to try; the lost one is not in the list",
            parameters={
                "zone.$": "States.ArrayGetItem($.zones, $.attempt)",
                "polls": 0,
            },
            result_path="$.current",
        )
        launch = tasks.CallAwsService(
            self,
            "Launch",
            comment="RunInstances from the launch template; the data volumes come back from their snapshots",
            service="ec2",
            action="runInstances",
            parameters={
                "LaunchTemplate.$": "$.launch_template",
                "MinCount": 1,
                "MaxCount": 1,
                "Placement": {"AvailabilityZone.$": "$.current.zone"},
                "BlockDeviceMappings.$": "$.block_devices",
                "TagSpecifications": [
                    {"ResourceType": "instance", "Tags.$": "$.tags"},
                    {"ResourceType": "volume", "Tags.$": "$.tags"},
                ],
            },
            iam_resources=ec2_all,
            iam_action="ec2:RunInstances",
            # [*] is a list on AWS and on emulators alike; [0] comes back as a list on some emulators.
            result_selector={"InstanceIds.$": "$.Instances[*].InstanceId"},
            result_path="$.launched",
        )
        wait = sfn.Wait(self, "WaitForRunning", time=sfn.WaitTime.duration(cdk.Duration.seconds(POLL_SECONDS)))
        describe = tasks.CallAwsService(
            self,
            "DescribeLaunched",
            service="ec2",
            action="describeInstances",
            parameters={"InstanceIds.$": "$.launched.InstanceIds"},
            iam_resources=ec2_all,
            iam_action="ec2:DescribeInstances",
            result_selector={"State.$": "$.Reservations[0].Instances[0].State.Name"},
            result_path="$.described",
        )
        count_poll = sfn.Pass(
            self,
            "CountPoll",
            parameters={"zone.$": "$.current.zone", "polls.$": "States.MathAdd($.current.polls, 1)"},
            result_path="$.current",
        )
        keep = tasks.CallAwsService(
            self,
            "KeepRestoredVolumes",
            comment="The instance runs: its restored data must now outlive it",
            service="ec2",
            action="modifyInstanceAttribute",
            parameters={
                "InstanceId.$": "States.ArrayGetItem($.launched.InstanceIds, 0)",
                "BlockDeviceMappings.$": "$.keep_mappings",
            },
            iam_resources=ec2_all,
            iam_action="ec2:ModifyInstanceAttribute",
            result_path=sfn.JsonPath.DISCARD,
        )
        resume = tasks.CallAwsService(
            self,
            "Resume",
            comment="The configured resume hook, through trainctl's own document",
            service="ssm",
            action="sendCommand",
            parameters={
                "DocumentName.$": "$.resume.document",
                "InstanceIds.$": "$.launched.InstanceIds",
                "Parameters.$": "$.resume.parameters",
                "TimeoutSeconds": 600,
            },
            iam_resources=[*document_arns, *(f"arn:aws:ec2:{r}:{account}:instance/*" for r in regions)],
            iam_action="ssm:SendCommand",
            result_selector={"CommandId.$": "$.Command.CommandId"},
            result_path="$.resumed",
        )
        resume.add_retry(
            errors=["Ssm.InvalidInstanceIdException"],
            interval=cdk.Duration.seconds(15),
            max_attempts=RESUME_ATTEMPTS,
            backoff_rate=1.5,
        )
        recovered = tasks.CallAwsService(
            self,
            "TellRecovered",
            service="sns",
            action="publish",
            parameters={
                "TopicArn.$": "$.topic_arn",
                "Subject": "trainctl spot: recovered",
                "Message.$": "States.Format('{} was reclaimed; trainctl relaunched it as {} in {} and started the "
                "resume hook.', $.instance_id, $.launched.InstanceIds, $.current.zone)",
                "MessageAttributes": {"owner": {"DataType": "String", "StringValue.$": "$.owner"}},
            },
            iam_resources=[topic.topic_arn],
            iam_action="sns:Publish",
            result_path=sfn.JsonPath.DISCARD,
        )
        done = sfn.Succeed(self, "Recovered")

        # Compensation: whatever failed after the launch, the half-built instance goes, with its restored copies.
        compensate = tasks.CallAwsService(
            self,
            "TerminateHalfBuilt",
            comment="Idempotent: terminating a terminated instance succeeds",
            service="ec2",
            action="terminateInstances",
            parameters={"InstanceIds.$": "$.launched.InstanceIds"},
            iam_resources=ec2_all,
            iam_action="ec2:TerminateInstances",
            result_path=sfn.JsonPath.DISCARD,
        )
        compensate.add_retry(errors=["States.ALL"], interval=cdk.Duration.seconds(5), max_attempts=5, backoff_rate=2)
        next_attempt = sfn.Pass(
            self,
            "NextAttempt",
            parameters={"value.$": "States.MathAdd($.attempt, 1)"},
            result_path="$.next",
        )
        carry = sfn.Pass(self, "CarryAttempt", input_path="$.next.value", result_path="$.attempt")
        gave_up = tasks.CallAwsService(
            self,
            "TellGaveUp",
            service="sns",
            action="publish",
            parameters={
                "TopicArn.$": "$.topic_arn",
                "Subject": "trainctl spot: recovery gave up",
                "Message.$": "States.Format('{} was reclaimed; trainctl tried {} zone(s) and could not relaunch it. "
                "Nothing half-built was left behind. Last error: {}', $.instance_id, $.max_attempts, $.error.Cause)",
                "MessageAttributes": {"owner": {"DataType": "String", "StringValue.$": "$.owner"}},
            },
            iam_resources=[topic.topic_arn],
            iam_action="sns:Publish",
            result_path=sfn.JsonPath.DISCARD,
        )
        failed = sfn.Fail(
            self, "GaveUp", error="RecoveryFailed", cause="Every zone tried failed; see the execution history"
        )
        cleanup_failed = sfn.Fail(
            self, "CleanupFailed", error="CompensationFailed", cause="The half-built instance could not be terminated"
        )
        compensate.add_catch(cleanup_failed, errors=["States.ALL"], result_path="$.cleanup_error")
        compensate.next(next_attempt)
        next_attempt.next(carry)
        notify_gave_up = sfn.Choice(self, "AnyTopicToTell")
        more_zones = sfn.Choice(self, "MoreZones")
        carry.next(more_zones)
        more_zones.when(sfn.Condition.number_less_than_json_path("$.attempt", "$.max_attempts"), pick_zone)
        more_zones.otherwise(notify_gave_up)
        notify_gave_up.when(sfn.Condition.string_equals("$.topic_arn", ""), failed)
        notify_gave_up.otherwise(gave_up)
        gave_up.next(failed)

        launch_failed = sfn.Pass(self, "NothingLaunched", result_path=sfn.JsonPath.DISCARD)
        launch_failed.next(next_attempt)
        launch.add_catch(launch_failed, errors=["States.ALL"], result_path="$.error")
        for step in (describe, keep, resume):
            step.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        # A message that cannot be sent changes nothing: the instance runs, or nothing was left behind.
        recovered.add_catch(done, errors=["States.ALL"], result_path="$.notify_error")
        gave_up.add_catch(failed, errors=["States.ALL"], result_path="$.notify_error")

        running = sfn.Choice(self, "Running")
        too_long = sfn.Pass(
            self,
            "LaunchTimedOut",
            parameters={"Error": "LaunchTimedOut", "Cause": f"not running after {MAX_POLLS} polls"},
            result_path="$.error",
        )
        too_long.next(compensate)
        tell_if_topic = sfn.Choice(self, "TopicToTell")
        tell_if_topic.when(sfn.Condition.string_equals("$.topic_arn", ""), done).otherwise(recovered)
        recovered.next(done)

        pick_zone.next(launch)
        launch.next(describe)
        describe.next(running)
        running.when(sfn.Condition.string_equals("$.described.State", "running"), keep)
        running.when(sfn.Condition.string_equals("$.described.State", "pending"), count_poll)
        running.otherwise(too_long)
        count_poll.next(
            sfn.Choice(self, "PollBound")
            .when(sfn.Condition.number_greater_than("$.current.polls", MAX_POLLS), too_long)
            .otherwise(wait)
        )
        wait.next(describe)
        keep.next(resume)
        resume.next(tell_if_topic)

        self.state_machine, self.role, self.log_group = state_machine(
            self,
            name=names.RECOVERY_STATE_MACHINE,
            start=pick_zone,
            timeout=cdk.Duration.hours(2),
            log_retention=log_retention,
        )
        # RunInstances from a launch template with an instance profile needs to pass that role.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="PassLaunchTemplateRoles",
                actions=["iam:PassRole"],
                resources=[f"arn:aws:iam::{account}:role/*"],
                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
            )
        )
        # It may terminate or modify only what it launched itself, whatever the task statements allow.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="OnlyWhatItLaunched",
                effect=iam.Effect.DENY,
                actions=["ec2:TerminateInstances", "ec2:ModifyInstanceAttribute"],
                resources=["*"],
                conditions={"Null": {f"aws:ResourceTag/{tags.RECOVERED_FROM}": "true"}},
            )
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="ResumeOnlyWhatItLaunched",
                effect=iam.Effect.DENY,
                actions=["ssm:SendCommand"],
                resources=[f"arn:aws:ec2:{r}:{account}:instance/*" for r in regions],
                conditions={"Null": {f"ssm:resourceTag/{tags.RECOVERED_FROM}": "true"}},
            )
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                sid="TagWhatItLaunches",
                actions=["ec2:CreateTags"],
                resources=ec2_all,
                conditions={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
            )
        )
