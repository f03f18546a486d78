"""A whole AWS Organization in the stack (issue 29, part 2): the spoke StackSet, the hub's organization bus, and the
organization run on a Distributed Map; nothing of it in a single-account deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import load_config
from infra.declarations import declared_for
from infra.organization import BUS_NAME, MAP_LABEL, RESULTS_PREFIX, STATE_MACHINE_NAME
from infra.organization_spoke import HUB_BUS, HUB_ROLES, spoke_actions
from infra.policy import FUNCTION_PLATFORM
from tests.infra.conftest import ACCOUNT, REGION, synth
from trainctl.core import names
from trainctl.core.errors import SettingsError

pytestmark = pytest.mark.infra

ORG_ID = "o-a1b2c3d4e5"
UNITS = ["ou-ab12-cd34ef56", "ou-ab12-9z8y7x6w"]
EXCLUDED = ["210987654321"]
ORGANIZATION = {
    "org_units": UNITS,
    "org_id": ORG_ID,
    "org_exclude_accounts": EXCLUDED,
    "org_regions": ["us-east-1", "eu-west-1"],
    "org_spoke_role": "trainctl-spoke-access",
    "org_max_concurrency": 25,
    "org_tolerated_failure_percentage": 5,
}
SINGLE = {"dry_run": True, "regions": ["us-east-1", "eu-west-1"], "notification_email": "ml@example.com"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synth(tmp_path_factory.mktemp("organization"), {"trainctl": {**SINGLE, **ORGANIZATION}})


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def only(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    [(logical_id, resource)] = of_type(template, kind).items()
    return logical_id, resource


def stack_set(template: dict[str, Any]) -> dict[str, Any]:
    return only(template, "AWS::CloudFormation::StackSet")[1]["Properties"]


def spoke(template: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(stack_set(template)["TemplateBody"])
    return body


def organization_run(template: dict[str, Any]) -> dict[str, Any]:
    [machine] = [
        r
        for r in of_type(template, "AWS::StepFunctions::StateMachine").values()
        if r["Properties"]["StateMachineName"] == STATE_MACHINE_NAME
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else json.dumps(p).replace('"', "'") for p in parts)
    definition: dict[str, Any] = json.loads(text)
    return definition


def role_of_function(template: dict[str, Any], folder_description: str) -> list[dict[str, Any]]:
    """The statements of the role of the function whose description begins so."""
    [function] = [
        r
        for r in of_type(template, "AWS::Lambda::Function").values()
        if r["Properties"].get("Description", "").startswith(folder_description)
    ]
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in of_type(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_a_single_account_deployment_holds_nothing_of_the_organization(
    synthesized: tuple[dict[str, Any], Path], hub: dict[str, Any]
) -> None:
    single, _ = synthesized
    kinds = {r["Type"] for r in single["Resources"].values()}
    assert not kinds & {"AWS::CloudFormation::StackSet", "AWS::S3::Bucket", "AWS::Events::EventBusPolicy"}
    assert not [k for k in single["Resources"] if k.startswith("Organization")]
    machines = [
        r["Properties"]["StateMachineName"] for r in of_type(single, "AWS::StepFunctions::StateMachine").values()
    ]
    assert STATE_MACHINE_NAME not in machines
    # The organization adds its own resources and changes none of the single account's but those that list every
    # function and workflow (alarms, dashboard): every resource of one account is still there, as it was.
    added = set(hub["Resources"]) - set(single["Resources"])
    assert set(single["Resources"]) <= set(hub["Resources"])
    assert added and all(k.startswith("Organization") or k.startswith("Alarms") for k in added), sorted(added)
    changed = {
        k
        for k, r in single["Resources"].items()
        if r != hub["Resources"][k] and r["Type"] != "AWS::CloudWatch::Dashboard"
    }
    # But the spot and age_guard functions, which handle what spokes forward: their settings and their roles'
    # policies (test_organization_forwarded_stack.py says how), and the failure queue's policy, which admits the
    # organization bus's rules that deliver to them.
    assert all(k.startswith(("SpotInterruption", "AgeGuard", "FailuresPolicy")) for k in changed), sorted(changed)


def test_the_spoke_holds_the_role_the_forwarding_rules_and_the_documents_and_no_lambda(hub: dict[str, Any]) -> None:
    template = spoke(hub)
    kinds = sorted(r["Type"] for r in template["Resources"].values())
    assert kinds == sorted(
        ["AWS::IAM::Role"] * 2
        + ["AWS::IAM::Policy"]
        + ["AWS::IAM::ManagedPolicy"] * 2  # the spot and age_guard grants
        + ["AWS::Events::Rule"] * 3
        + ["AWS::SSM::Document"] * 4
    )
    assert not [k for k in kinds if k.startswith("AWS::Lambda::")]
    documents = {r["Properties"]["Name"] for r in of_type(template, "AWS::SSM::Document").values()}
    assert names.TRAINING_DOCUMENT in documents and names.SPOT_DOCUMENT in documents
    # Nothing a member account would need bootstrapped.
    assert "BootstrapVersion" not in template.get("Parameters", {})
    assert set(template["Parameters"]) == {HUB_ROLES, HUB_BUS}


def test_the_spoke_role_trusts_only_the_hubs_roles_inside_the_organization(hub: dict[str, Any]) -> None:
    template = spoke(hub)
    role = template["Resources"]["SpokeRole"]
    assert role["Properties"]["RoleName"] == "trainctl-spoke-access"
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"Ref": HUB_ROLES}}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG_ID}}
    # IAM is global: only the first covered region's stack instance holds the role.
    assert role["Condition"] == "RoleRegion"
    assert template["Conditions"]["RoleRegion"] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}
    # The hub hands the spoke the organization sweep's role first (the spot and age_guard roles follow it:
    # test_organization_forwarded_stack.py).
    [roles] = [p for p in stack_set(hub)["Parameters"] if p["ParameterKey"] == HUB_ROLES]
    sweep_function = next(
        r
        for r in of_type(hub, "AWS::Lambda::Function").values()
        if r["Properties"]["Description"].startswith("trainctl organization run: sweep")
    )
    sweep_role = {"Fn::GetAtt": [sweep_function["Properties"]["Role"]["Fn::GetAtt"][0], "Arn"]}
    assert roles["ParameterValue"]["Fn::Join"][1][0] == sweep_role


def test_the_spoke_role_holds_the_hub_sweeps_scoped_grants_and_the_persistent_deny(hub: dict[str, Any]) -> None:
    [policy] = [
        p for p in spoke(hub)["Resources"]["SpokeRole"]["Properties"]["Policies"] if p["PolicyName"] == "trainctl-spoke"
    ]
    statements = {s.get("Sid"): s for s in policy["PolicyDocument"]["Statement"]}
    deny = statements["NeverDestroyPersistent"]
    assert deny["Effect"] == "Deny" and "ec2:TerminateInstances" in deny["Action"]
    act = statements["ActOnInScopeOnly"]
    assert act["Condition"] == {"StringEqualsIgnoreCase": {"aws:ResourceTag/trainctl:managed": ["true", "yes", "1"]}}
    assert set(statements["MarkInScopeOnly"]["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]) == {
        "trainctl:cleanup-after"
    }
    granted = {
        a
        for s in statements.values()
        if s["Effect"] == "Allow"
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    # Exactly what the child does inside a spoke: no ledger, topic, key or STS there.
    assert granted == spoke_actions()
    assert not {a for a in granted if a.split(":")[0] in {"dynamodb", "sns", "kms", "sts", "iam", "organizations"}}


def test_spoke_rules_forward_what_the_hub_reacts_to_to_the_hubs_bus(hub: dict[str, Any]) -> None:
    rules = of_type(spoke(hub), "AWS::Events::Rule").values()
    forwarded = {t for r in rules for t in r["Properties"]["EventPattern"]["detail-type"]}
    assert forwarded == {
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "AWS API Call via CloudTrail",
    }
    for rule in rules:
        [target] = rule["Properties"]["Targets"]
        assert target["Arn"] == {"Ref": HUB_BUS}
        assert "RoleArn" in target


def test_the_stack_set_onboards_covered_units_by_itself_and_leaves_out_the_hub_and_the_deny_list(
    hub: dict[str, Any],
) -> None:
    props = stack_set(hub)
    assert props["PermissionModel"] == "SERVICE_MANAGED"
    assert props["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    assert props["Capabilities"] == ["CAPABILITY_NAMED_IAM"]
    [group] = props["StackInstancesGroup"]
    assert group["Regions"] == ["us-east-1", "eu-west-1"]
    targets = group["DeploymentTargets"]
    assert targets["OrganizationalUnitIds"] == UNITS
    assert targets["AccountFilterType"] == "DIFFERENCE"
    assert targets["Accounts"] == [*EXCLUDED, ACCOUNT]
    # CloudFormation's limit on a TemplateBody is 51,200 bytes.
    assert len(props["TemplateBody"].encode()) < 51_200


def test_the_hubs_bus_admits_the_organization_not_a_list_of_accounts(hub: dict[str, Any]) -> None:
    [bus] = of_type(hub, "AWS::Events::EventBus").values()
    assert bus["Properties"]["Name"] == BUS_NAME
    _, policy = only(hub, "AWS::Events::EventBusPolicy")
    statement = policy["Properties"]["Statement"]
    assert statement["Principal"] == "*"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Condition"] == {"StringEquals": {"aws:PrincipalOrgID": ORG_ID}}
    assert ACCOUNT not in json.dumps(statement)


def test_the_organization_run_is_a_distributed_map_with_bounded_concurrency_and_results_in_s3(
    hub: dict[str, Any],
) -> None:
    definition = organization_run(hub)
    assert definition["StartAt"] == "PlanAccounts"
    fan_out = definition["States"][definition["States"]["PlanAccounts"]["Next"]]
    assert fan_out["Type"] == "Map"
    assert fan_out["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert fan_out["ItemsPath"] == "$.items"
    assert fan_out["MaxConcurrency"] == 25
    assert fan_out["ToleratedFailurePercentage"] == 5
    assert fan_out["Label"] == MAP_LABEL
    bucket_id, bucket = only(hub, "AWS::S3::Bucket")
    writer = fan_out["ResultWriter"]
    assert writer["Resource"].endswith(":states:::s3:putObject")
    assert writer["Parameters"] == {"Bucket": f"{{'Ref': '{bucket_id}'}}", "Prefix": RESULTS_PREFIX}
    props = bucket["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    [rule] = props["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == 90


def test_the_organization_run_is_scheduled_at_the_sweeps_cadence(hub: dict[str, Any]) -> None:
    machine_id = next(
        k
        for k, r in of_type(hub, "AWS::StepFunctions::StateMachine").items()
        if r["Properties"]["StateMachineName"] == STATE_MACHINE_NAME
    )
    [schedule] = [
        r
        for r in of_type(hub, "AWS::Scheduler::Schedule").values()
        if r["Properties"]["Target"]["Arn"] == {"Ref": machine_id}
    ]
    assert schedule["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    assert json.loads(schedule["Properties"]["Target"]["Input"]) == {"task": "organization_plan"}


def test_hub_functions_assume_only_the_spoke_role_in_the_organization_and_act_in_no_account_themselves(
    hub: dict[str, Any],
) -> None:
    sweep = role_of_function(hub, "trainctl organization run: sweep")
    [assume] = [s for s in sweep if "sts:AssumeRole" in s["Action"]]
    assert assume["Resource"] == "arn:aws:iam::*:role/trainctl-spoke-access"
    assert assume["Condition"] == {"StringEquals": {"aws:ResourceOrgID": ORG_ID}}
    plan = role_of_function(hub, "trainctl organization run: the accounts")
    for statements in (sweep, plan):
        allowed = {
            a
            for s in statements
            if s["Effect"] == "Allow"
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        }
        assert not {a for a in allowed if a.startswith(("ec2:", "ssm:SendCommand"))}
    assert not [s for s in plan if "sts:AssumeRole" in s["Action"]]


def test_the_functions_leave_the_hubs_own_account_out_of_the_run(hub: dict[str, Any]) -> None:
    for function in of_type(hub, "AWS::Lambda::Function").values():
        if function["Properties"]["Description"].startswith("trainctl organization run"):
            excluded = function["Properties"]["Environment"]["Variables"]["TRAINCTL_ORG_EXCLUDE_ACCOUNTS"]
            assert excluded == f"{EXCLUDED[0]},{ACCOUNT}"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"org_exclude_accounts": ["21098765432"]}, "org_exclude_accounts"),
        ({"org_exclude_accounts": ["2109876543210"]}, "org_exclude_accounts"),
        ({"org_enforce_accounts": ["12345678901a"]}, "org_enforce_accounts"),
        ({"org_units": ["ou-nope"]}, "org_units"),
        ({"org_id": None}, "org_id"),
        ({"org_id": "o-short"}, "org_id"),
        ({"org_tolerated_failure_percentage": 101}, "org_tolerated_failure_percentage"),
    ],
)
def test_bad_organization_settings_are_refused_at_synth_in_one_line(settings: dict[str, Any], named: str) -> None:
    context = {**ORGANIZATION, **settings}
    context = {k: v for k, v in context.items() if v is not None}
    with pytest.raises(SettingsError) as refused:
        load_config(context, default_region=REGION)
    message = str(refused.value)
    assert f"trainctl.{named}" in message
    assert "\n" not in message


def test_an_organization_id_without_units_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"trainctl\.org_id: set, but no organizational unit"):
        load_config({"org_id": ORG_ID}, default_region=REGION)


def test_each_hub_function_is_granted_its_declarations_less_what_it_does_in_spokes(hub: dict[str, Any]) -> None:
    def allowed(statements: list[dict[str, Any]]) -> set[str]:
        return {
            a
            for s in statements
            if s["Effect"] == "Allow"
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        }

    in_spokes = spoke_actions() | {"sts:GetCallerIdentity"}
    for description, folder, also_withheld in (
        ("trainctl organization run: sweep", "organization_sweep", set()),
        ("trainctl organization run: the accounts", "organization_plan", {"sts:AssumeRole"}),
    ):
        expected = (declared_for(folder).actions - in_spokes - also_withheld) | set(FUNCTION_PLATFORM)
        assert allowed(role_of_function(hub, description)) == expected, folder
