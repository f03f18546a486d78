"""Events a member account forwards to the hub's organization bus (issue 29, item 4), under moto with several accounts.

Credentials from an assumed role act in that role's account; each member holds the spoke role and the checkpoint
document as the StackSet would. The hub's records of its organization run are written through AccountRecords, as a
child writes them. moto's STS assumes any role, even one that does not exist: `assumed` refuses one the account does
not hold, as IAM would, and lists every account assumed.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.iam.models import iam_backends

from tests.conftest import load_event
from tests.integration.fleet import messages
from trainctl.aws import ssm_documents as documents
from trainctl.aws.clients import ClientFactory, Credentials
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names, tags
from trainctl.core.clock import format_instant
from trainctl.organization.record import AccountRecords, AccountRun
from trainctl.organization.spoke import SpokeUnreachable

REGION = "us-east-1"
SPOKE_ROLE = "trainctl-spoke"
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}'
WARNED_AT = datetime(2026, 11, 28, 8, 22, tzinfo=UTC)


@dataclass
class Accounts:
    hub: str
    research: str
    alice: str  # research, onboarded and enforced
    bob: str  # research, onboarded and enforced; its spoke role will answer from alice
    carol: str  # research, swept once as its first dry-run, never completed: not onboarded
    xavier: str  # research, deny-listed
    dave: str  # sandbox: never covered, never swept
    instances: dict[str, str]  # account -> its spot trainer
    queue_url: str
    topic_arn: str


def in_account(account: str) -> ClientFactory:
    """Clients acting in a member account, as the test's own set-up (not trainctl's spoke path, nor its hooks)."""
    answer = (
        ClientFactory(REGION)
        .client("sts")
        .assume_role(RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="set-up")
    )["Credentials"]
    return ClientFactory(
        REGION, credentials=Credentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
    )


def spot_trainer(member: ClientFactory) -> str:
    instance = member.ec2(REGION).run_instances(
        ImageId="ami-0abcdef1234567890",
        InstanceType="g5.xlarge",
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": f"{REGION}a"},
        InstanceMarketOptions={"MarketType": "spot"},
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100, "DeleteOnTermination": True}}],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "ana"}],
            }
        ],
    )["Instances"][0]
    return str(instance["InstanceId"])


def swept(records: AccountRecords, account: str, *, dry_run: bool, outcome: str = "done") -> None:
    """What a child of the organization run records: its run, and (a completed dry-run) the account onboarded."""
    run = AccountRun(account, REGION, WARNED_AT - timedelta(hours=1), f"s-{account[-4:]}", dry_run, outcome)
    records.record_run(run, {})


@pytest.fixture
def accounts(factory: ClientFactory) -> Accounts:
    org = factory.client("organizations")
    hub = org.create_organization(FeatureSet="ALL")["Organization"]["MasterAccountId"]
    root = org.list_roots()["Roots"][0]["Id"]
    research = org.create_organizational_unit(ParentId=root, Name="research")["OrganizationalUnit"]["Id"]
    sandbox = org.create_organizational_unit(ParentId=root, Name="sandbox")["OrganizationalUnit"]["Id"]

    def member(name: str, unit: str) -> str:
        made = org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=made, SourceParentId=root, DestinationParentId=unit)
        return str(made)

    ids = {name: member(name, research) for name in ("alice", "bob", "carol", "xavier")}
    ids["dave"] = member("dave", sandbox)
    instances = {}
    for account in ids.values():
        clients = in_account(account)
        clients.client("iam").create_role(RoleName=SPOKE_ROLE, AssumeRolePolicyDocument=TRUST)
        clients.ssm(REGION).create_document(
            Name=names.SPOT_DOCUMENT,
            Content=json.dumps(documents.load(documents.SPOT_CHECKPOINT)),
            DocumentType="Command",
            DocumentFormat="JSON",
        )
        instances[account] = spot_trainer(clients)
    resources = stack_resources.ensure_on_emulator(factory, (REGION,))
    sqs = factory.client("sqs", REGION)
    queue_url = sqs.create_queue(QueueName="owners")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    factory.sns().subscribe(TopicArn=resources.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    records = AccountRecords(factory.dynamodb(), names.LEDGER_TABLE)
    for name in ("alice", "bob"):
        swept(records, ids[name], dry_run=True)
        swept(records, ids[name], dry_run=False)
    swept(records, ids["carol"], dry_run=True, outcome="failed")
    return Accounts(
        hub=str(hub),
        research=str(research),
        **ids,
        instances=instances,
        queue_url=queue_url,
        topic_arn=resources.topic_arn,
    )


@pytest.fixture
def assumed(factory: ClientFactory) -> Iterator[list[str]]:
    """AssumeRole into a role the account does not hold is refused, as IAM refuses it; returns who was assumed."""
    seen: list[str] = []

    def refuse_missing(params: dict[str, Any], **_: Any) -> None:
        arn = str(params["RoleArn"])
        account, role = arn.split(":")[4], arn.rsplit("/", 1)[1]
        seen.append(account)
        if role not in {r.name for r in iam_backends[account]["global"].roles.values()}:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    factory.register("before-parameter-build.sts.AssumeRole", refuse_missing)
    yield seen


def organization_environment(monkeypatch: pytest.MonkeyPatch, accounts: Accounts) -> None:
    monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
    monkeypatch.setenv("TRAINCTL_LEDGER_TABLE", names.LEDGER_TABLE)
    monkeypatch.setenv("TRAINCTL_TOPIC_ARN", accounts.topic_arn)
    monkeypatch.setenv("TRAINCTL_ORG_UNITS", accounts.research)
    monkeypatch.setenv("TRAINCTL_ORG_EXCLUDE_ACCOUNTS", f"{accounts.xavier},{accounts.hub}")
    monkeypatch.setenv("TRAINCTL_ORG_ENFORCE_UNITS", accounts.research)
    monkeypatch.setenv("TRAINCTL_ORG_SPOKE_ROLE", SPOKE_ROLE)


@pytest.fixture
def spot(factory: ClientFactory, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    organization_environment(monkeypatch, accounts)
    monkeypatch.setenv("TRAINCTL_SPOT_CHECKPOINT_WAIT", "0s")
    module = load_handler("spot_interruption")
    monkeypatch.setattr(module, "client_factory", lambda: factory)
    module.clock = lambda: WARNED_AT + timedelta(seconds=5)
    module.sleep = lambda _: None
    return module


@pytest.fixture
def age_guard(factory: ClientFactory, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    organization_environment(monkeypatch, accounts)
    monkeypatch.setenv("TRAINCTL_ACCOUNT_ID", accounts.hub)
    module = load_handler("age_guard")
    monkeypatch.setattr(module, "client_factory", lambda: factory)
    return module


def warning(account: str, instance_id: str) -> dict[str, Any]:
    event: dict[str, Any] = load_event("spot_interruption", "warning")
    event = json.loads(json.dumps(event).replace("i-0000000000000000a", instance_id).replace("123456789012", account))
    event["time"] = format_instant(WARNED_AT)
    return event


def spot_snapshots(clients: ClientFactory) -> list[dict[str, Any]]:
    found = clients.ec2(REGION).describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return [s for s in found if any(t["Key"] == tags.SPOT_INSTANCE for t in s.get("Tags", []))]


def ledger_items(factory: ClientFactory) -> list[dict[str, Any]]:
    return list(factory.dynamodb().scan(TableName=names.LEDGER_TABLE)["Items"])


def invoke(handler: types.ModuleType, event: dict[str, Any], name: str) -> dict[str, Any]:
    result: dict[str, Any] = handler.lambda_handler(event, LocalContext(function_name=name))
    return result


def test_a_covered_members_warning_is_handled_in_the_member_and_recorded_under_its_account(
    factory: ClientFactory, accounts: Accounts, spot: types.ModuleType, assumed: list[str]
) -> None:
    alice = accounts.alice
    result = invoke(spot, warning(alice, accounts.instances[alice]), "trainctl-spot_interruption")
    assert result["status"] == "handled" and result["account"] == alice and result["why_dry_run"] is None
    assert [s["step"] for s in result["steps"] if s["outcome"] == "done"] == [
        "checkpoint-command",
        "snapshot",
        "ledger",
        "notify",
    ]
    [snapshot] = spot_snapshots(in_account(alice))
    assert snapshot["SnapshotId"] == result["snapshots"][0]["snapshot_id"]
    assert spot_snapshots(factory) == []  # nothing in the hub
    assert assumed == [alice]
    # The interruption's record is the hub's, under alice's account.
    [record] = [i for i in ledger_items(factory) if i["pk"]["S"] == f"spot#{accounts.instances[alice]}"]
    assert record["account"] == {"S": alice}
    [notice] = messages(factory, accounts.queue_url)
    assert notice["Subject"].startswith(f"[account {alice}] trainctl spot warning")
    assert notice["MessageAttributes"]["account"]["Value"] == alice


@pytest.mark.parametrize(("who", "why"), [("dave", "not-covered"), ("xavier", "deny-listed")])
def test_an_uncovered_or_deny_listed_members_warning_is_refused_and_nothing_is_written_anywhere(
    factory: ClientFactory, accounts: Accounts, spot: types.ModuleType, assumed: list[str], who: str, why: str
) -> None:
    account = getattr(accounts, who)
    before = ledger_items(factory)
    result = invoke(spot, warning(account, accounts.instances[account]), "trainctl-spot_interruption")
    assert result["status"] == "refused"
    assert result["reason"] == f"forwarded event refused: account {account} ({why})"
    assert ledger_items(factory) == before  # not even the idempotency record
    assert assumed == []
    assert spot_snapshots(in_account(account)) == [] and spot_snapshots(factory) == []
    assert messages(factory, accounts.queue_url) == []


def test_an_account_id_of_the_wrong_shape_is_refused_without_naming_it(
    factory: ClientFactory, accounts: Accounts, spot: types.ModuleType, assumed: list[str]
) -> None:
    event = warning(accounts.alice, accounts.instances[accounts.alice])
    event["account"] = "$(id)\nforged"
    result = invoke(spot, event, "trainctl-spot_interruption")
    assert result["reason"] == "forwarded event refused: an account id of the wrong shape (not-an-account-id)"
    assert "$(id)" not in json.dumps(result) and assumed == []


def test_a_spoke_role_answering_from_another_account_is_that_accounts_error_and_nothing_acts(
    factory: ClientFactory, accounts: Accounts, spot: types.ModuleType
) -> None:
    bob, alice = accounts.bob, accounts.alice

    def answer_from_alice(params: dict[str, Any], **_: Any) -> None:
        if f":{bob}:" in str(params["RoleArn"]):
            params["RoleArn"] = f"arn:aws:iam::{alice}:role/{SPOKE_ROLE}"

    factory.register("before-parameter-build.sts.AssumeRole", answer_from_alice)
    with pytest.raises(SpokeUnreachable, match=f"^account {bob}: its spoke role answered from another account"):
        invoke(spot, warning(bob, accounts.instances[bob]), "trainctl-spot_interruption")
    for clients in (in_account(alice), in_account(bob), factory):
        assert spot_snapshots(clients) == []
    assert messages(factory, accounts.queue_url) == []


def test_a_member_still_in_its_first_dry_run_is_told_and_nothing_is_written_in_it(
    factory: ClientFactory, accounts: Accounts, spot: types.ModuleType, assumed: list[str]
) -> None:
    carol = accounts.carol
    sent: list[str] = []
    factory.register("before-call.ssm.SendCommand", lambda **_: sent.append("SendCommand"))
    result = invoke(spot, warning(carol, accounts.instances[carol]), "trainctl-spot_interruption")
    assert result["status"] == "dry-run" and result["why_dry_run"] == "first-sweep"
    assert result["owner"] == "ana" and result["would"][0].startswith("send the checkpoint command")
    assert spot_snapshots(in_account(carol)) == [] and sent == []
    [notice] = messages(factory, accounts.queue_url)
    assert notice["Subject"].startswith(f"[account {carol}] trainctl spot warning: {accounts.instances[carol]}")
    assert notice["MessageAttributes"]["owner"]["Value"] == "ana"


def test_the_hubs_own_warning_is_handled_in_the_hub_as_in_one_account(
    factory: ClientFactory, accounts: Accounts, spot: types.ModuleType, assumed: list[str]
) -> None:
    trainer = spot_trainer(factory)
    result = invoke(spot, warning(accounts.hub, trainer), "trainctl-spot_interruption")
    assert result["status"] == "handled" and "account" not in result
    assert len(spot_snapshots(factory)) == 1 and assumed == []
    [record] = [i for i in ledger_items(factory) if i["pk"]["S"] == f"spot#{trainer}"]
    assert "account" not in record


def created_volume(account: str, volume_id: str) -> dict[str, Any]:
    event: dict[str, Any] = load_event("age_guard", "create_volume_iam_user")
    text = json.dumps(event).replace("vol-0000000000000000a", volume_id).replace("123456789012", account)
    return dict(json.loads(text))


def test_age_guard_stamps_a_members_volume_through_its_spoke_role(
    factory: ClientFactory, accounts: Accounts, age_guard: types.ModuleType, assumed: list[str]
) -> None:
    alice = in_account(accounts.alice)
    volume = alice.ec2(REGION).create_volume(AvailabilityZone=f"{REGION}a", Size=500)["VolumeId"]
    result = invoke(age_guard, created_volume(accounts.alice, volume), "trainctl-age_guard")
    assert result["status"] == "stamped" and result["account"] == accounts.alice
    found = alice.ec2(REGION).describe_tags(Filters=[{"Name": "resource-id", "Values": [volume]}])["Tags"]
    stamped = {t["Key"]: t["Value"] for t in found}
    assert stamped[tags.CREATED_BY] == f"arn:aws:iam::{accounts.alice}:user/bob"
    assert stamped[tags.CREATED_AT] == "2026-11-28T10:00:00Z"
    assert assumed == [accounts.alice]
    # The owner of record is the hub's, under alice's account.
    [owner] = [i for i in ledger_items(factory) if volume in i["pk"]["S"]]
    assert owner["account"] == {"S": accounts.alice}


def test_age_guard_refuses_an_uncovered_members_call_and_writes_nothing(
    factory: ClientFactory, accounts: Accounts, age_guard: types.ModuleType, assumed: list[str]
) -> None:
    dave = in_account(accounts.dave)
    volume = dave.ec2(REGION).create_volume(AvailabilityZone=f"{REGION}a", Size=500)["VolumeId"]
    before = ledger_items(factory)
    result = invoke(age_guard, created_volume(accounts.dave, volume), "trainctl-age_guard")
    assert result["status"] == "refused" and result["refused"] == "not-covered"
    assert dave.ec2(REGION).describe_tags(Filters=[{"Name": "resource-id", "Values": [volume]}])["Tags"] == []
    assert ledger_items(factory) == before and assumed == []


def test_age_guard_stamps_the_hubs_own_call_as_in_one_account(
    factory: ClientFactory, accounts: Accounts, age_guard: types.ModuleType, assumed: list[str]
) -> None:
    volume = factory.ec2(REGION).create_volume(AvailabilityZone=f"{REGION}a", Size=500)["VolumeId"]
    result = invoke(age_guard, created_volume(accounts.hub, volume), "trainctl-age_guard")
    assert result["status"] == "stamped" and "account" not in result and assumed == []
