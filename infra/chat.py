"""Chat channels: Amazon Q Developer in chat applications (formerly AWS Chatbot) subscribed to the topic.

Optional, from cdk.json: a Slack channel, a Microsoft Teams channel, or both; nothing is created when unset. The
channels only receive notices (trainctl publishes its custom-notification schema for the `https` protocol); their
role holds no permission, and the guardrail caps whatever a channel member could run to read-only.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_chatbot as chatbot
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import DeployOptions

READ_ONLY_GUARDRAIL = "ReadOnlyAccess"


class ChatChannels(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, options: DeployOptions, topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        # Notices only: no policy, so channel members can run nothing through this role.
        self.role = iam.Role(
            self,
            "ChannelRole",
            assumed_by=iam.ServicePrincipal("chatbot.amazonaws.com"),
            description="trainctl chat channels: receive notices only",
        )
        guardrail = f"arn:{cdk.Aws.PARTITION}:iam::aws:policy/{READ_ONLY_GUARDRAIL}"
        # What every channel shares: the topic, the role, the guardrail, errors logged, no per-user roles.
        shared: dict[str, Any] = {
            "iam_role_arn": self.role.role_arn,
            "sns_topic_arns": [topic.topic_arn],
            "guardrail_policies": [guardrail],
            "logging_level": "ERROR",
            "user_role_required": False,
        }
        self.channels: list[cdk.CfnResource] = []
        if options.slack_workspace_id and options.slack_channel_id:
            self.channels.append(
                chatbot.CfnSlackChannelConfiguration(
                    self,
                    "Slack",
                    configuration_name="trainctl-slack",
                    slack_workspace_id=options.slack_workspace_id,
                    slack_channel_id=options.slack_channel_id,
                    **shared,
                )
            )
        if options.teams_tenant_id and options.teams_team_id and options.teams_channel_id:
            self.channels.append(
                chatbot.CfnMicrosoftTeamsChannelConfiguration(
                    self,
                    "Teams",
                    configuration_name="trainctl-teams",
                    teams_tenant_id=options.teams_tenant_id,
                    team_id=options.teams_team_id,
                    teams_channel_id=options.teams_channel_id,
                    **shared,
                )
            )
