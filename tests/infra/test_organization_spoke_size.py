"""The spoke role's policies do not grow with the regions (issue 29): resource ARNs with the region wildcarded and
one Deny outside the covered regions (aws:RequestedRegion), instead of every region's ARNs, so that IAM's size
quotas hold however many regions are covered, and the grants stay exactly as narrow as per-region ARNs made them."""

from __future__ import annotations

import fnmatch
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest

from infra.age_guard import age_guard_routes, never_restamp
from infra.cleanup_sweep import sweep_routes
from infra.organization_spoke import SWEEP_FOLDER, spoke_actions, spoke_template
from infra.permissions import never_destroy_persistent
from infra.policy import DeclaredPolicy, reads_on_any
from infra.spot_interruption import spot_routes
from tests.infra.gates import as_list, tag_key_limits_without_null, unconditioned
from tests.infra.test_scanners import parliament_findings
from trainctl.core import names, tags

pytestmark = pytest.mark.infra

ACCOUNT = "123456789012"
SCOPE = tags.MANAGED
# Commercial regions, longest names among them, so that the sizes measured are the largest these counts can give.
ALL_REGIONS = [
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "eu-central-1",
    "eu-central-2",
    "me-central-1",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "us-east-1",
    "us-east-2",
    "us-west-1",
]
COUNTS = (1, 4, 8, 17)
# IAM User Guide, "IAM and AWS STS quotas": characters without whitespace.
ROLE_INLINE_LIMIT = 10_240
MANAGED_LIMIT = 6_144
OUTSIDE = "ap-east-1"  # a region no spoke below covers
OUTSIDE_REGIONS = "OnlyInCoveredRegions"  # the Sid of each policy's Deny outside the covered regions


def resolved(value: Any) -> Any:
    """The template's policy with the account the stack instance resolves it to."""
    if isinstance(value, list):
        return [resolved(v) for v in value]
    if isinstance(value, dict):
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(str(resolved(p)) for p in parts)
        if "Ref" in value:
            assert value["Ref"] == "AWS::AccountId", value
            return ACCOUNT
        return {k: resolved(v) for k, v in value.items()}
    return value


def iam_size(document: Mapping[str, Any]) -> int:
    """A policy's size as IAM counts it against its quotas: every character but whitespace."""
    return sum(not c.isspace() for c in json.dumps(document))


def policies(regions: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each policy of the spoke role by name (the inline one and the two managed ones), resolved."""
    template = spoke_template(
        role_name="trainctl-spoke", regions=regions, scope_tag=SCOPE, organization_id="o-a1b2c3d4e5"
    )
    resources = template["Resources"]
    found = {p["PolicyName"]: resolved(p["PolicyDocument"]) for p in resources["SpokeRole"]["Properties"]["Policies"]}
    for r in resources.values():
        if r["Type"] == "AWS::IAM::ManagedPolicy":
            assert r["Properties"]["Roles"] == [{"Ref": "SpokeRole"}]
            found[r["Properties"]["ManagedPolicyName"]] = resolved(r["Properties"]["PolicyDocument"])
    assert set(found) == {"trainctl-spoke", "trainctl-spoke-spot", "trainctl-spoke-stamp"}
    return found


@pytest.fixture(scope="module")
def by_count() -> dict[int, dict[str, dict[str, Any]]]:
    return {n: policies(ALL_REGIONS[:n]) for n in COUNTS}


def test_every_spoke_policy_stays_under_its_iam_size_quota_however_many_regions(
    by_count: dict[int, dict[str, dict[str, Any]]],
) -> None:
    sizes = {n: {name: iam_size(doc) for name, doc in docs.items()} for n, docs in by_count.items()}
    for n, size in sizes.items():
        assert size["trainctl-spoke"] <= ROLE_INLINE_LIMIT, (n, size)
        assert size["trainctl-spoke-spot"] <= MANAGED_LIMIT, (n, size)
        assert size["trainctl-spoke-stamp"] <= MANAGED_LIMIT, (n, size)
    # A region adds its name to the few region lists, nothing else: no resource ARN names a region.
    for docs in by_count.values():
        for document in docs.values():
            for statement in document["Statement"]:
                for resource in as_list(statement["Resource"]):
                    assert not any(f":{region}:" in resource for region in ALL_REGIONS), resource
    for name in sizes[1]:
        lists = json.dumps(by_count[1][name]).count("aws:RequestedRegion")
        per_region = max(len(r) + 3 for r in ALL_REGIONS) * lists  # '"name",' in each list
        assert sizes[17][name] - sizes[1][name] <= 16 * per_region, (name, sizes)


def test_each_policy_denies_its_region_wildcarded_actions_outside_the_covered_regions(
    by_count: dict[int, dict[str, dict[str, Any]]],
) -> None:
    for n, docs in by_count.items():
        covered = ALL_REGIONS[:n]
        for name, document in docs.items():
            statements = document["Statement"]
            [outside] = [s for s in statements if s.get("Sid") == OUTSIDE_REGIONS]
            assert outside["Effect"] == "Deny" and outside["Resource"] == "*", name
            assert outside["Condition"] == {"StringNotEquals": {"aws:RequestedRegion": covered}}, name
            denied = set(as_list(outside["Action"]))
            # Every grant on a region-wildcarded ARN is held to the covered regions: by that Deny, or by its own
            # condition (age_guard's stamps had one before this change).
            for s in statements:
                if s["Effect"] != "Allow" or not any(r.split(":")[3:4] == ["*"] for r in as_list(s["Resource"])):
                    continue
                own = s.get("Condition", {}).get("StringEquals", {}).get("aws:RequestedRegion")
                assert own == covered or set(as_list(s["Action"])) <= denied, (name, n, s["Sid"])
            # And the Deny refuses nothing the policy does not grant on such an ARN.
            wildcarded = {
                a
                for s in statements
                if s["Effect"] == "Allow" and any(r.split(":")[3:4] == ["*"] for r in as_list(s["Resource"]))
                for a in as_list(s["Action"])
            }
            assert denied <= wildcarded, (name, denied - wildcarded)


# ---------------------------------------------------------------- the same decisions as per-region ARNs


def per_region_policies(regions: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """What the spoke role held before: the hub's own routes, with every region's ARNs named."""

    def granted(folder: str, routes: Iterable[Any]) -> list[dict[str, Any]]:
        statements = DeclaredPolicy(folder, spoke_actions(folder)).statements(routes)
        return [s.to_statement_json() for s in statements]

    kw = {"regions": regions, "account": ACCOUNT, "scope_tag": SCOPE}
    return {
        "trainctl-spoke": [
            never_destroy_persistent().to_statement_json(),
            *granted(SWEEP_FOLDER, sweep_routes(**kw)),
        ],
        "trainctl-spoke-spot": granted("spot_interruption", spot_routes(**kw)),
        "trainctl-spoke-stamp": [
            *granted("age_guard", age_guard_routes(**kw)),
            *[s.to_statement_json() for s in never_restamp(SCOPE)],
        ],
    }


def _holds(operator: str, have: Any, wanted: Any) -> bool:
    """One condition operator as the IAM User Guide describes it, for the keys these policies use."""
    allowed = [str(w) for w in as_list(wanted)]
    if operator == "Null":
        return (have is None) == (allowed == ["true"])
    if operator == "ForAllValues:StringEquals":
        return have is None or all(v in allowed for v in have)
    if operator == "ForAnyValue:StringEquals":
        return have is not None and any(v in allowed for v in have)
    if operator == "StringEquals":
        return have is not None and have in allowed
    if operator == "StringNotEquals":
        return have is None or have not in allowed
    if operator == "StringEqualsIgnoreCase":
        return have is not None and have.lower() in [a.lower() for a in allowed]
    if operator == "StringNotEqualsIgnoreCase":
        return have is None or have.lower() not in [a.lower() for a in allowed]
    raise AssertionError(f"an operator this reading does not know: {operator}")


def _matches(statement: Mapping[str, Any], action: str, resource: str, context: Mapping[str, Any]) -> bool:
    if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in as_list(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in as_list(statement["Resource"])):
        return False
    return all(
        _holds(operator, context.get(key), wanted)
        for operator, block in statement.get("Condition", {}).items()
        for key, wanted in block.items()
    )


def decide(statements: Sequence[Mapping[str, Any]], action: str, resource: str, context: Mapping[str, Any]) -> bool:
    """Allowed by one statement of the role and denied by none (an explicit Deny wins)."""
    matching = [s for s in statements if _matches(s, action, resource, context)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def requests(regions: Sequence[str]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """Every action the spoke role may be asked for, on each kind of resource, in each region (covered or not),
    for resources in scope or not, persistent or not, with the tag keys and creating calls its code sends."""
    actions = sorted(spoke_actions() | spoke_actions("spot_interruption") | spoke_actions("age_guard"))
    documents = [names.TRAINING_DOCUMENT, names.SPOT_DOCUMENT, names.TRANSFER_DOCUMENT]
    resource_tags: list[dict[str, str]] = [
        {},
        {SCOPE: "true"},
        {SCOPE: "Yes", tags.PERSISTENT: "true"},
        {SCOPE: "1", tags.PERSISTENT: "false"},
        {tags.CREATED_AT: "2026-01-01T00:00:00Z"},
    ]
    tag_keys: list[list[str] | None] = [
        None,
        [tags.CLEANUP_AFTER],
        [tags.CREATED_AT, tags.OWNER],
        [tags.SPOT_INSTANCE, "Name"],
        ["Name", "team"],
    ]
    for region in [*regions, OUTSIDE]:
        resources = [
            "*",
            f"arn:aws:ec2:{region}:{ACCOUNT}:instance/i-0123456789abcdef0",
            f"arn:aws:ec2:{region}:{ACCOUNT}:volume/vol-0123456789abcdef0",
            f"arn:aws:ec2:{region}::snapshot/snap-0123456789abcdef0",
            f"arn:aws:ec2:{region}::image/ami-0123456789abcdef0",
            f"arn:aws:ec2:{region}:{ACCOUNT}:spot-instances-request/sir-01234567",
            *[f"arn:aws:ssm:{region}:{ACCOUNT}:document/{d}" for d in documents],
        ]
        for action, resource, present, keys, creating in itertools.product(
            actions, resources, resource_tags, tag_keys, (None, "CreateSnapshots")
        ):
            context: dict[str, Any] = {"aws:RequestedRegion": region, "aws:TagKeys": keys, "ec2:CreateAction": creating}
            for key, value in present.items():
                context[f"aws:ResourceTag/{key}"] = value
                context[f"ssm:resourceTag/{key}"] = value
            for key in keys or []:
                context[f"aws:RequestTag/{key}"] = "x"
            yield action, resource, context


def test_the_spoke_role_decides_every_request_as_per_region_arns_did_and_refuses_other_regions() -> None:
    regions = ["us-east-1", "eu-west-1", "ap-southeast-2"]
    before = [s for part in per_region_policies(regions).values() for s in part]
    after = [s for document in policies(regions).values() for s in document["Statement"]]
    allowed = {"covered": 0, "outside": 0}
    for action, resource, context in requests(regions):
        decision = decide(after, action, resource, context)
        assert decision == decide(before, action, resource, context), (action, resource, context)
        if decision:
            allowed["covered" if context["aws:RequestedRegion"] in regions else "outside"] += 1
            # Outside the covered regions, only the reads IAM cannot hold to a resource (as before).
            if context["aws:RequestedRegion"] == OUTSIDE:
                assert reads_on_any(action), (action, resource)
    assert allowed["covered"] > allowed["outside"] > 0, allowed
    # The writes that matter, spelled out: in scope in a covered region, refused outside, never on persistent.
    volume = "arn:aws:ec2:{}:" + ACCOUNT + ":volume/vol-0123456789abcdef0"
    in_scope = {f"aws:ResourceTag/{SCOPE}": "true"}
    for action in ("ec2:DeleteVolume", "ec2:CreateSnapshots"):
        assert decide(after, action, volume.format("eu-west-1"), {**in_scope, "aws:RequestedRegion": "eu-west-1"})
        assert not decide(after, action, volume.format(OUTSIDE), {**in_scope, "aws:RequestedRegion": OUTSIDE})
    persistent = {**in_scope, f"aws:ResourceTag/{tags.PERSISTENT}": "true", "aws:RequestedRegion": "eu-west-1"}
    assert not decide(after, "ec2:DeleteVolume", volume.format("eu-west-1"), persistent)


def test_the_spoke_policies_pass_the_iam_gates_and_parliament(by_count: dict[int, dict[str, dict[str, Any]]]) -> None:
    for document in by_count[17].values():
        assert unconditioned(document["Statement"]) == []
        assert tag_key_limits_without_null(document["Statement"]) == []
        assert parliament_findings(document) == []
