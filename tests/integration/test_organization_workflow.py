"""The organization run as the stack synthesises it (issue 29, part 2), under moto's Step Functions interpreter:
the plan task, then the DISTRIBUTED Map with one child per account and region, each child's Lambda task
dispatched in-process to functions/organization_sweep, and the results written to S3 by the ResultWriter.

moto serves Organizations and several accounts: credentials from an assumed role act in that role's account.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from moto import mock_aws

from infra.organization import RESULTS_PREFIX, STATE_MACHINE_NAME
from tests.infra.conftest import synth
from trainctl.aws import state_machines as workflows
from trainctl.aws.clients import ClientFactory, Credentials
from trainctl.cli import stack_resources
from trainctl.cli.local_lambda import forget_finished_workers, lambda_tasks_in_process
from trainctl.core import names, tags
from trainctl.core.clock import format_instant, system_clock

REGION = "us-east-1"
SPOKE_ROLE = "trainctl-spoke"
RESULTS_BUCKET = "trainctl-organization-results"
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}'
# The hub's settings as cdk.json would hold them; the units' ids only shape the template, not the definition.
HUB_CONTEXT = {
    "dry_run": True,
    "regions": [REGION],
    "org_id": "o-a1b2c3d4e5",
    "org_units": ["ou-ab12-cd34ef56"],
    "org_max_concurrency": 3,
}


@pytest.fixture(scope="module")
def definition(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The organization run's definition from the synthesised template, its functions named for the dispatcher."""
    template = synth(tmp_path_factory.mktemp("organization"), {"trainctl": HUB_CONTEXT})
    resources = template["Resources"]
    [machine] = [
        r
        for r in resources.values()
        if r["Type"] == "AWS::StepFunctions::StateMachine" and r["Properties"]["StateMachineName"] == STATE_MACHINE_NAME
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
    # moto's ASL grammar takes ToleratedFailurePercentage only as a decimal (its NUMBER token; 10 lexes as INT),
    # where Step Functions takes any number: the same value, written 10.0 for the interpreter.
    return re.sub(r'"ToleratedFailurePercentage":(\d+)([,}])', r'"ToleratedFailurePercentage":\1.0\2', text)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        factory = ClientFactory(REGION)
        stack_resources.ensure_on_emulator(factory, (REGION,))
        factory.client("s3", REGION).create_bucket(Bucket=RESULTS_BUCKET)
        yield factory


def in_account(hub: ClientFactory, account: str) -> ClientFactory:
    answer = hub.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="set-up"
    )["Credentials"]
    return ClientFactory(
        REGION, credentials=Credentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
    )


def forgotten_volume(member: ClientFactory) -> str:
    created = format_instant(system_clock() - timedelta(days=2))
    volume = member.ec2(REGION).create_volume(
        AvailabilityZone=f"{REGION}a",
        Size=10,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [
                    {"Key": tags.MANAGED, "Value": "true"},
                    {"Key": tags.OWNER, "Value": "ana"},
                    {"Key": tags.CREATED_AT, "Value": created},
                ],
            }
        ],
    )
    return str(volume["VolumeId"])


def test_the_synthesised_distributed_map_sweeps_each_covered_account_and_writes_its_results(
    hub: ClientFactory, definition: str
) -> None:
    org = hub.client("organizations")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    research = org.create_organizational_unit(ParentId=root, Name="research")["OrganizationalUnit"]["Id"]
    sandbox = org.create_organizational_unit(ParentId=root, Name="sandbox")["OrganizationalUnit"]["Id"]
    accounts = {}
    for name, unit in (("alice", research), ("bob", research), ("xavier", research), ("dave", sandbox)):
        made = org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=made, SourceParentId=root, DestinationParentId=unit)
        accounts[name] = str(made)
    volumes = {}
    for name, account in accounts.items():
        member = in_account(hub, account)
        member.client("iam").create_role(RoleName=SPOKE_ROLE, AssumeRolePolicyDocument=TRUST)
        volumes[name] = forgotten_volume(member)

    sfn = hub.client("stepfunctions", REGION)
    machine = sfn.create_state_machine(
        name=STATE_MACHINE_NAME,
        definition=definition,
        roleArn=f"arn:aws:iam::{workflows.EMULATOR_ACCOUNT}:role/organization-run",
    )["stateMachineArn"]
    environment = {
        "TRAINCTL_REGIONS": REGION,
        "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
        "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
        "TRAINCTL_DRY_RUN": "false",
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
            stateMachineArn=machine, name=f"run-{uuid.uuid4().hex}", input=json.dumps({"task": "organization_plan"})
        )["executionArn"]
        deadline = time.monotonic() + 120
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the organization run did not finish"
            time.sleep(0.2)
    assert described["status"] == "SUCCEEDED", described

    # One plan, then one child per covered account and region: the deny-listed and uncovered ones never run.
    assert lambdas.invocations.count("organization_plan") == 1
    assert sorted(lambdas.invocations) == ["organization_plan", "organization_sweep", "organization_sweep"]

    # The ResultWriter wrote the Map Run's manifest under the run's prefix (moto lists no result files in it,
    # and gives ToleratedFailurePercentage no effect: both are Step Functions' own, untested here).
    s3 = hub.client("s3", REGION)
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket=RESULTS_BUCKET).get("Contents", [])]
    assert key.startswith(f"{RESULTS_PREFIX}/") and key.endswith("/manifest.json")
    manifest = json.loads(s3.get_object(Bucket=RESULTS_BUCKET, Key=key)["Body"].read())
    assert manifest["MapRunArn"].split(":")[-2].endswith(f"{STATE_MACHINE_NAME}/EveryAccountRegion")

    swept = {r["account"]: r for r in outputs if "account" in r}
    assert set(swept) == {accounts["alice"], accounts["bob"]}
    for name in ("alice", "bob"):
        # Each account's first sweep is a dry-run report, found its own forgotten volume, and wrote nothing.
        assert swept[accounts[name]]["outcome"] == "done" and swept[accounts[name]]["dry_run"] is True
        assert swept[accounts[name]]["summary"]["candidates"] == 1
    for name, account in accounts.items():
        found = (
            in_account(hub, account)
            .ec2(REGION)
            .describe_tags(Filters=[{"Name": "resource-id", "Values": [volumes[name]]}])["Tags"]
        )
        assert tags.CLEANUP_AFTER not in {t["Key"] for t in found}, name
