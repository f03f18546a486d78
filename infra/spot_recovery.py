"""The spot recovery workflow: relaunch from the launch template in another zone, restore, resume, or give up clean.

The input is trusted with nothing but an instance id. The first task (functions/spot_recovery_plan, which only
reads) requires that instance to be terminated by EC2 for its spot capacity after a terminate warning the spot
handler recorded, and reads from that record and from EC2 everything else: the launch template (the
`aws:ec2launchtemplate:id` and `:version` tags EC2 puts on the instance), the snapshots to restore (each the
spot handler's checkpoint of that very instance), the owner, the zones to try and the resume command. Any other
input field is refused by name. The rest are direct SDK integrations. The data volumes are restored by
RunInstances itself, with DeleteOnTermination=true, so that compensation is one idempotent TerminateInstances;
only after the instance runs are they switched to DeleteOnTermination=false. The workflow tags what it launches
itself. Its role may pass only the roles a deploy setting names (`recovery_instance_roles`); with none, it
relaunches only templates without an instance profile; it may restore no snapshot that a person's tags claim
and the spot handler's tag does not.

Phases: plan -> pick a zone -> launch and wait until running -> keep the restored volumes -> resume -> tell the
owner. A failure after the launch terminates the half-built instance and tries the next zone; out of zones, give
up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.function import TrainctlFunction
from infra.permissions import (
    acknowledge,
    created_by,
    document_arns,
    ec2_arns,
    in_scope_condition,
    logical_id,
    merged,
    tag_present,
)
from infra.policy import Route, read_routes, service
from infra.workflow import state_machine
from trainctl.core import names, tags

# Every wait has a bound: the instance must run within this many polls of POLL_SECONDS.
POLL_SECONDS = 10
MAX_POLLS = 30
RESUME_ATTEMPTS = 8  # SSM needs the new instance's agent registered: retried 15 s apart, backing off
EC2_ALL = ["*"]
# What RunInstances from a launch template may also authorise on, besides the instance and volumes it creates
# and the snapshots it restores (RESTORABLE_SNAPSHOTS).
LAUNCH_INPUTS = [
    "launch-template",
    "image",
    "subnet",
    "security-group",
    "network-interface",
    "key-pair",
    "placement-group",
    "capacity-reservation",
    "spot-instances-request",
]


class SpotRecovery(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        regions: Sequence[str],
        scope_tag: str,
        instance_roles: Sequence[str],
        ledger: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        account = cdk.Stack.of(self).account
        self._scope_tag = scope_tag
        self.planner = self._plan_function(
            layer, settings_environment, regions, ledger, topic, key, failures, log_retention
        )
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
        roles = role_arns(instance_roles, account)
        planner = self.planner.function
        self.state_machine, self.role, self.log_group = state_machine(
            self,
            name=names.RECOVERY_STATE_MACHINE,
            start=self._plan(planner, then=pick_zone),
            timeout=cdk.Duration.hours(2),
            log_retention=log_retention,
            key=key,
            routes=[
                Route("RunItsPlan", [planner.function_arn, f"{planner.function_arn}:*"], ["lambda:InvokeFunction"]),
                *recovery_routes(regions, account, scope_tag, roles),
                Route("TellTheOwner", [topic.topic_arn], select=service("sns")),
                Route("EncryptedTopic", [key.key_arn], select=service("kms")),
            ],
            withheld=None
            if roles
            else {
                "iam:PassRole": "no recovery_instance_roles configured: recovery relaunches only launch templates "
                "without an instance profile"
            },
        )
        for statement in _guard_statements(regions, account):
            self.role.add_to_policy(statement)
        self._acknowledge_findings(regions, account)

    def _plan_function(
        self,
        layer: lambda_.ILayerVersion,
        settings_environment: Mapping[str, str],
        regions: Sequence[str],
        ledger: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> TrainctlFunction:
        """The workflow's first task: reads EC2 and the spot handler's records, writes nothing."""
        account = cdk.Stack.of(self).account
        planner = TrainctlFunction(
            self,
            "PlanFunction",
            folder="spot_recovery_plan",
            description="trainctl spot recovery: what to relaunch, from EC2 and the spot handler's record only",
            layer=layer,
            environment={
                **settings_environment,
                "TRAINCTL_LEDGER_TABLE": ledger.table_name,
                "TRAINCTL_TOPIC_ARN": topic.topic_arn,
                "TRAINCTL_SPOT_DOCUMENT": names.SPOT_DOCUMENT,
            },
            failures=failures,
            log_retention=log_retention,
            timeout=cdk.Duration.seconds(60),
            retry_attempts=0,
            function_name=names.SPOT_RECOVERY_PLAN_FUNCTION,
        )
        planner.grant_declared(
            [
                Route("ReadTheSpotRecords", [ledger.table_arn], select=service("dynamodb")),
                Route("EncryptedLedger", [key.key_arn], select=service("kms")),
                *read_routes(regions, account),
            ]
        )
        return planner

    def _plan(self, planner: lambda_.IFunction, *, then: sfn.IChainable) -> sfn.IChainable:
        """The whole state comes from the plan: nothing of the input but the instance id reaches a later step."""
        plan = tasks.LambdaInvoke(
            self,
            "Plan",
            comment="What to relaunch, restore and resume, read from EC2 and the spot handler's record",
            lambda_function=planner,
            # No payload: the Lambda gets the whole input, and refuses any field but instance_id by name.
            payload_response_only=True,
            result_path="$",
            retry_on_service_exceptions=True,
        )
        refused = sfn.Fail(self, "NotRecoverable", error="NotRecoverable", cause_path="$.error.Cause")
        plan.add_catch(refused, errors=["States.ALL"], result_path="$.error")
        plan.next(then)
        return plan

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
                    {"ResourceType": "instance", "Tags": self._launch_tags()},
                    {"ResourceType": "volume", "Tags": self._launch_tags()},
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

    def _launch_tags(self) -> list[dict[str, str]]:
        """What the relaunched instance and its volumes carry: in scope, where from, whose; written here."""
        return [
            {"Key": self._scope_tag, "Value": "true"},
            {"Key": tags.RECOVERED_FROM, "Value.$": "$.instance_id"},
            {"Key": tags.OWNER, "Value.$": "$.owner"},
        ]

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
        acknowledge(
            self.role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id(self.planner.function)}.Arn>:*]",
            "The workflow invokes any version of its own plan function, and no other.",
        )
        for arn in ec2_arns(regions, account, "instance", "volume"):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "Launched only with the scope and trainctl:recovered-from request tags; later calls (keep, resume, "
                "terminate) only on instances carrying trainctl:recovered-from, which this workflow writes.",
            )
        for arn in ec2_arns(regions, account, *LAUNCH_INPUTS, "snapshot"):
            acknowledge(
                self.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "RunInstances from the interrupted instance's own launch template reads the template and what it "
                "names (image, subnet, security groups, snapshots to restore); the instance and volumes it creates "
                "are conditioned on request tags.",
            )
        acknowledge(
            self.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "DescribeInstances, log delivery and X-Ray take no resource ARNs; nothing else is granted on *.",
        )


def role_arns(roles: Sequence[str], account: str) -> list[str]:
    """Role names or ARNs from the deploy setting, as ARNs; a bare name is a role of this account."""
    return [role if role.startswith("arn:") else f"arn:aws:iam::{account}:role/{role}" for role in roles]


def recovery_routes(regions: Sequence[str], account: str, scope_tag: str, roles: Sequence[str]) -> list[Route]:
    """Launch only in scope and tagged as recovered; act later only on what carries that tag."""
    launched = ec2_arns(regions, account, "instance", "volume")
    # The tags that say a snapshot is someone's: age_guard's stamps, and the scope tag.
    claims = (scope_tag, tags.OWNER, tags.CREATED_BY)
    recovered = merged(in_scope_condition(scope_tag), tag_present(tags.RECOVERED_FROM))
    return [
        *read_routes(regions, account),
        Route(
            "LaunchOnlyInScopeAndMarkedRecovered",
            launched,
            ["ec2:RunInstances"],
            conditions=merged(
                in_scope_condition(scope_tag, key_prefix="aws:RequestTag"),
                tag_present(tags.RECOVERED_FROM, prefix="aws:RequestTag"),
            ),
        ),
        Route("LaunchFromTheTemplate", ec2_arns(regions, account, *LAUNCH_INPUTS), ["ec2:RunInstances"]),
        # IAM cannot compare a snapshot's tag with the instance being recovered (the plan's code does): it holds
        # that a restored snapshot is one the spot handler tagged as a checkpoint...
        Route(
            "RestoreOnlySpotCheckpoints",
            ec2_arns(regions, account, "snapshot"),
            ["ec2:RunInstances"],
            conditions=tag_present(tags.SPOT_INSTANCE),
        ),
        # ...or one no one claims (the template image's own): never a snapshot a person's tags claim.
        Route(
            "BootFromUnclaimedImageSnapshots",
            ec2_arns(regions, account, "snapshot"),
            ["ec2:RunInstances"],
            conditions={"Null": {f"aws:ResourceTag/{key}": "true" for key in (tags.SPOT_INSTANCE, *claims)}},
        ),
        # At creation only; the launch template's own tags are written with trainctl's (IAM sees them as the
        # request's), so keys are not limited here.
        Route(
            "TagWhatItLaunches",
            launched,
            ["ec2:CreateTags"],
            conditions=merged(created_by("RunInstances"), tag_present(tags.RECOVERED_FROM, prefix="aws:RequestTag")),
        ),
        Route(
            "KeepOrEndOnlyWhatItLaunched",
            ec2_arns(regions, account, "instance"),
            ["ec2:ModifyInstanceAttribute", "ec2:TerminateInstances"],
            conditions=recovered,
        ),
        Route("ResumeDocument", document_arns(regions, account, names.SPOT_DOCUMENT), ["ssm:SendCommand"]),
        Route(
            "ResumeWhatItLaunched",
            ec2_arns(regions, account, "instance"),
            ["ssm:SendCommand"],
            conditions={"Null": {f"ssm:resourceTag/{tags.RECOVERED_FROM}": "false"}},
        ),
        *(
            [
                Route(
                    "PassOnlyTheConfiguredRoles",
                    roles,
                    ["iam:PassRole"],
                    conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
                )
            ]
            if roles
            else []
        ),
    ]


def _guard_statements(regions: Sequence[str], account: str) -> list[iam.PolicyStatement]:
    """Denies that hold whatever else a statement allows."""
    return [
        # It may terminate or modify only what it launched itself.
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
    ]
