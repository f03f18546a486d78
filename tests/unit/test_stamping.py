"""Pure parts of the age guard: principals, created ids, what to stamp, how to batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import EVENTS
from trainctl.age_guard.rules import (
    ID_PATTERNS,
    LAUNCH_TEMPLATE_TAG,
    TAG_BATCH,
    AttachedVolume,
    StampRules,
    created_ids,
    launch_volumes,
    principal_of,
    requested_delete_on_termination,
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
        ("request_spot_instances_assumed_role", ["sir-p8kf3zxm"]),
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


# ------------------------------------------------------------------------------------------ issue 17, items 1-4


def test_a_console_user_is_the_creator_not_the_sign_in_service() -> None:
    """Item 2: IAMUser with invokedBy signin.amazonaws.com was stamped created-by=service:signin.amazonaws.com."""
    for case in ("run_instances_console_user", "create_volume_unauthorized"):
        principal = principal_of(detail(case)["userIdentity"])
        assert (principal.kind, principal.created_by, principal.owner) == (
            "iam-user",
            "arn:aws:iam::123456789012:user/dana",
            "dana",
        )
    console = principal_of(detail("attach_volume_console_user")["userIdentity"])
    assert console.kind == "iam-user" and console.owner == "alice"
    # "AWS Internal" names no service either: the assumed role's session made the call.
    internal = principal_of(detail("create_volume_aws_internal")["userIdentity"])
    assert internal.kind == "assumed-role" and internal.owner == "alice@example.com"


def test_invoked_by_names_a_service_for_service_identities_and_service_principals_only() -> None:
    user = {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/erin", "userName": "erin"}
    assert principal_of({**user, "invokedBy": "console.amazonaws.com"}).created_by == user["arn"]
    assert principal_of({**user, "invokedBy": "AWS Internal"}).created_by == user["arn"]
    assert principal_of({**user, "invokedBy": "autoscaling.amazonaws.com"}).kind == "aws-service"
    service = principal_of({"type": "AWSService", "invokedBy": "ec2fleet.amazonaws.com"})
    assert service.created_by == "service:ec2fleet.amazonaws.com"


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("create_fleet_single_item", ["i-0000000000000000e"]),
        ("create_snapshots_single_item", ["snap-0000000000000000e"]),
        ("run_instances_console_user", ["i-0000000000000000a"]),
        ("create_volume_aws_internal", ["vol-0000000000000000a"]),
    ],
)
def test_created_ids_read_cloudtrails_real_shapes(case: str, expected: list[str]) -> None:
    """Item 14: a set of one written as the object itself, a <Call>Response wrapper with xmlns and errorSet ""."""
    event = detail(case)
    assert created_ids(event["eventName"], event["responseElements"]) == expected


def test_an_interface_attachment_naming_another_instance_is_not_what_the_launch_created() -> None:
    """Item 1: every instanceId anywhere in the response was taken, a service-managed interface's included."""
    event = detail("run_instances_console_user")
    response = event["responseElements"]
    attachments = [eni["attachment"] for eni in response["instancesSet"]["items"][0]["networkInterfaceSet"]["items"]]
    assert any(a.get("instanceId") == "i-0fedcba9876543210" for a in attachments)
    assert "i-0fedcba9876543210" not in created_ids("RunInstances", response)
    # The requester and the source image are not creations either.
    assert created_ids("RunInstances", response) == ["i-0000000000000000a"]


@pytest.mark.parametrize("request_id", ["sir-dvxi7fsm", "sir-86k84j6p", "sir-p8kf3zxm"])
def test_todays_spot_request_ids_are_stamped(request_id: str) -> None:
    """Item 3: only hexadecimal spot request ids were accepted."""
    response = {"spotInstanceRequestSet": {"items": [{"spotInstanceRequestId": request_id}]}}
    assert created_ids("RequestSpotInstances", response) == [request_id]


@pytest.mark.parametrize(
    ("prefix", "good", "bad"),
    [
        ("i", ["i-0123456789abcdef0", "i-abcd1111"], ["i-0123456789abcdef", "i-ABCD1111", "i-abcd111", "i-abcd1111\n"]),
        ("vol", ["vol-049df61146c4d7901", "vol-1234abcd"], ["vol-049df61146c4d790", "vol-1234abcg"]),
        ("snap", ["snap-0123456789abcdef0", "snap-01234567"], ["snap-0123456789abcdef01", "snap-"]),
        ("ami", ["ami-0abcdef1234567890", "ami-12345678"], ["ami-0abcdef123456789"]),
        ("sir", ["sir-dvxi7fsm", "sir-86k84j6p"], ["sir-DVXI7FSM", "sir-dvxi7fs", "sir-dvxi7fsm9", "sir-dvxi-fsm"]),
    ],
)
def test_id_patterns_follow_the_documented_formats(prefix: str, good: list[str], bad: list[str]) -> None:
    """Item 3: 8 or 17 lowercase hex characters after the prefix; spot requests 8 lowercase letters or digits."""
    assert all(ID_PATTERNS[prefix].match(value) for value in good)
    assert not any(ID_PATTERNS[prefix].match(value) for value in bad)


LAUNCHED = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)


def test_only_the_volumes_the_launch_attached_are_its_creation() -> None:
    """Item 1: every volume attached when the (late) event was processed was stamped as the launch's."""
    attached = [
        AttachedVolume("vol-root", "/dev/xvda", LAUNCHED, True),
        AttachedVolume("vol-data", "/dev/sdf", LAUNCHED + timedelta(seconds=1), False),  # EC2's second apart
        AttachedVolume("vol-shared", "/dev/sdg", LAUNCHED + timedelta(minutes=3), False),  # attached by hand
        AttachedVolume("vol-unknown", "/dev/sdh", None, None),
    ]
    assert launch_volumes(LAUNCHED, attached) == ["vol-root", "vol-data"]
    asked = requested_delete_on_termination(detail("run_instances_console_user")["requestParameters"])
    assert asked == {"/dev/xvda": True, "/dev/sdf": False}
    # A volume on a device the launch mapped, but not as the launch asked for it: not the launch's own.
    changed = [AttachedVolume("vol-other", "/dev/sdf", LAUNCHED, True)]
    assert launch_volumes(LAUNCHED, changed, asked) == []
    assert launch_volumes(LAUNCHED, attached, asked) == ["vol-root", "vol-data"]


def test_a_resource_another_owner_stamped_is_never_brought_into_scope() -> None:
    """Item 1: the scope tag went onto a volume whose owner tag named someone else."""
    principal = principal_of(detail("run_instances_assumed_role")["userIdentity"])
    rules = StampRules(scope_principals=("arn:aws:iam::*:role/MLTeam*",))
    theirs = {"vol-shared": {tags.OWNER: "data-team"}, "vol-made": {tags.CREATED_BY: "arn:aws:iam::1:user/x"}}
    planned = stamps_for(["vol-shared", "vol-made", "vol-new"], theirs, principal, AT, rules)
    assert tags.MANAGED not in planned["vol-shared"] and tags.MANAGED not in planned["vol-made"]
    assert planned["vol-new"][tags.MANAGED] == "true"
    # The same owner's stamp is no obstacle; without a principal any owner already there is another's.
    mine = {"i-1": {tags.OWNER: "alice@example.com"}}
    assert stamps_for(["i-1"], mine, principal, AT, rules)["i-1"][tags.MANAGED] == "true"
    by_template = StampRules(scope_launch_templates=("lt-0123",))
    stamped = {"i-2": {LAUNCH_TEMPLATE_TAG: "lt-0123", tags.OWNER: "bob"}}
    assert tags.MANAGED not in stamps_for(["i-2"], stamped, None, AT, by_template).get("i-2", {})


def test_a_role_only_pattern_never_matches_the_session_name() -> None:
    """Item 4: a session name is the caller's choice; `role:` patterns match the role alone."""
    chosen = principal_of(
        {
            "type": "AssumedRole",
            "arn": "arn:aws:sts::123456789012:assumed-role/Sandbox/MLTeamTraining",
            "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::123456789012:role/Sandbox"}},
        }
    )
    alice = principal_of(detail("run_instances_assumed_role")["userIdentity"])
    assert chosen.identity == "arn:aws:iam::123456789012:role/Sandbox"
    # A plain pattern also sees the session name, which anyone allowed to assume Sandbox may choose.
    loose = StampRules(scope_principals=("*MLTeamTraining*",), owner_map={"*MLTeamTraining*": "ml-team"})
    assert stamps_for(["i-1"], {}, chosen, AT, loose)["i-1"][tags.MANAGED] == "true"
    strict = StampRules(
        scope_principals=("role:arn:aws:iam::*:role/MLTeamTraining",),
        owner_map={"role:arn:aws:iam::*:role/MLTeamTraining": "ml-team"},
    )
    assert tags.MANAGED not in stamps_for(["i-1"], {}, chosen, AT, strict)["i-1"]
    assert stamps_for(["i-1"], {}, chosen, AT, strict)["i-1"][tags.OWNER] == "MLTeamTraining"  # its own session
    assert stamps_for(["i-1"], {}, alice, AT, strict)["i-1"] | {} == {
        tags.CREATED_AT: "2026-11-28T10:00:00Z",
        tags.CREATED_BY: "arn:aws:iam::123456789012:role/MLTeamTraining session alice@example.com",
        tags.OWNER: "ml-team",
        tags.MANAGED: "true",
    }
