"""A role's policy from what its code declares: routes map declared actions onto statements, and synth refuses
any declared action no route grants and any granted action no code declares.

A function's declared actions are `declared_for(function)` (infra/declarations.py); a state machine's are the
actions its task states call (`task_actions`), plus what IAM requires of those calls implicitly. Each construct
gives the routes: which resources, under which conditions, each of its actions is granted on. Platform actions,
which no trainctl code calls but the service needs on the role's behalf, are listed once here with their reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import aws_iam as iam

# Read-only actions that support no resource-level permissions: granted on "*" wherever they are declared.
_READS_ON_ANY = re.compile(r"^ec2:Describe[A-Za-z]+$")
READS_ON_ANY = frozenset(
    {
        "cloudwatch:GetMetricData",
        "ssm:GetCommandInvocation",
        "ssm:DescribeInstanceInformation",
        "pricing:GetProducts",
        "autoscaling:DescribeLaunchConfigurations",
    }
)

# What the Lambda service does with a function's role on its behalf; no trainctl code calls these.
FUNCTION_PLATFORM: Mapping[str, str] = {
    "logs:CreateLogStream": "Lambda writes the function's logs, to its own log group only",
    "logs:PutLogEvents": "Lambda writes the function's logs, to its own log group only",
    "xray:PutTraceSegments": "active tracing: Lambda sends the function's trace segments",
    "xray:PutTelemetryRecords": "active tracing: Lambda sends the function's telemetry",
    "sqs:SendMessage": "Lambda delivers a failed asynchronous invocation to the failure queue with this role",
    "kms:GenerateDataKey": "the failure queue is encrypted with trainctl's key: sending to it needs a data key",
    "kms:Decrypt": "the failure queue is encrypted with trainctl's key: sending to it decrypts the data key",
}

# What Step Functions does with a state machine's role for its logging and tracing; no task calls these.
STATE_MACHINE_PLATFORM: Mapping[str, str] = {
    **{
        f"logs:{action}": "Step Functions delivers the execution log to the state machine's log group"
        for action in (
            "CreateLogDelivery",
            "GetLogDelivery",
            "UpdateLogDelivery",
            "DeleteLogDelivery",
            "ListLogDeliveries",
            "PutResourcePolicy",
            "DescribeResourcePolicies",
            "DescribeLogGroups",
        )
    },
    **{
        f"xray:{action}": "X-Ray tracing of the executions"
        for action in ("PutTraceSegments", "PutTelemetryRecords", "GetSamplingRules", "GetSamplingTargets")
    },
}


class PolicyMismatch(ValueError):
    """A role would grant an action no code declares, or its code declares one nothing grants."""


@dataclass(frozen=True)
class Route:
    """Where and under which conditions declared actions are granted.

    `actions` names them (each must be declared, or synth fails: a stale route is a grant nobody needs);
    `select` instead picks whichever declared actions it matches (a service's actions on its one resource).
    """

    sid: str
    resources: Sequence[str]
    actions: Collection[str] = ()
    select: Callable[[str], bool] | None = None
    conditions: Mapping[str, Mapping[str, Any]] | None = None

    def pick(self, declared: Collection[str]) -> list[str]:
        if self.select is not None:
            return sorted(a for a in declared if self.select(a))
        return sorted(self.actions)


def service(name: str) -> Callable[[str], bool]:
    """Every declared action of one service, e.g. dynamodb on the ledger."""
    return lambda action: action.startswith(f"{name}:")


# EC2 reads that do take a resource ARN: granted on that kind of resource, never on "*".
READS_OF = {"ec2:DescribeInstanceAttribute": "instance", "ec2:DescribeSnapshotAttribute": "snapshot"}
ATTRIBUTE_READS = frozenset(f"Read{kind.capitalize()}Attributes" for kind in READS_OF.values())


def _only(wanted: str) -> Callable[[str], bool]:
    return lambda action: action == wanted


def reads_on_any(action: str) -> bool:
    return action not in READS_OF and (action in READS_ON_ANY or bool(_READS_ON_ANY.match(action)))


def read_routes(
    regions: Sequence[str], account: str, *, conditions: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Route]:
    """Declared reads: on "*" where EC2 or the service has no resource-level permission, else on the resource."""
    routes = [Route("ReadsWithoutResourceLevelPermissions", ["*"], select=reads_on_any, conditions=conditions)]
    for action, kind in READS_OF.items():
        owner = "" if kind == "snapshot" else account
        routes.append(
            Route(
                f"Read{kind.capitalize()}Attributes",
                [f"arn:aws:ec2:{region}:{owner}:{kind}/*" for region in regions],
                select=_only(action),
                conditions=conditions,
            )
        )
    return routes


@dataclass
class DeclaredPolicy:
    """The statements that grant exactly `declared` (less what is `withheld`, with the reason) and no more."""

    owner: str
    declared: frozenset[str]
    withheld: Mapping[str, str] = field(default_factory=dict)

    def statements(self, routes: Iterable[Route]) -> list[iam.PolicyStatement]:
        statements: list[iam.PolicyStatement] = []
        granted: set[str] = set()
        for route in routes:
            actions = route.pick(self.declared)
            undeclared = sorted(set(actions) - self.declared)
            if undeclared:
                raise PolicyMismatch(f"{self.owner}: {route.sid} grants {undeclared}, which no code it runs declares")
            if not actions:
                continue
            granted.update(actions)
            statements.append(
                iam.PolicyStatement(
                    sid=route.sid,
                    actions=actions,
                    resources=list(route.resources),
                    conditions=dict(route.conditions) if route.conditions else None,
                )
            )
        check(self.owner, self.declared, granted, self.withheld)
        return statements


def check(owner: str, declared: Collection[str], granted: Collection[str], withheld: Mapping[str, str]) -> None:
    """Granted == declared less withheld; what is withheld must be declared and must not be granted."""
    stale = sorted(set(withheld) - set(declared))
    if stale:
        raise PolicyMismatch(f"{owner}: withholds {stale}, which no code declares")
    missing = sorted(set(declared) - set(granted) - set(withheld))
    if missing:
        raise PolicyMismatch(f"{owner}: its code declares {missing}, which no statement grants")
    excess = sorted(set(granted) - set(declared))
    if excess:
        raise PolicyMismatch(f"{owner}: grants {excess}, which no code it runs declares")
    both = sorted(set(granted) & set(withheld))
    if both:
        raise PolicyMismatch(f"{owner}: both grants and withholds {both}")


def platform_statement(sid: str, actions: Iterable[str], resources: Sequence[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid=sid, actions=sorted(actions), resources=list(resources))


# The deployer's side: the CloudFormation execution role that `cdk bootstrap` makes creates, updates and deletes
# every resource of the stack. README.md (The IAM a deployer needs) shows this policy, generated by infra/readme.py;
# tests/infra/test_deployer_policy.py synthesises with each optional setting on and checks it covers the template.

# The CloudFormation namespace of each resource type the stack can hold, to its IAM service prefix.
DEPLOYER_SERVICES: Mapping[str, str] = {
    "Lambda": "lambda",
    "DynamoDB": "dynamodb",
    "KMS": "kms",
    "SNS": "sns",
    "SQS": "sqs",
    "Events": "events",
    "Scheduler": "scheduler",
    "StepFunctions": "states",
    "Logs": "logs",
    "SSM": "ssm",
    "CloudWatch": "cloudwatch",
    # Chat channels (slack_* or teams_* settings): Amazon Q Developer in chat applications, formerly AWS Chatbot.
    "Chatbot": "chatbot",
    # A whole organization (org_units): the spoke StackSet, and the bucket the organization run writes results to.
    "CloudFormation": "cloudformation",
    "S3": "s3",
}
# The roles CloudFormation names after the stack (STACK-LogicalId-random) and the one profile the stack names.
DEPLOYER_IAM_RESOURCES = ("role/{stack}-*", "instance-profile/{profile}")
# Creating a chat channel creates the service-linked role AWSServiceRoleForAWSChatbot on first use: the
# CloudFormation resource schemas of AWS::Chatbot::*ChannelConfiguration list iam:CreateServiceLinkedRole.
CHATBOT_SERVICE = "management.chatbot.amazonaws.com"
CHATBOT_SERVICE_LINKED_ROLE = f"role/aws-service-role/{CHATBOT_SERVICE}/AWSServiceRoleForAWSChatbot"
BOOTSTRAP_QUALIFIER = "hnb659fds"


def deployer_execution_policy(*, stack: str, profile: str) -> dict[str, Any]:
    """The bootstrap execution role's policy, with ACCOUNT and REGION for the reader to fill in."""
    iam_arn = "arn:aws:iam::ACCOUNT:{}".format
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TrainctlStackResources",
                "Effect": "Allow",
                "Action": [f"{prefix}:*" for prefix in DEPLOYER_SERVICES.values()],
                "Resource": "*",
            },
            {
                "Sid": "TrainctlRolesOnly",
                "Effect": "Allow",
                "Action": "iam:*",
                "Resource": [iam_arn(r.format(stack=stack, profile=profile)) for r in DEPLOYER_IAM_RESOURCES],
            },
            {
                "Sid": "ChatChannelsServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": iam_arn(CHATBOT_SERVICE_LINKED_ROLE),
                "Condition": {"StringEquals": {"iam:AWSServiceName": CHATBOT_SERVICE}},
            },
            {
                "Sid": "ReadTheAssets",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::cdk-{BOOTSTRAP_QUALIFIER}-assets-ACCOUNT-REGION/*",
            },
        ],
    }
