"""The stack's stateful resources, as the stack names them: found from its outputs, or made on an emulator."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from trainctl import documents
from trainctl.aws import ClientFactory, access_error, error_code

STACK_NAME = "Trainctl"
LEDGER_TABLE = "trainctl-ledger"
SWEEP_TOPIC = "trainctl-sweep"
TRAINING_DOCUMENT = "trainctl-training-check"
PRICE_TABLE = "trainctl-prices"

OUTPUT_LEDGER_TABLE = "LedgerTableName"
OUTPUT_TOPIC_ARN = "SweepTopicArn"
OUTPUT_TRAINING_DOCUMENT = "TrainingCheckDocumentName"
OUTPUT_PRICE_TABLE = "PriceTableName"


@dataclass(frozen=True)
class StackResources:
    ledger_table: str
    topic_arn: str
    training_document: str
    origin: str  # "emulator" or "stack"
    price_table: str = PRICE_TABLE


def is_emulator(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("AWS_ENDPOINT_URL"))


def ensure_on_emulator(factory: ClientFactory, regions: tuple[str, ...]) -> StackResources:
    """Create what the stack would own, where missing; safe to call on every command."""
    _ensure_table(factory, LEDGER_TABLE, with_sort_key=True)
    _ensure_table(factory, PRICE_TABLE, with_sort_key=False)
    topic_arn = factory.sns().create_topic(Name=SWEEP_TOPIC)["TopicArn"]  # idempotent by name
    content = json.dumps(documents.load(documents.TRAINING_CHECK))
    for region in regions:
        ssm = factory.ssm(region)
        try:
            ssm.describe_document(Name=TRAINING_DOCUMENT)
        except ClientError as exc:
            if error_code(exc) != "InvalidDocument":
                raise access_error("DescribeDocument", exc) from exc
            ssm.create_document(Name=TRAINING_DOCUMENT, Content=content, DocumentType="Command", DocumentFormat="JSON")
    return StackResources(LEDGER_TABLE, topic_arn, TRAINING_DOCUMENT, origin="emulator")


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
        )
    except KeyError:
        return None


def resolve(factory: ClientFactory, environ: Mapping[str, str], regions: tuple[str, ...]) -> StackResources | None:
    if is_emulator(environ):
        return ensure_on_emulator(factory, regions)
    return find_deployed(factory)
