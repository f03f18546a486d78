"""What every trainctl state machine shares: Standard type, X-Ray, full logging to its own encrypted group, a
timeout, and a role whose policy is built from the definition's own tasks.

CDK would add an unconditioned statement per task (`iam_resources`, no conditions). The state machine is given its
role with policy updates switched off, so none of those reach the template; the role holds instead the platform
statements (infra.policy.STATE_MACHINE_PLATFORM), the Deny on persistent resources, and the statements that the
construct's routes make of the actions its tasks call (`task_actions`) and those IAM requires of them implicitly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.permissions import never_destroy_persistent
from infra.policy import STATE_MACHINE_PLATFORM, DeclaredPolicy, Route, platform_statement

_SDK_TASK = re.compile(r":states:::aws-sdk:(?P<service>[a-z0-9]+):(?P<action>[A-Za-z0-9]+)$")
_LAMBDA_TASK = re.compile(r"(:states:::lambda:invoke|^arn:aws[a-z-]*:lambda:[^:]*:[^:]*:function:[^:]+)$")


def action_of(resource: str) -> str | None:
    """The IAM action a Task's Resource calls: aws-sdk:ec2:runInstances -> ec2:RunInstances."""
    if found := _SDK_TASK.search(resource):
        action = found["action"]
        return f"{found['service']}:{action[0].upper()}{action[1:]}"
    if _LAMBDA_TASK.search(resource):
        return "lambda:InvokeFunction"
    return None


def implied_by(action: str, parameters: Mapping[str, Any]) -> set[str]:
    """What IAM also authorises for a call with these parameters."""
    implied = set()
    if {"TagSpecifications", "TagSpecifications.$"} & set(parameters):
        implied.add("ec2:CreateTags")  # tags at creation are authorised as CreateTags with ec2:CreateAction
    if action == "ec2:RunInstances" and {"IamInstanceProfile", "LaunchTemplate", "LaunchTemplate.$"} & set(parameters):
        implied.add("iam:PassRole")  # the instance profile's role is passed to EC2 (a template may name one)
    if action == "sns:Publish":
        implied |= {"kms:GenerateDataKey", "kms:Decrypt"}  # trainctl's topic is encrypted with its key
    return implied


def task_actions(states: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every action the Task states call, and what IAM requires of those calls implicitly."""
    actions: set[str] = set()
    for state in states:
        if state.get("Type") != "Task" or not isinstance(state.get("Resource"), str):
            continue
        action = action_of(state["Resource"])
        if action is None:
            raise ValueError(f"a Task calls {state['Resource']!r}, which trainctl cannot map to an IAM action")
        actions.add(action)
        actions |= implied_by(action, state.get("Parameters") or {})
    return actions


def _rendered(start: sfn.IChainable) -> list[dict[str, Any]]:
    """Every state reachable from `start`, as its ASL; a Resource made of tokens as text, tokens as `*`."""
    reachable = sfn.State.find_reachable_states(start.start_state, include_error_handlers=True)
    stack = cdk.Stack.of(start.start_state)
    functions = {
        str(stack.resolve(stack.get_logical_id(c))) for c in stack.node.find_all() if isinstance(c, lambda_.CfnFunction)
    }
    rendered = []
    for state in reachable:
        asl = dict(state.to_state_json())
        if "Resource" in asl:
            asl["Resource"] = _text(stack.resolve(asl["Resource"]), functions)
        rendered.append(asl)
    return rendered


def _text(value: Any, functions: set[str]) -> str:
    """A resolved Resource as text: joins joined, a function's Arn attribute as a function ARN, else `*`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_text(part, functions) for part in parts)
    if isinstance(value, dict) and value.get("Fn::GetAtt", [None])[0] in functions:
        return f"arn:aws:lambda:*:*:function:{value['Fn::GetAtt'][0]}"
    return "*"


def state_machine(
    scope: Construct,
    *,
    name: str,
    start: sfn.IChainable,
    timeout: cdk.Duration,
    log_retention: logs.RetentionDays,
    key: kms.IKey,
    routes: Iterable[Route],
    withheld: Mapping[str, str] | None = None,
    detaches_persistent: bool = False,
) -> tuple[sfn.StateMachine, iam.Role, logs.LogGroup]:
    log_group = logs.LogGroup(
        scope, "Logs", retention=log_retention, encryption_key=key, removal_policy=cdk.RemovalPolicy.DESTROY
    )
    role = iam.Role(scope, "StateMachineRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"))
    declared = frozenset(task_actions(_rendered(start)))
    machine = sfn.StateMachine(
        scope,
        "StateMachine",
        state_machine_name=name,
        state_machine_type=sfn.StateMachineType.STANDARD,
        definition_body=sfn.DefinitionBody.from_chainable(start),
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
        role=role.without_policy_updates(),
    )
    # The role's policy must exist before the state machine, as CDK's own would.
    machine.node.add_dependency(role)
    logs_actions = [a for a in STATE_MACHINE_PLATFORM if a.startswith("logs:")]
    xray_actions = [a for a in STATE_MACHINE_PLATFORM if a.startswith("xray:")]
    # Log delivery and X-Ray take no resource ARNs (AWS documents "*" for both).
    role.add_to_policy(platform_statement("DeliverExecutionLogs", logs_actions, ["*"]))
    role.add_to_policy(platform_statement("TraceExecutions", xray_actions, ["*"]))
    role.add_to_policy(never_destroy_persistent(except_detach=detaches_persistent))
    for statement in DeclaredPolicy(name, declared, dict(withheld or {})).statements(routes):
        role.add_to_policy(statement)
    return machine, role, log_group
