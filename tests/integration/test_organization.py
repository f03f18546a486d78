"""An organization run under moto, through the plan and child handlers, account by account.

moto serves Organizations and several accounts: credentials from an assumed role act in that role's account.
moto's STS assumes any role, even one that does not exist; the spokes here answer as IAM would, refusing a
role the account does not hold (`spoke_roles_as_iam_would`).
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.iam.models import iam_backends

from tests.integration.conftest import run_cli
from trainctl.aws.clients import ClientFactory, Credentials
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock, format_instant, system_clock
from trainctl.organization.record import AccountRecords, sweep_partition
from trainctl.organization.run import aggregate

REGION = "us-east-1"
SPOKE_ROLE = "trainctl-spoke"
TRUST = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}'


@dataclass
class Organization:
    management: str
    research: str
    vision: str  # below research
    product: str
    sandbox: str  # not covered
    alice: str  # research
    bob: str  # vision
    carol: str  # product, no spoke role
    xavier: str  # research, deny-listed
    dave: str  # sandbox
    volumes: dict[str, str]  # account -> its forgotten volume


def in_account(_hub: ClientFactory, account: str) -> ClientFactory:
    """Clients acting in a member account, as the test's own set-up (not trainctl's spoke path, nor its hooks)."""
    answer = (
        ClientFactory(REGION)
        .client("sts")
        .assume_role(RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="set-up")[
            "Credentials"
        ]
    )
    return ClientFactory(
        REGION, credentials=Credentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
    )


def forgotten_volume(member: ClientFactory, now: datetime) -> str:
    volume = member.ec2(REGION).create_volume(
        AvailabilityZone=f"{REGION}a",
        Size=10,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [
                    {"Key": tags.MANAGED, "Value": "true"},
                    {"Key": tags.OWNER, "Value": "ana"},
                    {"Key": tags.CREATED_AT, "Value": format_instant(now - timedelta(days=2))},
                ],
            }
        ],
    )
    return str(volume["VolumeId"])


def tags_in(member: ClientFactory, resource_id: str) -> dict[str, str]:
    found = member.ec2(REGION).describe_tags(Filters=[{"Name": "resource-id", "Values": [resource_id]}])["Tags"]
    return {t["Key"]: t["Value"] for t in found}


@pytest.fixture
def organization(factory: ClientFactory) -> Organization:
    org = factory.client("organizations")
    management = org.create_organization(FeatureSet="ALL")["Organization"]["MasterAccountId"]
    root = org.list_roots()["Roots"][0]["Id"]

    def unit(parent: str, name: str) -> str:
        return str(org.create_organizational_unit(ParentId=parent, Name=name)["OrganizationalUnit"]["Id"])

    def account(name: str, parent: str) -> str:
        made = org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=made, SourceParentId=root, DestinationParentId=parent)
        return str(made)

    research = unit(root, "research")
    vision = unit(research, "vision")
    product = unit(root, "product")
    sandbox = unit(root, "sandbox")
    members = {
        "alice": account("alice", research),
        "bob": account("bob", vision),
        "carol": account("carol", product),
        "xavier": account("xavier", research),
        "dave": account("dave", sandbox),
    }
    now = system_clock()
    volumes = {}
    for name, account_id in members.items():
        member = in_account(factory, account_id)
        if name != "carol":  # the StackSet has not reached carol: no spoke role
            member.client("iam").create_role(RoleName=SPOKE_ROLE, AssumeRolePolicyDocument=TRUST)
        volumes[account_id] = forgotten_volume(member, now)
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Organization(management, research, vision, product, sandbox, **members, volumes=volumes)


@pytest.fixture
def spoke_roles_as_iam_would(factory: ClientFactory) -> Iterator[list[str]]:
    """AssumeRole into a role the account does not hold is refused, as IAM refuses it; returns who was assumed."""
    assumed: list[str] = []

    def refuse_missing(params: dict[str, Any], **_: Any) -> None:
        arn = str(params["RoleArn"])
        account, role = arn.split(":")[4], arn.rsplit("/", 1)[1]
        assumed.append(account)
        if role not in {r.name for r in iam_backends[account]["global"].roles.values()}:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    factory.register("before-parameter-build.sts.AssumeRole", refuse_missing)
    yield assumed


@pytest.fixture
def handlers(
    factory: ClientFactory, organization: Organization, monkeypatch: pytest.MonkeyPatch
) -> tuple[types.ModuleType, types.ModuleType]:
    monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
    monkeypatch.setenv("TRAINCTL_LEDGER_TABLE", names.LEDGER_TABLE)
    monkeypatch.setenv("TRAINCTL_TRAINING_DOCUMENT", names.TRAINING_DOCUMENT)
    monkeypatch.setenv("TRAINCTL_DRY_RUN", "false")
    monkeypatch.setenv("TRAINCTL_MAX_ACTION_SHARE", "1")
    monkeypatch.setenv("TRAINCTL_ORG_UNITS", f"{organization.research},{organization.product}")
    monkeypatch.setenv("TRAINCTL_ORG_EXCLUDE_ACCOUNTS", organization.xavier)
    monkeypatch.setenv("TRAINCTL_ORG_ENFORCE_UNITS", organization.research)
    monkeypatch.setenv("TRAINCTL_ORG_SPOKE_ROLE", SPOKE_ROLE)
    plan, child = load_handler("organization_plan"), load_handler("organization_sweep")
    for module in (plan, child):
        monkeypatch.setattr(module, "client_factory", lambda: factory)
        module.deployed_settings.cache_clear()
    return plan, child


def organization_run(
    handlers: tuple[types.ModuleType, types.ModuleType], at: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What the Distributed Map does: the plan's items, each handed to a child, one after another."""
    plan, child = handlers
    child.clock = fixed_clock(at)
    planned: dict[str, Any] = plan.lambda_handler({"task": "organization_plan"}, LocalContext("trainctl-org-plan"))
    children = [child.lambda_handler(item, LocalContext("trainctl-org-sweep")) for item in planned["items"]]
    return planned, children


def test_an_organization_run_sweeps_covered_accounts_first_as_a_dry_run_then_marks_in_each_account(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    org = organization
    now = system_clock() + timedelta(hours=1)
    planned, children = organization_run(handlers, now)
    assert planned["covered"] == sorted([org.alice, org.bob, org.carol])
    assert planned["excluded"] == {org.xavier: "deny-listed"}
    assert all(item["dry_run"] for item in planned["items"])  # every account is newly onboarded
    by_account = {c["account"]: c for c in children}
    assert {c["why_dry_run"] for c in children if c["outcome"] != "failed"} == {"first-sweep"}
    assert by_account[org.carol]["outcome"] == "failed"
    assert by_account[org.carol]["error"] == (
        f"account {org.carol}: its spoke role could not be assumed (AccessDenied)"
    )
    for swept in (org.alice, org.bob):
        assert by_account[swept]["outcome"] == "done" and by_account[swept]["dry_run"] is True
        assert by_account[swept]["summary"]["candidates"] == 1
        # The first sweep is a dry-run report: not even a tag in the account.
        assert tags.CLEANUP_AFTER not in tags_in(in_account(factory, swept), org.volumes[swept])
    records = AccountRecords(factory.dynamodb(), names.LEDGER_TABLE)
    assert records.onboarded([org.alice, org.bob, org.carol]) == {org.alice, org.bob}

    planned, children = organization_run(handlers, now + timedelta(hours=1))
    items = {i["account"]: i for i in planned["items"]}
    assert items[org.alice]["dry_run"] is False and items[org.bob]["dry_run"] is False  # research enforces
    assert items[org.carol]["dry_run"] is True  # never completed its first dry-run
    for swept in (org.alice, org.bob):
        member = in_account(factory, swept)
        assert tags.CLEANUP_AFTER in tags_in(member, org.volumes[swept])
        # Only this account's own volume: another account's volume id is not even there to be tagged.
        others = [v for a, v in org.volumes.items() if a != swept]
        assert member.ec2(REGION).describe_volumes()["Volumes"][0]["VolumeId"] not in others
    for untouched in (org.xavier, org.dave, org.carol):
        assert tags.CLEANUP_AFTER not in tags_in(in_account(factory, untouched), org.volumes[untouched])
    # Nothing of the deny-listed or uncovered accounts was ever assumed.
    assert org.xavier not in spoke_roles_as_iam_would and org.dave not in spoke_roles_as_iam_would

    summary = aggregate(children)
    assert summary["failed"] == 1 and summary["failures"][0]["account"] == org.carol
    assert summary["accounts"][org.alice]["actions"] == {"mark": 1}
    assert summary["owners"] == {"ana": {"mark": 2}}


def test_two_accounts_sweep_records_never_mix(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    org = organization
    now = system_clock() + timedelta(hours=1)
    organization_run(handlers, now)
    organization_run(handlers, now + timedelta(hours=1))
    dynamodb = factory.dynamodb()
    for account in (org.alice, org.bob):
        runs = dynamodb.query(
            TableName=names.LEDGER_TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": sweep_partition(account)}},
        )["Items"]
        assert len(runs) == 1  # the enforced sweep; the dry-run recorded no sweep
        assert {r["account"]["S"] for r in runs} == {account}
        history = dynamodb.query(
            TableName=names.LEDGER_TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"resource#{org.volumes[account]}"}},
        )["Items"]
        assert history and {h["account"]["S"] for h in history} == {account}
    # The single-account sweeps' partition holds no account's sweep.
    single = dynamodb.query(
        TableName=names.LEDGER_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "sweep"}},
    )["Items"]
    assert single == []


def test_a_spoke_role_that_answers_from_another_account_is_refused_by_name(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
) -> None:
    org = organization

    def answer_from_alice(params: dict[str, Any], **_: Any) -> None:
        # A spoke wired to the wrong account: bob's role hands out alice's credentials.
        if f":{org.bob}:" in str(params["RoleArn"]):
            params["RoleArn"] = f"arn:aws:iam::{org.alice}:role/{SPOKE_ROLE}"

    factory.register("before-parameter-build.sts.AssumeRole", answer_from_alice)
    _, child = handlers
    child.clock = fixed_clock(system_clock() + timedelta(hours=1))
    result = child.lambda_handler({"account": org.bob, "region": REGION}, LocalContext("trainctl-org-sweep"))
    assert result["outcome"] == "failed"
    assert result["error"] == f"account {org.bob}: its spoke role answered from another account: refused"
    assert result["summary"] == {}
    # Nothing recorded of alice under bob, and bob is not onboarded by a run that never reached him.
    records = AccountRecords(factory.dynamodb(), names.LEDGER_TABLE)
    assert records.onboarded([org.alice, org.bob]) == frozenset()
    assert [r.outcome for r in records.newest_runs(org.bob)] == ["failed"]


def test_an_item_for_a_deny_listed_account_touches_nothing(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    _, child = handlers
    child.clock = fixed_clock(system_clock() + timedelta(hours=1))
    item = {"account": organization.xavier, "region": REGION, "dry_run": False}
    result = child.lambda_handler(item, LocalContext("trainctl-org-sweep"))
    assert result["outcome"] == "failed" and "deny-listed" in result["error"]
    assert spoke_roles_as_iam_would == []


def test_an_item_asking_for_enforcement_on_an_account_not_yet_onboarded_is_a_dry_run(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    _, child = handlers
    child.clock = fixed_clock(system_clock() + timedelta(hours=1))
    item = {"account": organization.alice, "region": REGION, "dry_run": False}
    result = child.lambda_handler(item, LocalContext("trainctl-org-sweep"))
    assert result["dry_run"] is True and result["why_dry_run"] == "first-sweep"
    assert tags.CLEANUP_AFTER not in tags_in(
        in_account(factory, organization.alice), organization.volumes[organization.alice]
    )


# -- the command line, with the hub's credentials --------------------------------------------------------------


def test_sweep_all_accounts_previews_every_covered_account_and_names_the_one_it_could_not_reach(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    org = organization
    result = run_cli(factory, ["sweep", "--all-accounts", "--json"])
    assert result.exit_code == 1  # carol could not be reached
    shown = json.loads(result.stdout)
    assert shown["dry_run"] is True
    assert {c["account"] for c in shown["accounts"]} == {org.alice, org.bob, org.carol}
    assert shown["summary"]["failures"] == [
        {
            "account": org.carol,
            "region": REGION,
            "error": f"account {org.carol}: its spoke role could not be assumed (AccessDenied)",
        }
    ]
    assert f"account {org.carol}" in result.stderr
    for account in (org.alice, org.bob):
        assert tags.CLEANUP_AFTER not in tags_in(in_account(factory, account), org.volumes[account])
    # A preview records nothing: no account is onboarded by it.
    assert AccountRecords(factory.dynamodb(), names.LEDGER_TABLE).onboarded([org.alice, org.bob]) == frozenset()


def test_sweep_one_account_sweeps_only_it(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    result = run_cli(factory, ["sweep", "--account", organization.bob, "--json"])
    assert result.exit_code == 0, result.output
    assert [c["account"] for c in json.loads(result.stdout)["accounts"]] == [organization.bob]
    assert set(spoke_roles_as_iam_would) == {organization.bob}


@pytest.mark.parametrize("bad", ["98765", "1234567890123", "12345678901x", "$(id)"])
def test_an_account_of_the_wrong_shape_is_wrong_usage_in_one_line(
    factory: ClientFactory, organization: Organization, handlers: tuple[types.ModuleType, types.ModuleType], bad: str
) -> None:
    result = run_cli(factory, ["sweep", "--account", bad])
    assert result.exit_code == 2
    assert "12 digits" in result.stderr and bad not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sweep_refuses_an_account_the_organization_does_not_cover_by_why(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    denied = run_cli(factory, ["sweep", "--account", organization.xavier])
    assert denied.exit_code == 1 and "deny-listed" in denied.stderr
    uncovered = run_cli(factory, ["sweep", "--account", organization.dave])
    assert uncovered.exit_code == 1 and "not in a covered organizational unit" in uncovered.stderr
    assert spoke_roles_as_iam_would == []


def test_org_status_shows_covered_onboarded_excluded_last_sweeps_and_failures(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = organization
    at = system_clock() + timedelta(hours=1)
    organization_run(handlers, at)
    # The ledger the stack made (here on the emulator, which the command finds as it finds the deployed stack's).
    monkeypatch.setattr(
        stack_resources, "resolve", lambda f, _e, regions: stack_resources.ensure_on_emulator(f, regions)
    )
    result = run_cli(factory, ["org", "status", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    by_account = {a["account"]: a for a in shown["covered"]}
    assert set(by_account) == {org.alice, org.bob, org.carol}
    assert by_account[org.alice]["onboarded"] and by_account[org.bob]["onboarded"]
    assert not by_account[org.carol]["onboarded"]
    assert by_account[org.alice]["last_sweep"] == format_instant(at)
    assert [f["error"] for f in by_account[org.carol]["failures"]] == [
        f"account {org.carol}: its spoke role could not be assumed (AccessDenied)"
    ]
    assert shown["excluded"] == {org.xavier: "deny-listed"}
    table = run_cli(factory, ["org", "status"])
    assert table.exit_code == 0 and org.xavier in table.stdout and "deny-listed" in table.stdout
