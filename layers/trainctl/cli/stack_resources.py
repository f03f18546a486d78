"""The stack's stateful resources, as the stack names them: found from its outputs, or made on an emulator."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from trainctl.aws import ssm_documents as documents
from trainctl.aws import state_machines as workflows
from trainctl.aws.clients import ClientFactory, access_error, error_code
from trainctl.core.names import (
    LEDGER_TABLE,
    LOCAL_CACHE_DOCUMENT,
    OUTPUT_LEDGER_TABLE,
    OUTPUT_PREWARM_STATE_MACHINE,
    OUTPUT_PRICE_TABLE,
    OUTPUT_RECOVERY_STATE_MACHINE,
    OUTPUT_TOPIC_ARN,
    OUTPUT_TRAINING_DOCUMENT,
    PREWARM_DOCUMENT,
    PREWARM_PROFILE,
    PREWARM_STATE_MACHINE,
    PRICE_TABLE,
    RECOVERY_STATE_MACHINE,
    SPOT_DOCUMENT,
    STACK_NAME,
    SWEEP_TOPIC,
    TRAINING_DOCUMENT,
    TRANSFER_DOCUMENT,
)
from trainctl.core.permissions import needs

# The command line's: find the deployed stack, or make its stateful resources on an emulator.
PERMISSIONS = needs(
    "cloudformation:DescribeStacks",
    "dynamodb:CreateTable",
    "dynamodb:DescribeTable",
    "iam:CreateRole",
    "iam:CreateInstanceProfile",
    "iam:AddRoleToInstanceProfile",
    "iam:GetInstanceProfile",
    "sns:CreateTopic",
    "ssm:CreateDocument",
    "ssm:DescribeDocument",
    "states:CreateStateMachine",
    "states:ListStateMachines",
)

DOCUMENTS = {
    TRAINING_DOCUMENT: documents.TRAINING_CHECK,
    SPOT_DOCUMENT: documents.SPOT_CHECKPOINT,
    PREWARM_DOCUMENT: documents.PREWARM,
    TRANSFER_DOCUMENT: documents.TRANSFER,
    LOCAL_CACHE_DOCUMENT: documents.LOCAL_CACHE,
}


@dataclass(frozen=True)
class StackResources:
    ledger_table: str
    topic_arn: str
    training_document: str
    origin: str  # "emulator" or "stack"
    price_table: str = PRICE_TABLE
    recovery_state_machine: str | None = None
    prewarm_state_machine: str | None = None
    prewarm_instance_profile: str | None = None


def is_emulator(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("AWS_ENDPOINT_URL"))


def ensure_on_emulator(factory: ClientFactory, regions: tuple[str, ...]) -> StackResources:
    """Create what the stack would own, where missing; safe to call on every command."""
    _ensure_table(factory, LEDGER_TABLE, with_sort_key=True)
    _ensure_table(factory, PRICE_TABLE, with_sort_key=False)
    topic_arn = factory.sns().create_topic(Name=SWEEP_TOPIC)["TopicArn"]  # idempotent by name
    for region in regions:
        ssm = factory.ssm(region)
        for name, document in DOCUMENTS.items():
            try:
                ssm.describe_document(Name=name)
            except ClientError as exc:
                if error_code(exc) != "InvalidDocument":
                    raise access_error("DescribeDocument", exc) from exc
                content = json.dumps(documents.load(document))
                ssm.create_document(Name=name, Content=content, DocumentType="Command", DocumentFormat="JSON")
    recovery = _ensure_state_machine(factory, RECOVERY_STATE_MACHINE, workflows.SPOT_RECOVERY)
    prewarm = _ensure_state_machine(factory, PREWARM_STATE_MACHINE, workflows.PREWARM)
    return StackResources(
        LEDGER_TABLE,
        topic_arn,
        TRAINING_DOCUMENT,
        origin="emulator",
        recovery_state_machine=recovery,
        prewarm_state_machine=prewarm,
        prewarm_instance_profile=ensure_instance_profile(factory, PREWARM_PROFILE),
    )


def ensure_instance_profile(factory: ClientFactory, name: str) -> str:
    """The instance profile's ARN, made (with its role) where missing."""
    iam = factory.client("iam")
    try:
        return str(iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"])
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise access_error("GetInstanceProfile", exc) from exc
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return str(profile["Arn"])


def _ensure_state_machine(factory: ClientFactory, name: str, workflow: str) -> str:
    """The exact definition the stack synthesises, created once; an emulator takes any role."""
    sfn = factory.client("stepfunctions")
    for machine in sfn.list_state_machines().get("stateMachines", []):
        if machine["name"] == name:
            return str(machine["stateMachineArn"])
    created = sfn.create_state_machine(
        name=name,
        definition=workflows.load(workflow),
        roleArn=f"arn:aws:iam::{workflows.EMULATOR_ACCOUNT}:role/{name}",
        type="STANDARD",
    )
    return str(created["stateMachineArn"])


def _ensure_table(factory: ClientFactory, name: str, *, with_sort_key: bool) -> None:
    dynamodb = factory.dynamodb()
    try:
        dynamodb.describe_table(TableName=name)
        return
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise access_error("DescribeTable", exc) from exc
    attributes: list[Any] = [{"AttributeName": "pk", "AttributeType": "S"}]
    keys: list[Any] = [{"AttributeName": "pk", "KeyType": "HASH"}]
    if with_sort_key:
        attributes.append({"AttributeName": "sk", "AttributeType": "S"})
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
    dynamodb.create_table(
        TableName=name, AttributeDefinitions=attributes, KeySchema=keys, BillingMode="PAY_PER_REQUEST"
    )


def find_deployed(factory: ClientFactory) -> StackResources | None:
    """The deployed stack's resources from its outputs; None when the stack is not there."""
    try:
        stacks = factory.cloudformation().describe_stacks(StackName=STACK_NAME)["Stacks"]
    except ClientError as exc:
        if error_code(exc) == "ValidationError":
            return None
        raise access_error("DescribeStacks", exc) from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    try:
        return StackResources(
            outputs[OUTPUT_LEDGER_TABLE],
            outputs[OUTPUT_TOPIC_ARN],
            outputs[OUTPUT_TRAINING_DOCUMENT],
            origin="stack",
            price_table=outputs[OUTPUT_PRICE_TABLE],
            recovery_state_machine=outputs.get(OUTPUT_RECOVERY_STATE_MACHINE),
            prewarm_state_machine=outputs.get(OUTPUT_PREWARM_STATE_MACHINE),
        )
    except KeyError:
        return None


def resolve(factory: ClientFactory, environ: Mapping[str, str], regions: tuple[str, ...]) -> StackResources | None:
    if is_emulator(environ):
        return ensure_on_emulator(factory, regions)
    return find_deployed(factory)
