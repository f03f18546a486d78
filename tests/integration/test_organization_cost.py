"""The organization's cost run under moto (issue 29, items 4 and 5): the plan's cost items, one child per account
priced through its spoke role, and the total per account and per owner with its thresholds; and `trainctl cost
--all-accounts` from the hub's credentials.

The accounts are test_organization's: alice (research), bob (vision, below research), carol (product, no spoke
role: unreachable), xavier (research, deny-listed) and dave (sandbox, not covered). The expected burn is read
here from the accounts themselves and the shipped price file, apart from trainctl's cost code.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.integration import test_organization as shared
from tests.integration.conftest import run_cli
from tests.integration.test_organization import REGION, Organization, in_account
from trainctl.aws.clients import ClientFactory
from trainctl.cli.local_run import LocalContext
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock, system_clock
from trainctl.cost.prices.model import HOURS_PER_MONTH, PriceKey
from trainctl.cost.prices.price_file import load_price_file

# test_organization's accounts, spoke roles and handlers, as fixtures of this module too.
organization = shared.organization
spoke_roles_as_iam_would = shared.spoke_roles_as_iam_would
handlers = shared.handlers


def trainer(member: ClientFactory, instance_type: str, owner: str) -> str:
    instance = member.ec2(REGION).run_instances(
        ImageId="ami-0abcdef1234567890",
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": owner}],
            }
        ],
    )["Instances"][0]
    return str(instance["InstanceId"])


def expected_burn(member: ClientFactory) -> dict[str, float]:
    """Each owner's burn per hour in the account, from what EC2 lists there and the shipped price file."""
    shipped = load_price_file()
    ec2 = member.ec2(REGION)
    burn: dict[str, float] = {}
    for reservation in ec2.describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            if instance["State"]["Name"] != "running":
                continue
            owner = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get(tags.OWNER, "(no owner)")
            price = shipped.price(PriceKey("instance", REGION, instance["InstanceType"])).cost(1)
            burn[owner] = burn.get(owner, 0.0) + price
    for volume in ec2.describe_volumes()["Volumes"]:
        owner = {t["Key"]: t["Value"] for t in volume.get("Tags", [])}.get(tags.OWNER, "(no owner)")
        monthly = shipped.price(PriceKey("storage", REGION, volume["VolumeType"])).cost(volume["Size"])
        burn[owner] = burn.get(owner, 0.0) + monthly / HOURS_PER_MONTH
    return burn


@pytest.fixture
def fleets(factory: ClientFactory, organization: Organization) -> dict[str, dict[str, float]]:
    """alice runs two trainers (ana's and ben's), bob one of ana's; the deny-listed xavier runs the dearest."""
    org = organization
    trainer(in_account(factory, org.alice), "g5.xlarge", "ana")
    trainer(in_account(factory, org.alice), "p3.2xlarge", "ben")
    trainer(in_account(factory, org.bob), "g5.xlarge", "ana")
    trainer(in_account(factory, org.xavier), "p3.2xlarge", "xena")
    return {account: expected_burn(in_account(factory, account)) for account in (org.alice, org.bob)}


@pytest.fixture
def published(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every notice the hub publishes to its topic (the parameters of each Publish)."""
    monkeypatch.setenv("TRAINCTL_TOPIC_ARN", factory.sns().create_topic(Name=names.SWEEP_TOPIC)["TopicArn"])
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    factory.register("before-parameter-build.sns.Publish", record)
    yield sent


def email_texts(published: list[dict[str, Any]]) -> list[str]:
    """What a person reads: each notice's subject and its e-mail rendering."""
    return [f"{p['Subject']}\n{json.loads(p['Message'])['email']}" for p in published]


def cost_run(handlers: tuple[types.ModuleType, types.ModuleType], at: datetime) -> dict[str, Any]:
    """What the cost run's state machine does: plan, each item to a child, then the total."""
    plan, child = handlers
    plan.clock = child.clock = fixed_clock(at)
    planned: dict[str, Any] = plan.lambda_handler(
        {"task": "organization_plan", "capability": "cost"}, LocalContext("trainctl-org-plan")
    )
    children = [child.lambda_handler(item, LocalContext("trainctl-org-sweep")) for item in planned["items"]]
    total_request = {
        "task": "organization_cost_total",
        "run": planned["run"],
        "covered": planned["covered"],
        "excluded": planned["excluded"],
    }
    total: dict[str, Any] = plan.lambda_handler(total_request, LocalContext("trainctl-org-plan"))
    return {"planned": planned, "children": children, "total": total}


def test_the_cost_run_sums_burn_per_account_and_per_owner_and_leaves_out_by_name_what_it_could_not_read(
    factory: ClientFactory,
    organization: Organization,
    fleets: dict[str, dict[str, float]],
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = organization
    monkeypatch.setenv("TRAINCTL_PRICE_TABLE", names.PRICE_TABLE)
    run = cost_run(handlers, system_clock())
    planned, total = run["planned"], run["total"]
    # One child per covered account, each pricing all its regions; the deny-listed and uncovered have none.
    assert [i["account"] for i in planned["items"]] == sorted([org.alice, org.bob, org.carol])
    assert {i["capability"] for i in planned["items"]} == {"cost"}
    assert planned["excluded"] == {org.xavier: "deny-listed"}

    alice, bob = (sum(fleets[a].values()) for a in (org.alice, org.bob))
    assert total["accounts"][org.alice]["hourly_usd"] == pytest.approx(alice, abs=1e-3)
    assert total["accounts"][org.bob]["hourly_usd"] == pytest.approx(bob, abs=1e-3)
    assert total["hourly_usd"] == pytest.approx(alice + bob, abs=1e-3)
    assert total["daily_usd"] == pytest.approx((alice + bob) * 24, abs=1e-2)
    ana = fleets[org.alice]["ana"] + fleets[org.bob]["ana"]
    assert total["owners"]["ana"]["hourly_usd"] == pytest.approx(ana, abs=1e-3)
    assert set(total["owners"]["ana"]["accounts"]) == {org.alice, org.bob}
    assert total["owners"]["ben"]["hourly_usd"] == pytest.approx(fleets[org.alice]["ben"], abs=1e-3)
    assert set(total["owners"]["ben"]["accounts"]) == {org.alice}
    # The deny-listed account's trainer is nobody's burn here: xavier was never read.
    assert "xena" not in total["owners"]

    # carol could not be reached: named, counted, and the total says it leaves her out (not $0).
    assert total["accounts"][org.carol]["outcome"] == "failed"
    assert total["accounts"][org.carol]["hourly_usd"] is None
    assert total["excludes"] == [org.carol]
    assert total["complete"] is False
    assert total["unreachable"] == [
        {"account": org.carol, "error": f"account {org.carol}: its spoke role could not be assumed (AccessDenied)"}
    ]
    assert f"excludes unreachable {org.carol}" in total["total_covers"]
    # No role was ever assumed in the deny-listed or the uncovered account: no call could be made in them.
    assert org.xavier not in spoke_roles_as_iam_would and org.dave not in spoke_roles_as_iam_would


def test_an_accounts_own_threshold_and_the_organizations_are_told_with_the_account_id(
    factory: ClientFactory,
    organization: Organization,
    fleets: dict[str, dict[str, float]],
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
    published: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org = organization
    alice, bob = (sum(fleets[a].values()) for a in (org.alice, org.bob))
    # Between bob's burn and alice's, each account's limit; just under the two together, the organization's.
    monkeypatch.setenv("TRAINCTL_ORG_ACCOUNT_HOURLY_USD", f"{(alice + bob) / 2:.4f}")
    monkeypatch.setenv("TRAINCTL_ORG_ACCOUNT_DAILY_USD", "100000")
    monkeypatch.setenv("TRAINCTL_ORG_HOURLY_USD", f"{alice + bob - 0.01:.4f}")
    for module in handlers:
        module.deployed_settings.cache_clear()
    at = system_clock()
    total = cost_run(handlers, at)["total"]
    keys = {b["key"]: b for b in total["breaches"]}
    assert set(keys) == {f"org:account:{org.alice}:hourly", "org:total:hourly"}
    assert keys[f"org:account:{org.alice}:hourly"]["account"] == org.alice
    assert keys[f"org:account:{org.alice}:hourly"]["value"] == pytest.approx(alice, abs=1e-3)
    assert keys["org:total:hourly"]["value"] == pytest.approx(alice + bob, abs=1e-3)

    subjects = email_texts(published)
    [account_notice] = [s for s in subjects if f"(account {org.alice})" in s]
    # Whose burn it is in that account, each owner by name; no other account's.
    assert "owner ana" in account_notice and "owner ben" in account_notice and org.bob not in account_notice
    [org_notice] = [s for s in subjects if "(organization)" in s]
    assert f"account {org.alice}" in org_notice and f"account {org.bob}" in org_notice
    # The organization's total names the account it could not count.
    assert f"not counted: account {org.carol}" in org_notice
    assert sorted(total["alerts"]["notified"]) == sorted(keys)

    # The next run, a quarter hour later, tells nobody again: the breaches are known, not grown.
    published.clear()
    again = cost_run(handlers, at + timedelta(minutes=15))["total"]
    assert again["alerts"]["notified"] == [] and published == []


def test_an_owner_value_never_breaks_a_notice_line(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
    published: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trainer(in_account(factory, organization.alice), "p3.2xlarge", "mallory\nfake: line")
    monkeypatch.setenv("TRAINCTL_ORG_ACCOUNT_HOURLY_USD", "1")
    for module in handlers:
        module.deployed_settings.cache_clear()
    cost_run(handlers, system_clock())
    texts = email_texts(published)
    # The owner is shown, escaped: the tag's line break never starts a line of its own in the notice.
    assert any("owner mallory\\nfake: line" in t for t in texts)
    assert not any(line.startswith("fake: line") for t in texts for line in t.splitlines())


def test_a_cost_item_for_a_deny_listed_account_touches_nothing(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    _, child = handlers
    child.clock = fixed_clock(system_clock())
    item = {"capability": "cost", "account": organization.xavier, "run": "0" * 32}
    result = child.lambda_handler(item, LocalContext("trainctl-org-sweep"))
    assert result["outcome"] == "failed" and "deny-listed" in result["error"]
    assert spoke_roles_as_iam_would == []


@pytest.mark.parametrize(
    "item",
    [
        {"capability": "cost", "account": "12345", "run": "0" * 32},
        {"capability": "cost", "account": "123456789012", "run": "../../x"},
        {"capability": "cost", "account": "123456789012", "run": "0" * 32, "region": "us-east-1"},
        {"capability": "sweep-everything", "account": "123456789012", "run": "0" * 32},
    ],
)
def test_a_malformed_cost_item_is_refused_and_assumes_nothing(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
    item: dict[str, Any],
) -> None:
    from trainctl.core.events import InvalidEvent

    _, child = handlers
    with pytest.raises(InvalidEvent):
        child.lambda_handler(item, LocalContext("trainctl-org-sweep"))
    assert spoke_roles_as_iam_would == []


# -- the command line, with the hub's credentials --------------------------------------------------------------


def test_cost_all_accounts_prints_burn_per_account_and_owner_and_names_the_unreachable(
    factory: ClientFactory,
    organization: Organization,
    fleets: dict[str, dict[str, float]],
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    org = organization
    result = run_cli(factory, ["cost", "--all-accounts", "--json"])
    assert result.exit_code == 1, result.output  # carol could not be reached
    shown = json.loads(result.stdout)
    alice, bob = (sum(fleets[a].values()) for a in (org.alice, org.bob))
    assert shown["accounts"][org.alice]["hourly_usd"] == pytest.approx(alice, abs=1e-3)
    assert shown["accounts"][org.bob]["hourly_usd"] == pytest.approx(bob, abs=1e-3)
    assert shown["hourly_usd"] == pytest.approx(alice + bob, abs=1e-3)
    assert shown["owners"]["ben"]["accounts"] == {org.alice: pytest.approx(fleets[org.alice]["ben"], abs=1e-3)}
    assert shown["excludes"] == [org.carol] and shown["excluded"] == {org.xavier: "deny-listed"}
    assert f"account {org.carol}" in result.stderr
    assert org.xavier not in spoke_roles_as_iam_would and org.dave not in spoke_roles_as_iam_would

    table = run_cli(factory, ["cost", "--all-accounts"])
    assert table.exit_code == 1
    assert org.alice in table.stdout and "ana" in table.stdout and "ben" in table.stdout
    assert f"excludes unreachable {org.carol}" in table.stdout
    assert f"not covered: account {org.xavier}: deny-listed" in table.stdout


def test_cost_for_one_account_prices_only_it(
    factory: ClientFactory,
    organization: Organization,
    fleets: dict[str, dict[str, float]],
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    result = run_cli(factory, ["cost", "--account", organization.bob, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert list(shown["accounts"]) == [organization.bob]
    assert shown["hourly_usd"] == pytest.approx(sum(fleets[organization.bob].values()), abs=1e-3)
    assert set(spoke_roles_as_iam_would) == {organization.bob}


def test_cost_refuses_bad_accounts_and_mixed_flags_in_one_line(
    factory: ClientFactory,
    organization: Organization,
    handlers: tuple[types.ModuleType, types.ModuleType],
    spoke_roles_as_iam_would: list[str],
) -> None:
    for args, words in (
        (["--account", "$(id)"], "12 digits"),
        (["--account", organization.alice, "--all-accounts"], "one or the other"),
        (["--all-accounts", "--provider", "runpod"], "AWS accounts only"),
    ):
        result = run_cli(factory, ["cost", *args])
        assert result.exit_code == 2, args
        assert words in result.stderr and "$(id)" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    denied = run_cli(factory, ["cost", "--account", organization.xavier])
    assert denied.exit_code == 1 and "deny-listed" in denied.stderr
    assert spoke_roles_as_iam_would == []
