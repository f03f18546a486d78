"""Pure parts of the age guard: principals, created ids, what to stamp, how to batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import EVENTS
from trainctl.age_guard.rules import (
    LAUNCH_TEMPLATE_TAG,
    TAG_BATCH,
    StampRules,
    created_ids,
    principal_of,
    stamps_for,
    tag_batches,
)
from trainctl.core import tags

AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def detail(case: str) -> dict:
    return json.loads((EVENTS / "age_guard" / f"{case}.json").read_text())["detail"]


@pytest.mark.parametrize(
    ("case", "kind", "created_by", "owner"),
    [
        (
            "run_instances_assumed_role",
            "assumed-role",
            "arn:aws:iam::123456789012:role/MLTeamTraining session alice@example.com",
            "alice@example.com",
        ),
        ("create_volume_iam_user", "iam-user", "arn:aws:iam::123456789012:user/bob", "bob"),
        ("create_snapshot_root", "root", "arn:aws:iam::123456789012:root", "root"),
        ("create_fleet_aws_service", "aws-service", "service:autoscaling.amazonaws.com", "autoscaling.amazonaws.com"),
        (
            "run_instances_aws_service_principal",
            "aws-service",
            "service:ec2fleet.amazonaws.com",
            "ec2fleet.amazonaws.com",
        ),
    ],
)
def test_principal_of_each_caller_kind(case: str, kind: str, created_by: str, owner: str) -> None:
    principal = principal_of(detail(case)["userIdentity"])
    assert (principal.kind, principal.created_by, principal.owner) == (kind, created_by, owner)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("run_instances_assumed_role", ["i-0000000000000000a", "i-0000000000000000b"]),
        ("create_volume_iam_user", ["vol-0000000000000000a"]),
        ("create_snapshot_root", ["snap-0000000000000000a"]),
        ("create_snapshots_assumed_role", ["snap-0000000000000000b", "snap-0000000000000000c"]),
        ("copy_snapshot_iam_user", ["snap-0000000000000000d"]),
        ("create_image_assumed_role", ["ami-0000000000000000a"]),
        ("request_spot_instances_assumed_role", ["sir-0000000a"]),
        ("create_fleet_aws_service", ["i-0000000000000000c", "i-0000000000000000d"]),
    ],
)
def test_created_ids_names_only_what_the_call_created(case: str, expected: list[str]) -> None:
    event = detail(case)
    assert created_ids(event["eventName"], event["responseElements"]) == expected


def test_created_ids_refuses_values_that_are_not_ids() -> None:
    response = {"volumeId": "vol-0000000000000000a; rm -rf /", "nested": {"volumeId": ["$(reboot)"]}}
    assert created_ids("CreateVolume", response) == []
    assert created_ids("DeleteVolume", {"volumeId": "vol-0000000000000000a"}) == []


@given(
    st.recursive(
        st.none() | st.text() | st.integers(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=30,
    )
)
def test_created_ids_never_fails_and_only_returns_ids(response: object) -> None:
    for name in ("RunInstances", "CreateFleet", "CreateSnapshots"):
        for found in created_ids(name, response):
            assert found.split("-")[0] in {"i", "vol", "snap", "ami", "sir"}


def test_stamps_only_what_is_missing() -> None:
    principal = principal_of(detail("create_volume_iam_user")["userIdentity"])
    planned = stamps_for(
        ["vol-a", "vol-b"],
        {"vol-a": {tags.OWNER: "carol", tags.CREATED_AT: "2026-01-01T00:00:00Z"}, "vol-b": {}},
        principal,
        AT,
        StampRules(),
    )
    assert planned["vol-a"] == {tags.CREATED_BY: "arn:aws:iam::123456789012:user/bob"}
    assert planned["vol-b"] == {
        tags.CREATED_AT: "2026-11-28T10:00:00Z",
        tags.CREATED_BY: "arn:aws:iam::123456789012:user/bob",
        tags.OWNER: "bob",
    }
    fully_stamped = {tags.OWNER: "x", tags.CREATED_AT: "y", tags.CREATED_BY: "z"}
    assert stamps_for(["vol-c"], {"vol-c": fully_stamped}, principal, AT, StampRules()) == {}


def test_scope_rules_by_principal_launch_template_and_tag() -> None:
    principal = principal_of(detail("run_instances_assumed_role")["userIdentity"])
    by_principal = StampRules(scope_principals=("arn:aws:iam::*:role/MLTeam*",))
    assert stamps_for(["i-1"], {}, principal, AT, by_principal)["i-1"][tags.MANAGED] == "true"
    by_template = StampRules(scope_launch_templates=("lt-0123",))
    assert tags.MANAGED in stamps_for(["i-1"], {"i-1": {LAUNCH_TEMPLATE_TAG: "lt-0123"}}, None, AT, by_template)["i-1"]
    assert tags.MANAGED not in stamps_for(["i-1"], {"i-1": {LAUNCH_TEMPLATE_TAG: "lt-9"}}, None, AT, by_template)["i-1"]
    by_tag = StampRules(scope_tag_match=("team", "ml"))
    assert tags.MANAGED in stamps_for(["i-1"], {"i-1": {"team": "ml"}}, None, AT, by_tag)["i-1"]
    # A scope decision a person made stands, even "false".
    assert tags.MANAGED not in stamps_for(["i-1"], {"i-1": {tags.MANAGED: "false"}}, principal, AT, by_principal).get(
        "i-1", {}
    )


def test_owner_map_wins_over_the_principal() -> None:
    principal = principal_of(detail("run_instances_assumed_role")["userIdentity"])
    rules = StampRules(owner_map={"arn:aws:iam::*:role/MLTeam*": "ml-platform"})
    assert stamps_for(["i-1"], {}, principal, AT, rules)["i-1"][tags.OWNER] == "ml-platform"


def test_batches_group_identical_tags_and_respect_the_limit() -> None:
    same = {tags.OWNER: "bob"}
    planned = {f"i-{n}": same for n in range(TAG_BATCH + 10)} | {"vol-x": {tags.OWNER: "alice"}}
    batches = tag_batches(planned)
    assert sorted(len(ids) for ids, _ in batches) == [1, 10, TAG_BATCH]


def test_long_principals_are_clipped_to_the_tag_limit() -> None:
    identity = {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/" + "x" * 400, "userName": "x"}
    assert len(principal_of(identity).created_by) == 256
