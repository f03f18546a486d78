"""The spot recovery workflow: relaunch from the launch template in another zone, restore, resume, or give up clean.

Direct SDK integrations only, no Lambda: the spot handler prepares the input (zones to try, the block device
mappings that restore the snapshots, the resume command). The data volumes are restored by RunInstances
itself, with DeleteOnTermination=true, so that compensation is one idempotent TerminateInstances; only after
the instance runs are they switched to DeleteOnTermination=false.

Phases: pick a zone -> launch and wait until running -> keep the restored volumes -> resume -> tell the owner.
A failure after the launch terminates the half-built instance and tries the next zone; out of zones, give up.
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.permissions import acknowledge, document_arns
from infra.workflow import state_machine
from trainctl.core import names, tags

# Every wait has a bound: the instance must run within this many polls of POLL_SECONDS.
POLL_SECONDS = 10
MAX_POLLS = 30
RESUME_ATTEMPTS = 8  # SSM needs the new instance's agent registered: retried 15 s apart, backing off
EC2_ALL = ["*"]


class SpotRecovery(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        regions: Sequence[str],
        topic: sns.ITopic,
        key: kms.IKey,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        account = cdk.Stack.of(self).account
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
        next_attempt = self._next_zone_or_give_up(pick_zone, topic)
        compensate = self._compensation(next_attempt)
        resume_instances = [
            *document_arns(regions, account, names.SPOT_DOCUMENT),
            *(f"arn:aws:ec2:{r}:{account}:instance/*" for r in regions),
        ]
        keep = self._keep_resume_and_tell(compensate, topic, resume_instances)
        pick_zone.next(self._launch_until_running(compensate, next_attempt, keep))

        self.state_machine, self.role, self.log_group = state_machine(
            self,
            name=names.RECOVERY_STATE_MACHINE,
            start=pick_zone,
            timeout=cdk.Duration.hours(2),
            log_retention=log_retention,
        )
        for statement in _guard_statements(regions, account):
            self.state_machine.add_to_role_policy(statement)
        topic.grant_publish(self.state_machine)
        key.grant(self.state_machine, "kms:Decrypt", "kms:GenerateDataKey")
        self._acknowledge_findings(regions, account)

    def _launch_until_running(
        self, compensate: sfn.IChainable, next_attempt: sfn.IChainable, keep: sfn.IChainable
    ) -> sfn.IChainable:
        """Launch in the picked zone, then poll until running (-> keep), at most MAX_POLLS times."""
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
            iam_resources=EC2_ALL,
            iam_action="ec2:RunInstances",
            # [*] is a list on AWS and on emulators alike; [0] comes back as a list on some emulators.
            result_selector={"InstanceIds.$": "$.Instances[*].InstanceId"},
            result_path="$.launched",
        )
        launch_failed = sfn.Pass(self, "NothingLaunched", result_path=sfn.JsonPath.DISCARD)
        launch_failed.next(next_attempt)
        launch.add_catch(launch_failed, errors=["States.ALL"], result_path="$.error")
        wait = sfn.Wait(self, "WaitForRunning", time=sfn.WaitTime.duration(cdk.Duration.seconds(POLL_SECONDS)))
        describe = tasks.CallAwsService(
            self,
            "DescribeLaunched",
            service="ec2",
            action="describeInstances",
            parameters={"InstanceIds.$": "$.launched.InstanceIds"},
            iam_resources=EC2_ALL,
            iam_action="ec2:DescribeInstances",
            result_selector={"State.$": "$.Reservations[0].Instances[0].State.Name"},
            result_path="$.described",
        )
        describe.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        count_poll = sfn.Pass(
            self,
            "CountPoll",
            parameters={"zone.$": "$.current.zone", "polls.$": "States.MathAdd($.current.polls, 1)"},
            result_path="$.current",
        )
        too_long = sfn.Pass(
            self,
            "LaunchTimedOut",
            parameters={"Error": "LaunchTimedOut", "Cause": f"not running after {MAX_POLLS} polls"},
            result_path="$.error",
        )
        too_long.next(compensate)
        running = sfn.Choice(self, "Running")
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
        return launch

    def _keep_resume_and_tell(
        self, compensate: sfn.IChainable, topic: sns.ITopic, resume_resources: list[str]
    ) -> sfn.IChainable:
        """The instance runs: keep its restored volumes, start the resume hook, tell the owner if there is a topic."""
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
            iam_resources=EC2_ALL,
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
            iam_resources=resume_resources,
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
        for step in (keep, resume):
            step.add_catch(compensate, errors=["States.ALL"], result_path="$.error")
        done = sfn.Succeed(self, "Recovered")
        recovered = self._tell(
            "TellRecovered",
            topic,
            "trainctl spot: recovered",
            "States.Format('{} was reclaimed; trainctl relaunched it as {} in {} and started the "
            "resume hook.', $.instance_id, $.launched.InstanceIds, $.current.zone)",
        )
        # A message that cannot be sent changes nothing: the instance runs.
        recovered.add_catch(done, errors=["States.ALL"], result_path="$.notify_error")
        recovered.next(done)
        tell_if_topic = sfn.Choice(self, "TopicToTell")
        tell_if_topic.when(sfn.Condition.string_equals("$.topic_arn", ""), done).otherwise(recovered)
        keep.next(resume)
        resume.next(tell_if_topic)
        return keep

    def _compensation(self, next_attempt: sfn.IChainable) -> sfn.IChainable:
        """Whatever failed after the launch, the half-built instance goes, with its restored copies."""
        compensate = tasks.CallAwsService(
            self,
            "TerminateHalfBuilt",
            comment="Idempotent: terminating a terminated instance succeeds",
            service="ec2",
            action="terminateInstances",
            parameters={"InstanceIds.$": "$.launched.InstanceIds"},
            iam_resources=EC2_ALL,
            iam_action="ec2:TerminateInstances",
            result_path=sfn.JsonPath.DISCARD,
        )
        compensate.add_retry(errors=["States.ALL"], interval=cdk.Duration.seconds(5), max_attempts=5, backoff_rate=2)
        cleanup_failed = sfn.Fail(
            self, "CleanupFailed", error="CompensationFailed", cause="The half-built instance could not be terminated"
        )
        compensate.add_catch(cleanup_failed, errors=["States.ALL"], result_path="$.cleanup_error")
        compensate.next(next_attempt)
        return compensate

    def _next_zone_or_give_up(self, pick_zone: sfn.IChainable, topic: sns.ITopic) -> sfn.IChainable:
        """Count the attempt; try the next zone while there is one, else tell the owner (if any) and fail."""
        next_attempt = sfn.Pass(
            self,
            "NextAttempt",
            parameters={"value.$": "States.MathAdd($.attempt, 1)"},
            result_path="$.next",
        )
        carry = sfn.Pass(self, "CarryAttempt", input_path="$.next.value", result_path="$.attempt")
        gave_up = self._tell(
            "TellGaveUp",
            topic,
            "trainctl spot: recovery gave up",
            "States.Format('{} was reclaimed; trainctl tried {} zone(s) and could not relaunch it. "
            "Nothing half-built was left behind. Last error: {}', $.instance_id, $.max_attempts, $.error.Cause)",
        )
        failed = sfn.Fail(
            self, "GaveUp", error="RecoveryFailed", cause="Every zone tried failed; see the execution history"
        )
        next_attempt.next(carry)
        notify_gave_up = sfn.Choice(self, "AnyTopicToTell")
        more_zones = sfn.Choice(self, "MoreZones")
        carry.next(more_zones)
        more_zones.when(sfn.Condition.number_less_than_json_path("$.attempt", "$.max_attempts"), pick_zone)
        more_zones.otherwise(notify_gave_up)
        notify_gave_up.when(sfn.Condition.string_equals("$.topic_arn", ""), failed)
        notify_gave_up.otherwise(gave_up)
        gave_up.next(failed)
        # A message that cannot be sent changes nothing: nothing was left behind.
        gave_up.add_catch(failed, errors=["States.ALL"], result_path="$.notify_error")
        return next_attempt

    def _tell(self, state_id: str, topic: sns.ITopic, subject: str, message: str) -> tasks.CallAwsService:
        """Publish to the execution's topic, addressed to the owner; `message` is a States.Format expression."""
        return tasks.CallAwsService(
            self,
            state_id,
            service="sns",
            action="publish",
            parameters={
                "TopicArn.$": "$.topic_arn",
                "Subject": subject,
                "Message.$": message,
                "MessageAttributes": {"owner": {"DataType": "String", "StringValue.$": "$.owner"}},
            },
            iam_resources=[topic.topic_arn],
            iam_action="sns:Publish",
            result_path=sfn.JsonPath.DISCARD,
        )

    def _acknowledge_findings(self, regions: Sequence[str], account: str) -> None:
        for region in regions:
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:ec2:{region}:{account}:instance/*]",
                "The resume command goes to the instance the workflow just launched, through trainctl's document.",
            )
        acknowledge(
            self.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "RunInstances and DescribeInstances take no instance ARN before it exists; TerminateInstances and "
            "ModifyInstanceAttribute are denied on anything not tagged trainctl:recovered-from by this workflow.",
        )
        acknowledge(
            self.role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::arn:aws:iam::{account}:role/*]",
            "The launch template names the instance profile; PassRole is limited to EC2 as the receiving service.",
        )
        acknowledge(
            self.role,
            "AwsSolutions::AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "CDK's grant to publish to the KMS-encrypted topic; limited to trainctl's own key.",
        )


def _guard_statements(regions: Sequence[str], account: str) -> list[iam.PolicyStatement]:
    """What bounds the workflow's role beyond its tasks' own statements."""
    return [
        # RunInstances from a launch template with an instance profile needs to pass that role.
        iam.PolicyStatement(
            sid="PassLaunchTemplateRoles",
            actions=["iam:PassRole"],
            resources=[f"arn:aws:iam::{account}:role/*"],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        # It may terminate or modify only what it launched itself, whatever the task statements allow.
        iam.PolicyStatement(
            sid="OnlyWhatItLaunched",
            effect=iam.Effect.DENY,
            actions=["ec2:TerminateInstances", "ec2:ModifyInstanceAttribute"],
            resources=["*"],
            conditions={"Null": {f"aws:ResourceTag/{tags.RECOVERED_FROM}": "true"}},
        ),
        iam.PolicyStatement(
            sid="ResumeOnlyWhatItLaunched",
            effect=iam.Effect.DENY,
            actions=["ssm:SendCommand"],
            resources=[f"arn:aws:ec2:{r}:{account}:instance/*" for r in regions],
            conditions={"Null": {f"ssm:resourceTag/{tags.RECOVERED_FROM}": "true"}},
        ),
        iam.PolicyStatement(
            sid="TagWhatItLaunches",
            actions=["ec2:CreateTags"],
            resources=EC2_ALL,
            conditions={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        ),
    ]
