"""The organization's cost run as the stack synthesises it, under moto's Step Functions interpreter: the plan asks
for cost, the DISTRIBUTED Map prices each covered account in a child (dispatched in-process to
functions/organization_sweep), and the total step (functions/organization_plan) sums the children's results kept
in the ledger under the run, naming the account it could not reach.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import botocore.handlers
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from infra.organization import COST_STATE_MACHINE_NAME
from tests.infra.conftest import synth
from tests.integration.test_organization_workflow import HUB_CONTEXT, RESULTS_BUCKET, SPOKE_ROLE, TRUST, in_account
from trainctl.aws import state_machines as workflows
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.local_lambda import forget_finished_workers, lambda_tasks_in_process
from trainctl.core import names, tags

REGION = "us-east-1"


@pytest.fixture(scope="module")
def definition(tmp_path_factory: pytest.TempPathFactory) -> str:
    template = synth(tmp_path_factory.mktemp("organization-cost"), {"trainctl": HUB_CONTEXT})
    resources = template["Resources"]
    [machine] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
        and r["Properties"]["StateMachineName"] == COST_STATE_MACHINE_NAME
    ]
    attributes = {}
    for logical_id, resource in resources.items():
        description = resource.get("Properties", {}).get("Description", "")
        if resource["Type"] == "AWS::Lambda::Function" and description.startswith("trainctl organization run"):
            folder = "organization_sweep" if "sweep one account" in description else "organization_plan"
            attributes[f"{logical_id}.Arn"] = workflows.lambda_arn(f"trainctl-{folder}")
    [bucket] = [k for k, r in resources.items() if r["Type"] == "AWS::S3::Bucket"]
    parts = [
        RESULTS_BUCKET if part == {"Ref": bucket} else part
        for part in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    ]
    text = workflows.resolve_definition({"Fn::Join": ["", parts]}, attributes)
    # moto's ASL grammar takes ToleratedFailurePercentage only as a decimal (test_organization_workflow says why).
    return re.sub(r'"ToleratedFailurePercentage":(\d+)([,}])', r'"ToleratedFailurePercentage":\1.0\2', text)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        factory = ClientFactory(REGION)
        stack_resources.ensure_on_emulator(factory, (REGION,))
        factory.client("s3", REGION).create_bucket(Bucket=RESULTS_BUCKET)
        yield factory


def trainer(member: ClientFactory, owner: str) -> None:
    member.ec2(REGION).run_instances(
        ImageId="ami-0abcdef1234567890",
        InstanceType="g5.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": tags.OWNER, "Value": owner}]}],
    )


def test_the_synthesised_cost_run_prices_each_covered_account_and_sums_them_naming_the_unreachable(
    hub: ClientFactory, definition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = hub.client("organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    research = org.create_organizational_unit(ParentId=root, Name="research")["OrganizationalUnit"]["Id"]
    accounts = {}
    for name in ("alice", "bob", "xavier"):
        made = org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=made, SourceParentId=root, DestinationParentId=research)
        accounts[name] = str(made)
    for name in ("alice", "xavier"):
        member = in_account(hub, accounts[name])
        member.client("iam").create_role(RoleName=SPOKE_ROLE, AssumeRolePolicyDocument=TRUST)
        trainer(member, "ana")

    def refuse_missing(params: dict[str, Any], **_: Any) -> None:
        # bob has no spoke role (the StackSet has not reached him): IAM refuses, as moto's STS would not.
        if f":{accounts['bob']}:" in str(params["RoleArn"]):
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    # Every session from here on, the in-process children's included (botocore reads the list per session).
    hooked = [*botocore.handlers.BUILTIN_HANDLERS, ("before-parameter-build.sts.AssumeRole", refuse_missing)]
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", hooked)
    sfn = hub.client("stepfunctions", REGION)
    machine = sfn.create_state_machine(
        name=COST_STATE_MACHINE_NAME,
        definition=definition,
        roleArn=f"arn:aws:iam::{workflows.EMULATOR_ACCOUNT}:role/organization-cost",
    )["stateMachineArn"]
    environment = {
        "TRAINCTL_REGIONS": REGION,
        "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
        "TRAINCTL_PRICE_TABLE": names.PRICE_TABLE,
        "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
        "TRAINCTL_ORG_UNITS": research,
        "TRAINCTL_ORG_EXCLUDE_ACCOUNTS": accounts["xavier"],
        "TRAINCTL_ORG_SPOKE_ROLE": SPOKE_ROLE,
    }
    forget_finished_workers()
    outputs: list[dict[str, Any]] = []
    with lambda_tasks_in_process(environment) as lambdas:
        dispatch = lambdas.invoke

        def recorded(**call: Any) -> dict[str, Any]:
            answer = dispatch(**call)
            outputs.append(json.loads(answer["Payload"].getvalue()))
            answer["Payload"].seek(0)
            return answer

        lambdas.invoke = recorded  # type: ignore[method-assign]
        execution = sfn.start_execution(
            stateMachineArn=machine,
            name=f"cost-{uuid.uuid4().hex}",
            input=json.dumps({"task": "organization_plan", "capability": "cost"}),
        )["executionArn"]
        deadline = time.monotonic() + 120
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the cost run did not finish"
            time.sleep(0.2)
    assert described["status"] == "SUCCEEDED", described

    # Plan, one child per covered account (never the deny-listed one), then the total.
    assert sorted(lambdas.invocations) == [*["organization_plan"] * 2, *["organization_sweep"] * 2]
    total = json.loads(described["output"])
    assert set(total["accounts"]) == {accounts["alice"], accounts["bob"]}
    assert total["accounts"][accounts["alice"]]["hourly_usd"] > 1.0  # a g5.xlarge and its root volume
    assert total["hourly_usd"] == total["accounts"][accounts["alice"]]["hourly_usd"]
    assert total["excludes"] == [accounts["bob"]]
    assert total["excluded"] == {accounts["xavier"]: "deny-listed"}
    assert set(total["owners"]["ana"]["accounts"]) == {accounts["alice"]}
