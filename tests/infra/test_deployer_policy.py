"""The deployer's execution policy in README.md covers what every documented setting can put in the stack.

Issue 26, item 4: with Slack or Teams settings the template gained AWS::Chatbot::* resources that the README's
policy did not allow. Each optional deploy setting is synthesised on its own, and all of them together, and every
resource of each template is checked against the policy as a deployer copies it from the README.
"""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from infra import readme
from infra.config import DeployOptions
from infra.readme import default_of
from tests.infra.conftest import synth
from trainctl.core import names
from trainctl.lyceum.settings import LyceumSettings
from trainctl.organization.settings import OrganizationSettings
from trainctl.runpod.settings import RunpodSettings

pytestmark = pytest.mark.infra

TEXT = readme.README.read_text(encoding="utf-8")
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# Each optional setting on its own (with the settings it needs to be whole), then every one together.
OPTIONAL: dict[str, dict[str, Any]] = {
    "notification_email": {"notification_email": "ml@example.com"},
    "prewarm_buckets": {"prewarm_buckets": ["training-datasets"], "prewarm_bucket_keys": [KEY_ARN]},
    "recovery_instance_roles": {"recovery_instance_roles": ["TrainingInstanceRole"]},
    "slack": {"slack_workspace_id": "T0123ABCD", "slack_channel_id": "C0123ABCD"},
    "teams": {
        "teams_tenant_id": "11111111-2222-3333-4444-555555555555",
        "teams_team_id": "66666666-7777-8888-9999-000000000000",
        "teams_channel_id": "19%3a0123456789abcdef%40thread.tacv2",
    },
    "trace_aws_calls": {"trace_aws_calls": True},
    # A provider's sweep (issue 28): its function, role, schedule and alarm, and a grant on its secret.
    "runpod": {
        "runpod_name_prefix": "train-",
        "runpod_owner_pattern": "^train-(?P<owner>[a-z]+)-",
        "runpod_key_secret": "trainctl/runpod",
        "runpod_no_endpoints": True,
    },
    "runpod_ids": {"runpod_ids": ["pod0a1b2c"], "runpod_key_secret": "trainctl/runpod"},
    "lyceum": {
        "lyceum_name_prefix": "team-",
        "lyceum_ids": ["vm-0a1b2c"],
        "lyceum_owner_pattern": "^team-(?P<owner>[a-z]+)-",
        "lyceum_vm_ttl": "72h",
        "lyceum_run_max_wall_clock": "24h",
        "lyceum_key_secret": "trainctl/lyceum",
        "lyceum_min_credits": 25,
    },
    # A whole AWS Organization (issue 29): the spoke StackSet, the organization bus, the run and its bucket.
    "organization": {
        "org_id": "o-a1b2c3d4e5",
        "org_units": ["ou-ab12-cd34ef56"],
        "org_exclude_accounts": ["210987654321"],
        "org_include_accounts": ["111122223333"],
        "org_regions": ["us-east-1", "eu-west-1"],
        "org_enforce_units": ["ou-ab12-cd34ef56"],
        "org_enforce_accounts": ["111122223333"],
    },
    # The organization's cost run judged by thresholds of its own, each account's and the whole organization's.
    "organization_cost_thresholds": {
        "org_id": "o-a1b2c3d4e5",
        "org_units": ["ou-ab12-cd34ef56"],
        "org_account_hourly_usd": 40,
        "org_account_daily_usd": 600,
        "org_hourly_usd": 900,
        "org_daily_usd": 15000,
    },
}
EVERY_ONE = {key: value for settings in OPTIONAL.values() for key, value in settings.items()}
# CloudFormation namespaces whose IAM service prefix is not their name in lower case.
PREFIX = {"StepFunctions": "states"}
# What CloudFormation's resource schemas list among a type's create permissions beyond its own service and the
# iam:PassRole of the roles it is given (AWS::Chatbot::SlackChannelConfiguration and
# MicrosoftTeamsChannelConfiguration: iam:CreateServiceLinkedRole, for AWSServiceRoleForAWSChatbot).
CHATBOT_ROLE = "arn:aws:iam::ACCOUNT:role/aws-service-role/management.chatbot.amazonaws.com/AWSServiceRoleForAWSChatbot"
BEYOND_THE_SERVICE = {
    "AWS::Chatbot::SlackChannelConfiguration": [("iam:CreateServiceLinkedRole", CHATBOT_ROLE)],
    "AWS::Chatbot::MicrosoftTeamsChannelConfiguration": [("iam:CreateServiceLinkedRole", CHATBOT_ROLE)],
}


def documented_policy() -> dict[str, Any]:
    blocks = re.findall(r"```json\n(.*?)\n```", TEXT, flags=re.DOTALL)
    [policy] = [json.loads(b) for b in blocks if '"Sid": "TrainctlStackResources"' in b]
    assert isinstance(policy, dict)
    return policy


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """An Allow statement names the action and the resource (IAM's wildcards; actions are case-insensitive)."""
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatchcase(action.lower(), pattern.lower()) for pattern in _listed(statement["Action"]))
        and any(fnmatchcase(resource, pattern) for pattern in _listed(statement["Resource"]))
        for statement in policy["Statement"]
    )


def physical_names(template: dict[str, Any]) -> dict[str, str]:
    """The ARN of each role and instance profile: its own name, else CloudFormation's STACK-LogicalId-random."""
    arns = {}
    for logical_id, resource in template["Resources"].items():
        kind = {
            "AWS::IAM::Role": ("role", "RoleName"),
            "AWS::IAM::InstanceProfile": ("instance-profile", "InstanceProfileName"),
        }
        if resource["Type"] in kind:
            path, name_property = kind[resource["Type"]]
            name = resource["Properties"].get(name_property) or f"{names.STACK_NAME}-{logical_id}-A1B2C3D4E5F6"[:64]
            arns[logical_id] = f"arn:aws:iam::ACCOUNT:{path}/{name}"
    return arns


def passed_roles(properties: object, roles: dict[str, str]) -> list[str]:
    """The roles a resource is given (Fn::GetAtt of a role's Arn anywhere in its properties)."""
    if isinstance(properties, dict):
        target = properties.get("Fn::GetAtt")
        if isinstance(target, list) and target[0] in roles and target[1] == "Arn":
            return [roles[target[0]]]
        return [arn for value in properties.values() for arn in passed_roles(value, roles)]
    if isinstance(properties, list):
        return [arn for value in properties for arn in passed_roles(value, roles)]
    return []


def uncovered(template: dict[str, Any], policy: dict[str, Any]) -> list[str]:
    """Each resource of the template the policy would not let CloudFormation create, with the missing grant."""
    arns = physical_names(template)
    missing = []
    for logical_id, resource in template["Resources"].items():
        kind = resource["Type"]
        _, namespace, name = kind.split("::")
        needs: list[tuple[str, str]]
        if kind in ("AWS::IAM::Role", "AWS::IAM::InstanceProfile"):
            needs = [(f"iam:Create{name}", arns[logical_id])]
        elif kind == "AWS::IAM::Policy":  # an inline policy of the stack's own roles
            needs = [("iam:PutRolePolicy", arns[role["Ref"]]) for role in resource["Properties"]["Roles"]]
        else:
            needs = [(f"{PREFIX.get(namespace, namespace.lower())}:Create{name}", "*")]
        needs += [("iam:PassRole", arn) for arn in passed_roles(resource.get("Properties", {}), arns)]
        needs += BEYOND_THE_SERVICE.get(kind, [])
        missing += [
            f"{kind} {logical_id}: {action} on {arn}" for action, arn in needs if not allows(policy, action, arn)
        ]
    return missing


def test_every_optional_setting_is_synthesised() -> None:
    """A new optional deploy setting (or a provider's setting, which may add a provider's sweep) gets its own
    case here, or this fails."""
    models = (DeployOptions, RunpodSettings, LyceumSettings, OrganizationSettings)
    optional = {
        name for model in models for name, field in model.model_fields.items() if default_of(field) in (None, (), False)
    }
    assert optional == set(EVERY_ONE)


@pytest.mark.parametrize("case", [*OPTIONAL, "every optional setting"])
def test_the_documented_policy_covers_the_stack_with(case: str, tmp_path: Path) -> None:
    settings = OPTIONAL.get(case, EVERY_ONE)
    template = synth(tmp_path, {"trainctl": {"dry_run": True, **settings}})
    assert uncovered(template, documented_policy()) == []


def test_a_chat_channel_needs_what_the_policy_grants_for_it() -> None:
    """The check itself: without its chatbot grants the documented policy would not cover a Slack channel."""
    policy = documented_policy()
    template = {
        "Resources": {
            "ChannelRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Slack": {
                "Type": "AWS::Chatbot::SlackChannelConfiguration",
                "Properties": {"IamRoleArn": {"Fn::GetAtt": ["ChannelRole", "Arn"]}},
            },
        }
    }
    assert uncovered(template, policy) == []
    statements = policy["Statement"]
    without_chatbot = [s for s in statements if "ChatChannels" not in s["Sid"]]
    for statement in without_chatbot:
        if isinstance(statement["Action"], list):
            statement["Action"] = [a for a in statement["Action"] if not a.startswith("chatbot:")]
    assert uncovered(template, {"Statement": without_chatbot}) == [
        "AWS::Chatbot::SlackChannelConfiguration Slack: chatbot:CreateSlackChannelConfiguration on *",
        f"AWS::Chatbot::SlackChannelConfiguration Slack: iam:CreateServiceLinkedRole on {CHATBOT_ROLE}",
    ]


def test_the_service_linked_role_is_granted_for_chat_only() -> None:
    [statement] = [s for s in documented_policy()["Statement"] if s["Action"] == "iam:CreateServiceLinkedRole"]
    assert statement["Condition"] == {"StringEquals": {"iam:AWSServiceName": "management.chatbot.amazonaws.com"}}


def test_the_readme_names_the_stack_outputs_as_the_stack_does(synthesized: tuple[dict[str, Any], Path]) -> None:
    """Issue 26, item 9: the README said the topic's output was TopicArn; the stack names it SweepTopicArn."""
    named = set(re.findall(r"stack output `(\w+)`", TEXT))
    assert "SweepTopicArn" in named
    assert named <= set(synthesized[0]["Outputs"])
