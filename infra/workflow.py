"""What every trainctl state machine shares: Standard type, X-Ray, full logging to its own group, a timeout."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct


def state_machine(
    scope: Construct,
    *,
    name: str,
    start: sfn.IChainable,
    timeout: cdk.Duration,
    log_retention: logs.RetentionDays,
) -> tuple[sfn.StateMachine, iam.Role, logs.LogGroup]:
    log_group = logs.LogGroup(scope, "Logs", retention=log_retention, removal_policy=cdk.RemovalPolicy.DESTROY)
    machine = sfn.StateMachine(
        scope,
        "StateMachine",
        state_machine_name=name,
        state_machine_type=sfn.StateMachineType.STANDARD,
        definition_body=sfn.DefinitionBody.from_chainable(start),
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
    )
    role = machine.role
    assert isinstance(role, iam.Role)  # CDK made it; the stack adds statements and acknowledgments to it
    return machine, role, log_group
