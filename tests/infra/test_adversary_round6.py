"""Round 6, adversary (synth): the spoke role's policies after their ARNs left the region as * (one Deny outside the
covered regions per policy). Guards for what holds: the role's policies taken together, as IAM evaluates them, not
one policy at a time; every statement as narrow as the per-region ARNs made it; no ARN naming another account."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from tests.infra.gates import as_list
from tests.infra.test_organization_spoke_size import ACCOUNT, OUTSIDE_REGIONS, per_region_policies, policies

pytestmark = pytest.mark.infra

COVERED = ["us-east-1", "eu-west-1", "ap-southeast-2"]


@pytest.fixture(scope="module")
def after() -> dict[str, dict[str, Any]]:
    return policies(COVERED)


def _region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if arn.startswith("arn:") and len(parts) > 5 else None


def _wildcarded(arn: str) -> str:
    parts = arn.split(":")
    return ":".join([*parts[:3], "*", *parts[4:]]) if _region_of(arn) is not None else arn


def _shape(statement: Mapping[str, Any]) -> tuple[Any, ...]:
    """A statement with its actions and resources as sets, and every resource ARN's region as *."""
    resources = frozenset(_wildcarded(r) for r in as_list(statement["Resource"]))
    condition = repr(sorted((k, repr(sorted(v.items()))) for k, v in statement.get("Condition", {}).items()))
    return statement.get("Sid"), statement["Effect"], frozenset(as_list(statement["Action"])), resources, condition


def test_every_spoke_statement_but_the_region_deny_is_the_per_region_one_with_the_region_as_a_wildcard(
    after: Mapping[str, Mapping[str, Any]],
) -> None:
    """Holds: same actions, same tag and key conditions, the Denies on persistent resources and on restamping as
    they were; the only statement added to each policy is the Deny outside the covered regions."""
    before = per_region_policies(COVERED)
    for name, document in after.items():
        now = [_shape(s) for s in document["Statement"] if s.get("Sid") != OUTSIDE_REGIONS]
        then = [_shape(s) for s in before[name]]
        assert now == then, name


def test_the_role_as_a_whole_refuses_every_region_wildcarded_grant_outside_the_covered_regions(
    after: Mapping[str, Mapping[str, Any]],
) -> None:
    """Holds, across the three policies as IAM joins them: every Allow on an ARN whose region is * is held to the
    covered regions by a Deny whose one condition is aws:RequestedRegion (a key in every request's context, so no
    IfExists gap), or by its own StringEquals on that key; no NotAction or NotResource anywhere."""
    statements = [s for document in after.values() for s in document["Statement"]]
    region_denies = [
        s
        for s in statements
        if s["Effect"] == "Deny"
        and as_list(s["Resource"]) == ["*"]
        and s.get("Condition") == {"StringNotEquals": {"aws:RequestedRegion": COVERED}}
    ]
    denied = {a for s in region_denies for a in as_list(s["Action"])}
    for s in statements:
        assert "NotAction" not in s and "NotResource" not in s and "NotPrincipal" not in s, s
        if s["Effect"] != "Allow":
            continue
        regions = {_region_of(r) for r in as_list(s["Resource"])} - {None}
        assert regions <= {"*"}, s  # no region named: the Deny is what holds them
        if not regions:
            continue  # reads on "*" that support no resource-level permission, as before
        own = s.get("Condition", {}).get("StringEquals", {}).get("aws:RequestedRegion")
        assert own == COVERED or set(as_list(s["Action"])) <= denied, s.get("Sid")


def test_no_spoke_arn_names_another_account_or_any_account(after: Mapping[str, Mapping[str, Any]]) -> None:
    """Holds: every ARN names the stack instance's own account; only snapshots and images, whose ARNs carry no
    account, name none."""
    for document in after.values():
        for s in document["Statement"]:
            for arn in as_list(s["Resource"]):
                if arn == "*":
                    continue
                account, kind = arn.split(":")[4], arn.split(":")[5].split("/", 1)[0]
                assert account == ACCOUNT or (account == "" and kind in ("snapshot", "image")), arn


def _regions_listed(documents: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [
        as_list(block["aws:RequestedRegion"])
        for document in documents
        for s in document["Statement"]
        for block in s.get("Condition", {}).values()
        if "aws:RequestedRegion" in block
    ]


def test_every_region_condition_names_exactly_the_covered_regions(after: Mapping[str, Mapping[str, Any]]) -> None:
    """Holds: each aws:RequestedRegion list is the covered regions, in lower case as the key's values are."""
    listed = _regions_listed(list(after.values()))
    assert len(listed) >= 3 and all(regions == COVERED for regions in listed), listed
