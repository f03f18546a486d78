"""Issue 18: chat channels (Amazon Q Developer in chat applications) from cdk.json, subscribed to the topic, with a
read-only guardrail; nothing is created when unset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.config import load_config
from tests.infra.conftest import synth
from trainctl.core.errors import SettingsError

pytestmark = pytest.mark.infra

SLACK = {"slack_workspace_id": "T07EA123LEP", "slack_channel_id": "C07EZ1ABC23"}
TEAMS = {
    "teams_tenant_id": "a1b2c3d4-0000-4000-8000-0123456789ab",
    "teams_team_id": "0f1e2d3c-1111-4111-8111-ba9876543210",
    "teams_channel_id": "19%3ab6ef35dc342d56ba5654e6fc6d25a071%40thread.tacv2",
}


def of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def test_without_channel_settings_nothing_is_created(synthesized) -> None:
    template = synthesized[0]
    assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::Chatbot::")]


def test_slack_and_teams_channels_receive_the_topic_with_a_read_only_guardrail(tmp_path: Path) -> None:
    template = synth(tmp_path, {"trainctl": {"dry_run": True, **SLACK, **TEAMS}})
    [slack] = of_type(template, "AWS::Chatbot::SlackChannelConfiguration")
    [teams] = of_type(template, "AWS::Chatbot::MicrosoftTeamsChannelConfiguration")
    [topic_id] = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::SNS::Topic"]
    for channel in (slack, teams):
        properties = channel["Properties"]
        assert properties["SnsTopicArns"] == [{"Ref": topic_id}]
        [guardrail] = properties["GuardrailPolicies"]
        assert guardrail["Fn::Join"][1][-1].endswith(":iam::aws:policy/ReadOnlyAccess")
        role_id = properties["IamRoleArn"]["Fn::GetAtt"][0]
        role = template["Resources"][role_id]
        assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
            "Service": "chatbot.amazonaws.com"
        }
        # Notices only: the channel's role may do nothing at all.
        assert "ManagedPolicyArns" not in role["Properties"] and "Policies" not in role["Properties"]
        assert not [
            p for p in of_type(template, "AWS::IAM::Policy") if {"Ref": role_id} in p["Properties"].get("Roles", [])
        ]
    assert slack["Properties"]["SlackChannelId"] == SLACK["slack_channel_id"]
    assert teams["Properties"]["TeamsChannelId"] == TEAMS["teams_channel_id"]


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"slack_channel_id": "C07EZ1ABC23"}, "slack_workspace_id is not set"),
        ({**TEAMS, "teams_team_id": None}, "teams_team_id is not set"),
        ({**SLACK, "slack_channel_id": "#ml-alerts"}, "trainctl.slack_channel_id"),
        ({**TEAMS, "teams_channel_id": "19:abc@thread.tacv2"}, "trainctl.teams_channel_id"),
    ],
)
def test_a_half_or_malformed_channel_is_a_one_line_error(context: dict[str, object], named: str) -> None:
    with pytest.raises(SettingsError, match=named) as raised:
        load_config(context, default_region="us-east-1")
    assert "\n" not in str(raised.value)
