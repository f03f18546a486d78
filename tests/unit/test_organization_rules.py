"""Which account-regions an organization run covers, and which it may enforce on: opt-in, deny-list, first sweep."""

from __future__ import annotations

import pytest

from trainctl.core.errors import InvalidEvent, SettingsError
from trainctl.organization.rules import (
    DENY_LISTED,
    DEPLOYMENT_DRY_RUN,
    FIRST_SWEEP,
    MANAGEMENT,
    NOT_ACTIVE,
    NOT_ENFORCED,
    Coverage,
    MemberAccount,
    plan_coverage,
)
from trainctl.organization.run import aggregate
from trainctl.organization.settings import OrganizationSettings

RESEARCH = "ou-ab12-research1"
VISION = "ou-ab12-vision001"  # below RESEARCH
PRODUCT = "ou-ab12-product01"
ELSEWHERE = "ou-ab12-elsewhere"
MANAGEMENT_ID = "100000000000"
ALICE, BOB, CAROL, DAVE, EVE = "111111111111", "222222222222", "333333333333", "444444444444", "555555555555"
REGIONS = ("us-east-1", "eu-west-1")

ORGANIZATION = [
    MemberAccount(ALICE, units=(RESEARCH,)),
    MemberAccount(BOB, units=(VISION, RESEARCH)),
    MemberAccount(CAROL, units=(PRODUCT,)),
    MemberAccount(DAVE, units=(ELSEWHERE,)),
    MemberAccount(MANAGEMENT_ID, units=()),
]


def settings(**values: object) -> OrganizationSettings:
    return OrganizationSettings.from_env({}, **values)


def plan(
    org: OrganizationSettings,
    *,
    onboarded: frozenset[str] = frozenset(),
    dry_run: bool = False,
    accounts: list[MemberAccount] | None = None,
) -> Coverage:
    return plan_coverage(
        ORGANIZATION if accounts is None else accounts,
        org,
        REGIONS,
        management_account=MANAGEMENT_ID,
        onboarded=onboarded,
        deployment_dry_run=dry_run,
    )


def test_only_accounts_of_covered_units_are_swept_in_every_region() -> None:
    coverage = plan(settings(org_units=(RESEARCH,)))
    assert coverage.covered == (ALICE, BOB)  # BOB through VISION, below the covered RESEARCH
    assert {(t.account, t.region) for t in coverage.targets} == {(a, r) for a in (ALICE, BOB) for r in REGIONS}
    first = {"account": ALICE, "region": "us-east-1", "dry_run": True, "why_dry_run": "first-sweep"}
    assert coverage.items()[0] == first


def test_a_child_is_handed_the_plans_reason_for_a_dry_run_and_an_item_cannot_claim_one_while_enforced() -> None:
    from trainctl.organization.events import parse_item
    from trainctl.organization.rules import DEPLOYMENT_DRY_RUN, FIRST_SWEEP, NOT_ENFORCED

    for reason in (FIRST_SWEEP, DEPLOYMENT_DRY_RUN, NOT_ENFORCED):
        item = {"account": ALICE, "region": "us-east-1", "dry_run": True, "why_dry_run": reason}
        assert getattr(parse_item(item), "why_dry_run", None) == reason
    for forged in ({"dry_run": False, "why_dry_run": FIRST_SWEEP}, {"dry_run": True, "why_dry_run": "because"}):
        with pytest.raises(InvalidEvent):
            parse_item({"account": ALICE, "region": "us-east-1", **forged})


def test_no_units_covers_nothing() -> None:
    coverage = plan(settings())
    assert coverage.targets == () and coverage.covered == ()
    assert not settings().enabled


def test_the_deny_list_beats_the_unit_list_and_an_explicit_listing() -> None:
    org = settings(org_units=(RESEARCH, PRODUCT), org_exclude_accounts=(BOB,), org_include_accounts=(BOB,))
    coverage = plan(org)
    assert BOB not in coverage.covered
    assert all(t.account != BOB for t in coverage.targets)
    assert coverage.excluded[BOB] == DENY_LISTED
    assert coverage.covered == (ALICE, CAROL)


def test_a_deny_listed_account_no_unit_lists_is_still_reported() -> None:
    coverage = plan(settings(org_units=(PRODUCT,), org_exclude_accounts=(EVE,)))
    assert coverage.excluded == {EVE: DENY_LISTED}


def test_the_management_account_is_never_swept_unless_listed_by_id() -> None:
    # A misread that puts the management account under a covered unit must not widen the scope.
    misread = [*ORGANIZATION, MemberAccount(MANAGEMENT_ID, units=(RESEARCH,))]
    coverage = plan(settings(org_units=(RESEARCH,)), accounts=misread)
    assert MANAGEMENT_ID not in coverage.covered
    assert coverage.excluded[MANAGEMENT_ID] == MANAGEMENT
    listed = plan(settings(org_units=(RESEARCH,), org_include_accounts=(MANAGEMENT_ID,)))
    assert MANAGEMENT_ID in listed.covered


def test_an_account_that_is_not_active_is_not_swept() -> None:
    accounts = [MemberAccount(ALICE, "SUSPENDED", (RESEARCH,)), MemberAccount(BOB, units=(RESEARCH,))]
    coverage = plan(settings(org_units=(RESEARCH,)), accounts=accounts)
    assert coverage.covered == (BOB,)
    assert coverage.excluded[ALICE] == NOT_ACTIVE


def test_an_account_listed_under_two_units_is_swept_once_per_region() -> None:
    accounts = [MemberAccount(ALICE, units=(RESEARCH,)), MemberAccount(ALICE, units=(PRODUCT,))]
    coverage = plan(settings(org_units=(RESEARCH, PRODUCT)), accounts=accounts)
    assert len(coverage.targets) == len(REGIONS)


def test_the_first_sweep_of_a_newly_onboarded_account_is_a_dry_run_whatever_the_settings() -> None:
    org = settings(org_units=(RESEARCH,), org_enforce_accounts=(ALICE,), org_enforce_units=(RESEARCH,))
    first = plan(org, onboarded=frozenset())
    assert all(t.dry_run and t.why_dry_run == FIRST_SWEEP for t in first.targets)
    later = plan(org, onboarded=frozenset({ALICE}))
    by_account = {t.account: t for t in later.targets}
    assert not by_account[ALICE].dry_run
    assert by_account[BOB].dry_run and by_account[BOB].why_dry_run == FIRST_SWEEP


def test_enforcement_per_unit_reaches_the_units_below_it_and_the_rest_stay_dry_run() -> None:
    org = settings(org_units=(RESEARCH, PRODUCT), org_enforce_units=(RESEARCH,))
    coverage = plan(org, onboarded=frozenset({ALICE, BOB, CAROL}))
    enforced = {t.account for t in coverage.targets if not t.dry_run}
    assert enforced == {ALICE, BOB}
    assert {t.why_dry_run for t in coverage.targets if t.account == CAROL} == {NOT_ENFORCED}


def test_enforcement_per_account_leaves_its_unit_neighbours_dry_run() -> None:
    org = settings(org_units=(RESEARCH,), org_enforce_accounts=(BOB,))
    coverage = plan(org, onboarded=frozenset({ALICE, BOB}))
    assert {t.account for t in coverage.targets if not t.dry_run} == {BOB}


def test_a_dry_run_deployment_enforces_on_no_account() -> None:
    org = settings(org_units=(RESEARCH,), org_enforce_units=(RESEARCH,))
    coverage = plan(org, onboarded=frozenset({ALICE, BOB}), dry_run=True)
    assert all(t.dry_run and t.why_dry_run == DEPLOYMENT_DRY_RUN for t in coverage.targets)


@pytest.mark.parametrize(
    "variable",
    ["TRAINCTL_ORG_EXCLUDE_ACCOUNTS", "TRAINCTL_ORG_INCLUDE_ACCOUNTS", "TRAINCTL_ORG_ENFORCE_ACCOUNTS"],
)
@pytest.mark.parametrize("bad", ["12345678901", "1234567890123", "12345678901a", " 123456789012x", "arn:aws:iam::1"])
def test_an_account_id_of_the_wrong_shape_is_refused_in_one_line_naming_the_setting(variable: str, bad: str) -> None:
    with pytest.raises(SettingsError) as refused:
        OrganizationSettings.from_env({variable: f"{ALICE},{bad}"})
    message = str(refused.value)
    assert variable in message and "12 digits" in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", ["r-ab12", "ou-AB12-cd34ef56", "research", "ou-ab12"])
def test_a_unit_id_of_the_wrong_shape_is_refused(bad: str) -> None:
    with pytest.raises(SettingsError, match="TRAINCTL_ORG_UNITS"):
        OrganizationSettings.from_env({"TRAINCTL_ORG_UNITS": bad})


def test_settings_read_lists_from_the_environment() -> None:
    org = OrganizationSettings.from_env(
        {
            "TRAINCTL_ORG_UNITS": f"{RESEARCH}, {PRODUCT}",
            "TRAINCTL_ORG_EXCLUDE_ACCOUNTS": BOB,
            "TRAINCTL_ORG_REGIONS": "eu-west-1",
            "TRAINCTL_ORG_MAX_CONCURRENCY": "25",
        }
    )
    assert org.org_units == (RESEARCH, PRODUCT)
    assert org.org_exclude_accounts == (BOB,)
    assert org.regions_or(("us-east-1",)) == ("eu-west-1",)
    assert org.org_max_concurrency == 25


def test_the_summary_is_per_account_and_per_owner_and_names_each_failure() -> None:
    children = [
        {"account": ALICE, "region": "us-east-1", "dry_run": False, "outcome": "done",
         "summary": {"actions": {"mark": 2, "keep": 5}}, "owners": {"ana": {"mark": 2}}},
        {"account": ALICE, "region": "eu-west-1", "dry_run": False, "outcome": "done",
         "summary": {"actions": {"mark": 1}}, "owners": {"ana": {"mark": 1}}},
        {"account": BOB, "region": "us-east-1", "dry_run": True, "outcome": "failed",
         "error": f"account {BOB}: its spoke role could not be assumed (AccessDenied)", "summary": {}, "owners": {}},
    ]  # fmt: skip
    summary = aggregate(children)
    assert summary["accounts"] == {
        ALICE: {"regions": 2, "failed": 0, "dry_run": False, "actions": {"mark": 3}},
        BOB: {"regions": 1, "failed": 1, "dry_run": True, "actions": {}},
    }
    assert summary["owners"] == {"ana": {"mark": 3}}
    assert summary["failed"] == 1
    assert summary["failures"] == [{"account": BOB, "region": "us-east-1", "error": children[2]["error"]}]


def test_an_item_whose_dry_run_is_text_is_refused() -> None:
    from trainctl.organization.events import parse_item

    with pytest.raises(InvalidEvent):
        parse_item({"account": ALICE, "region": "us-east-1", "dry_run": "false"})
