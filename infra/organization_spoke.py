"""The spoke: what the StackSet puts in every covered account and region, and nothing else.

A role the hub's organization functions assume (trusted by their role ARNs only, and only from inside the
organization), holding the hub sweep's own tag-conditioned grants and the Deny on persistent resources; rules that
forward spot warnings, rebalance recommendations, state changes and the CloudTrail calls age_guard stamps to the
hub's organization bus; and trainctl's SSM documents. No Lambda runs in a spoke: the compute stays in the hub.

The template is synthesised by CDK in an App of its own, checked by cdk-nag like the hub, and handed to the StackSet
as its TemplateBody: no asset, no bootstrap, no AWS call at synth. The role is global, the rest regional: the role
is created only in the first covered region, so that one stack instance per region never names it twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.age_guard import age_guard_routes, never_restamp, stamped_arns
from infra.cleanup_sweep import sweep_routes
from infra.declarations import declared_for
from infra.node_banner import silence_node_end_of_life
from infra.permissions import acknowledge, document_arns, ec2_arns, never_destroy_persistent
from infra.policy import DeclaredPolicy, Route
from infra.spot_interruption import SPOT_DETAIL_TYPES, STATE_CHANGES, spot_routes
from trainctl.age_guard.rules import STAMPED_EVENTS, USE_EVENTS
from trainctl.aws import ssm_documents as documents
from trainctl.core import names

# The child that sweeps one account-region with the spoke role's credentials.
SWEEP_FOLDER = "organization_sweep"
# Hub-side services the child calls with its own role: ledger and lease, topic, their key, the organization's
# accounts and units, STS (to reach the spoke, and to check which account answered), and the Price List API
# (list prices are the organization's, not an account's).
HUB_SERVICES = ("dynamodb", "sns", "kms", "organizations", "sts", "pricing", "states")
# The hub's functions that act in a member for an event it forwarded: spot warnings, and the stamps (the spoke role
# holds their grants too, each in a policy of its own). The spot function's workflows (states) are the hub's.
FORWARDED_FOLDERS = ("spot_interruption", "age_guard")
# The stack's parameters, given by the StackSet: the hub's roles the spoke role trusts, and the hub's bus.
HUB_ROLES = "HubRoleArns"
HUB_BUS = "HubEventBusArn"
# The documents the hub's capabilities run on a spoke's instances, and those people run with `trainctl transfer`.
SPOKE_DOCUMENTS = {
    "TrainingCheckDocument": (names.TRAINING_DOCUMENT, documents.TRAINING_CHECK),
    "CheckpointDocument": (names.SPOT_DOCUMENT, documents.SPOT_CHECKPOINT),
    "TransferDocument": (names.TRANSFER_DOCUMENT, documents.TRANSFER),
    "LocalCacheDocument": (names.LOCAL_CACHE_DOCUMENT, documents.LOCAL_CACHE),
}
# Instances starting (age_guard attributes those the trail did not), and their last moments (spot).
FORWARDED_STATES = ["running", *STATE_CHANGES]


def spoke_actions(folder: str = SWEEP_FOLDER) -> frozenset[str]:
    """What a hub function does inside a spoke: every action its code declares but those it calls on the hub."""
    return frozenset(a for a in declared_for(folder).actions if a.split(":", 1)[0] not in HUB_SERVICES)


def hub_actions() -> frozenset[str]:
    """What the child does in the hub with its own role."""
    return frozenset(a for a in declared_for(SWEEP_FOLDER).actions if a.split(":", 1)[0] in HUB_SERVICES)


# Denied outside the covered regions: every spoke grant whose ARNs would otherwise name each region.
OUTSIDE_REGIONS = "OnlyInCoveredRegions"


def regional_grants(
    owner: str,
    declared: frozenset[str],
    routes_for: Callable[..., list[Route]],
    *,
    regions: Sequence[str],
    account: str,
    scope_tag: str,
) -> list[iam.PolicyStatement]:
    """A capability's grants with the region wildcarded in their ARNs, and one Deny of those actions elsewhere.

    Naming each region's ARNs made the policies grow with the regions until IAM refused them (a managed policy
    holds 6,144 characters, a role's inline policies 10,240 together; IAM User Guide, "IAM and AWS STS quotas").
    aws:RequestedRegion is in every request's context, EC2 and SSM calls included (IAM User Guide, "AWS global
    condition context keys" and "AWS: Denies access to AWS based on the requested Region"), and none of these
    actions reaches another region's resource: the grants stay exactly as narrow, and the regions are named once.
    Routes whose resources name no region (reads on "*", stamps already held by aws:RequestedRegion) are unchanged.
    """
    listed = routes_for(regions=regions, account=account, scope_tag=scope_tag)
    anywhere = routes_for(regions=["*"], account=account, scope_tag=scope_tag)
    if [r.sid for r in listed] != [r.sid for r in anywhere]:
        raise ValueError(f"{owner}: its routes change with the regions given")
    wildcarded = {r.sid for r, w in zip(listed, anywhere, strict=True) if r.resources != w.resources}
    routes = [w if r.sid in wildcarded else r for r, w in zip(listed, anywhere, strict=True)]
    statements = DeclaredPolicy(owner, declared).statements(routes)
    bound = sorted({a for s in statements if s.sid in wildcarded for a in s.actions})
    if not bound:
        return statements
    outside = iam.PolicyStatement(
        sid=OUTSIDE_REGIONS,
        effect=iam.Effect.DENY,
        actions=bound,
        resources=["*"],
        conditions={"StringNotEquals": {"aws:RequestedRegion": list(regions)}},
    )
    return [*statements, outside]


class SpokeStack(cdk.Stack):
    """One stack instance per covered account and region."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        role_name: str,
        role_region: str,
        regions: Sequence[str],
        scope_tag: str,
        organization_id: str,
    ) -> None:
        # No bootstrap in a member account: the template carries neither asset nor bootstrap version check.
        super().__init__(scope, construct_id, synthesizer=cdk.BootstraplessSynthesizer())
        hub_roles = cdk.CfnParameter(
            self,
            HUB_ROLES,
            type="CommaDelimitedList",
            description="The hub's roles that may assume the spoke role (their ARNs)",
        )
        hub_bus = cdk.CfnParameter(
            self, HUB_BUS, type="String", description="The hub's organization event bus (its ARN)"
        )
        self.role = self._spoke_role(
            role_name=role_name,
            role_region=role_region,
            regions=regions,
            scope_tag=scope_tag,
            organization_id=organization_id,
            hub_roles=hub_roles.value_as_list,
        )
        self._forwarding(hub_bus.value_as_string)
        for construct_id_, (name, source) in SPOKE_DOCUMENTS.items():
            ssm.CfnDocument(
                self,
                construct_id_,
                name=name,
                document_type="Command",
                document_format="JSON",
                content=documents.load(source),
                update_method="NewVersion",
            )

    def _spoke_role(
        self,
        *,
        role_name: str,
        role_region: str,
        regions: Sequence[str],
        scope_tag: str,
        organization_id: str,
        hub_roles: list[str],
    ) -> iam.CfnRole:
        """The role the hub assumes here: the hub sweep's grants inline, the spot and stamp grants beside it."""
        account = self.account
        sweep = self._sweep_grants(regions=regions, account=account, scope_tag=scope_tag)
        forwarded = self._forwarded_handling_grants(regions=regions, account=account, scope_tag=scope_tag)
        role = self._role_trusting_the_hub(
            role_name=role_name, organization_id=organization_id, hub_roles=hub_roles, statements=sweep
        )
        # IAM is global: one stack instance (the first covered region's) holds the role.
        holds_iam = cdk.CfnCondition(
            self, "RoleRegion", expression=cdk.Fn.condition_equals(cdk.Aws.REGION, role_region)
        )
        role.cfn_options.condition = holds_iam
        self.forwarded_grants = self._forwarded_policies(role, holds_iam, forwarded)
        self._acknowledge_wildcards(role, account)
        return role

    @staticmethod
    def _sweep_grants(*, regions: Sequence[str], account: str, scope_tag: str) -> list[iam.PolicyStatement]:
        """The hub sweep's own tag-conditioned grants, and the Deny on persistent resources."""
        return [
            never_destroy_persistent(),
            *regional_grants(
                f"{SWEEP_FOLDER} (spoke)",
                spoke_actions(),
                sweep_routes,
                regions=regions,
                account=account,
                scope_tag=scope_tag,
            ),
        ]

    @staticmethod
    def _forwarded_handling_grants(
        *, regions: Sequence[str], account: str, scope_tag: str
    ) -> dict[str, list[iam.PolicyStatement]]:
        """The spot function's and age_guard's grants, built from their code's declarations as in the hub."""
        spot = regional_grants(
            "spot_interruption (spoke)",
            spoke_actions("spot_interruption"),
            spot_routes,
            regions=regions,
            account=account,
            scope_tag=scope_tag,
        )
        stamp = [
            *regional_grants(
                "age_guard (spoke)",
                spoke_actions("age_guard"),
                age_guard_routes,
                regions=regions,
                account=account,
                scope_tag=scope_tag,
            ),
            *never_restamp(scope_tag),
        ]
        return {"trainctl-spoke-spot": spot, "trainctl-spoke-stamp": stamp}

    def _role_trusting_the_hub(
        self, *, role_name: str, organization_id: str, hub_roles: list[str], statements: list[iam.PolicyStatement]
    ) -> iam.CfnRole:
        """Only the hub's named roles may assume it, and only from inside the organization."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": hub_roles},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:PrincipalOrgID": organization_id}},
                }
            ],
        }
        return iam.CfnRole(
            self,
            "SpokeRole",
            role_name=role_name,
            description="trainctl spoke: what the hub's organization run, spot handler and age guard may do here",
            assume_role_policy_document=trust,
            policies=[
                iam.CfnRole.PolicyProperty(
                    policy_name="trainctl-spoke",
                    policy_document=iam.PolicyDocument(statements=statements).to_json(),
                )
            ],
        )

    def _forwarded_policies(
        self, role: iam.CfnRole, holds_iam: cdk.CfnCondition, forwarded: dict[str, list[iam.PolicyStatement]]
    ) -> dict[str, iam.CfnManagedPolicy]:
        """The spot and age_guard grants as managed policies of their own: IAM caps a role's inline policies at
        10,240 characters together and each managed one at 6,144, so each capability keeps a budget of its own."""
        policies: dict[str, iam.CfnManagedPolicy] = {}
        for construct_id, name in {"SpotGrants": "trainctl-spoke-spot", "StampGrants": "trainctl-spoke-stamp"}.items():
            grants = iam.CfnManagedPolicy(
                self,
                construct_id,
                managed_policy_name=name,
                description=f"trainctl spoke: what the hub's {name.rsplit('-', 1)[1]} handling may do here",
                policy_document=iam.PolicyDocument(statements=forwarded[name]).to_json(),
                roles=[role.ref],
            )
            grants.cfn_options.condition = holds_iam
            policies[name] = grants
        return policies

    def _acknowledge_wildcards(self, role: iam.CfnRole, account: str) -> None:
        """cdk-nag's IAM5 findings on the role and its managed policies, each with the reason the wildcard holds."""
        # The region is the wildcard in every ARN below: aws:RequestedRegion holds each grant to the covered regions.
        for arn in ec2_arns(["*"], account, "instance", "volume", "snapshot"):
            acknowledge(
                role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "The hub's sweep acts on any resource of this account only under the scope-tag condition, and a "
                "Deny protects anything tagged trainctl:persistent: the hub sweep role's own grants, held to the "
                "covered regions by aws:RequestedRegion.",
            )
            for grants in self.forwarded_grants.values():
                acknowledge(
                    grants,
                    f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                    "A forwarded spot warning or call may be for any instance, volume or snapshot of this account: "
                    "writes are conditioned on the scope tag or the creating call, as the hub's spot and age_guard "
                    "roles have them, in the covered regions (aws:RequestedRegion).",
                )
        documents_run: list[tuple[cdk.CfnResource, str]] = [
            (role, names.TRAINING_DOCUMENT),
            (self.forwarded_grants["trainctl-spoke-spot"], names.SPOT_DOCUMENT),
        ]
        for holder, document in documents_run:
            for arn in document_arns(["*"], account, document):
                acknowledge(
                    holder,
                    f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                    "trainctl's own SSM document, by name, in whichever covered region the request is made "
                    "(aws:RequestedRegion): the stack instance of each region creates it there.",
                )
        for grantee in (role, *self.forwarded_grants.values()):
            acknowledge(
                grantee,
                "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                "EC2 and SSM reads that support no resource-level permissions, as the hub's roles have them.",
            )
        for arn in stamped_arns(["*"], account):
            acknowledge(
                self.forwarded_grants["trainctl-spoke-stamp"],
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{arn}]",
                "age_guard stamps any new resource of this account, in the covered regions (aws:RequestedRegion); "
                "only the trainctl:created-at, created-by, owner and scope keys, each only where unset.",
            )

    def _forwarding(self, hub_bus_arn: str) -> None:
        """Rules on this region's default bus that send what the hub reacts to on to the hub's bus."""
        bus = events.EventBus.from_event_bus_arn(self, "HubBus", hub_bus_arn)
        # One role per stack instance (CloudFormation names it): it may put events on the hub's bus only.
        role = iam.Role(self, "ForwardToHub", assumed_by=iam.ServicePrincipal("events.amazonaws.com"))
        role.add_to_policy(iam.PolicyStatement(actions=["events:PutEvents"], resources=[hub_bus_arn]))
        instances = "EC2 Instance State-change Notification"
        patterns: dict[str, tuple[str, events.EventPattern]] = {
            "SpotWarnings": (
                "spot warnings and rebalance recommendations",
                events.EventPattern(source=["aws.ec2"], detail_type=SPOT_DETAIL_TYPES),
            ),
            "StateChanges": (
                "instances starting, stopping or ending",
                events.EventPattern(source=["aws.ec2"], detail_type=[instances], detail={"state": FORWARDED_STATES}),
            ),
            "ApiCalls": (
                "EC2 resources created or used, as CloudTrail records them",
                events.EventPattern(
                    source=["aws.ec2"],
                    detail_type=["AWS API Call via CloudTrail"],
                    detail={"eventSource": ["ec2.amazonaws.com"], "eventName": [*STAMPED_EVENTS, *USE_EVENTS]},
                ),
            ),
        }
        for rule_id, (what, pattern) in patterns.items():
            rule = events.Rule(
                self,
                rule_id,
                description=f"trainctl spoke: {what}, forwarded to the hub",
                event_pattern=pattern,
                targets=[targets.EventBus(bus, role=role)],
            )
            acknowledge(
                rule,
                "Serverless::Serverless-EventBusDLQ",
                "A spoke holds no queue of its own (nothing but the role, the rules and the documents); EventBridge "
                "retries delivery to the hub's bus by its default retry policy.",
            )


def spoke_template(*, role_name: str, regions: Sequence[str], scope_tag: str, organization_id: str) -> dict[str, Any]:
    """The spoke's CloudFormation template, synthesised in an App of its own and checked by cdk-nag."""
    silence_node_end_of_life(os.environ)
    from cdk_nag import AwsSolutionsChecks, ServerlessChecks

    with tempfile.TemporaryDirectory() as outdir:
        app = cdk.App(outdir=outdir)
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(), ServerlessChecks())
        SpokeStack(
            app,
            "TrainctlSpoke",
            role_name=role_name,
            role_region=regions[0],
            regions=regions,
            scope_tag=scope_tag,
            organization_id=organization_id,
        )
        assembly = app.synth()
        stack = assembly.get_stack_by_name("TrainctlSpoke")
        template: dict[str, Any] = json.loads(Path(assembly.directory, stack.template_file).read_text())
    return template
