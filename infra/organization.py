"""The hub's side of a whole AWS Organization: the spoke StackSet, the bus spokes forward to, and the organization
run (a plan, then a Distributed Map with one child per account and region), on its schedule.

Deployed only when org_units is set: a single-account deployment holds none of it. The hub's own account is swept
by the hub's own functions as before; the StackSet leaves it out (with the deny-listed accounts), and the
organization run is told to leave it out too, so that no account is swept twice and no spoke role stands beside
the hub's roles.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_cloudformation as cloudformation
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.declarations import declared_for
from infra.function import TrainctlFunction
from infra.organization_spoke import HUB_BUS, HUB_ROLES, SWEEP_FOLDER, spoke_actions, spoke_template
from infra.permissions import acknowledge, logical_id
from infra.policy import Route, platform_statement, service
from infra.spot_interruption import SPOT_DETAIL_TYPES, STATE_CHANGES
from infra.workflow import state_machine
from trainctl.age_guard.rules import STAMPED_EVENTS, USE_EVENTS
from trainctl.core import names
from trainctl.organization.settings import OrganizationSettings

PLAN_FOLDER = "organization_plan"
STATE_MACHINE_NAME = "trainctl-organization-run"
# The Distributed Map's label: its Map Runs and child executions are named by it.
MAP_LABEL = "EveryAccountRegion"
STACK_SET_NAME = "trainctl-spoke"
BUS_NAME = "trainctl-organization"
# Where the Distributed Map writes each run's results (Step Functions adds the run's own folder below it).
RESULTS_PREFIX = "organization-runs"
RESULTS_KEPT = cdk.Duration.days(90)
RESULT_WRITER_V2 = "@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2"
# Each child may run as long as Lambda lets the sweep run; Express child workflows end at five minutes, so the
# children are Standard workflows.
CHILD_TYPE = sfn.StateMachineType.STANDARD
# What the Distributed Map's role needs to write results to S3 (Step Functions Developer Guide, "IAM policies for
# using Distributed Map states"); CDK grants its child executions itself (the state machine's DistributedMapPolicy).
RESULT_WRITER_ACTIONS = ("s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")
# sts:GetCallerIdentity needs no permission (AWS STS API Reference, GetCallerIdentity).
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity": "needs no permission: STS answers it for any credentials"}
# The organization's cost run: a state machine of its own at the cost check's cadence, one child per account (its
# regions priced in one Lambda), so 800 account-regions of 200 accounts cost 200 children a run, not 800.
COST_STATE_MACHINE_NAME = "trainctl-organization-cost"
COST_MAP_LABEL = "EveryAccount"
COST_RESULTS_PREFIX = "organization-cost-runs"


@dataclass(frozen=True)
class OrganizationCostProps:
    """What the organization's cost run needs of the stack: the cost check's settings, cadence and price table."""

    settings_environment: Mapping[str, str] = field(default_factory=dict)
    schedule_expression: str = "rate(15 minutes)"
    prices: dynamodb.ITable | None = None
    pricing_region: str = "us-east-1"

    def environment(self) -> dict[str, str]:
        table = {"TRAINCTL_PRICE_TABLE": self.prices.table_name} if self.prices is not None else {}
        return {**self.settings_environment, **table}


class Organization(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        organization: OrganizationSettings,
        organization_id: str,
        tolerated_failure_percentage: float,
        regions: Sequence[str],
        scope_tag: str,
        settings_environment: Mapping[str, str],
        schedule_expression: str,
        layer: lambda_.ILayerVersion,
        ledger: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
        cost: OrganizationCostProps | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # The Distributed Map renders its ResultWriter only under this flag (CDK's ResultWriter is deprecated).
        self.node.set_context(RESULT_WRITER_V2, True)
        stack = cdk.Stack.of(self)
        self.regions = tuple(regions)
        self.organization_id = organization_id
        # The hub's own account is the hub's: never a spoke, never a child of the run.
        self.not_spokes = [*organization.org_exclude_accounts, stack.account]
        cost = cost or OrganizationCostProps()
        environment = {
            **settings_environment,
            **cost.environment(),
            "TRAINCTL_ORG_EXCLUDE_ACCOUNTS": cdk.Fn.join(",", self.not_spokes),
            "TRAINCTL_LEDGER_TABLE": ledger.table_name,
            "TRAINCTL_TOPIC_ARN": topic.topic_arn,
            "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
        }
        self.plan, self.sweep = self._functions(environment, layer, failures, log_retention)
        self.spoke_role_arns = f"arn:aws:iam::*:role/{organization.org_spoke_role}"
        self._grant(
            self.plan, assumes_spokes=False, organization_id=organization_id, ledger=ledger, topic=topic, key=key
        )
        self._grant(
            self.sweep,
            assumes_spokes=True,
            organization_id=organization_id,
            ledger=ledger,
            topic=topic,
            key=key,
            extra_routes=self._cost_routes(cost),
        )
        self.bus = self._organization_bus(organization_id)
        self.stack_set = self._stack_set(organization, organization_id, scope_tag)
        self.results = self._results_bucket()
        self.state_machine, self.state_machine_role = self._run(
            organization=organization,
            tolerated_failure_percentage=tolerated_failure_percentage,
            key=key,
            log_retention=log_retention,
        )
        self.schedule = self._schedule(schedule_expression, failures)
        self.cost_state_machine = self._cost_run(
            organization=organization,
            tolerated_failure_percentage=tolerated_failure_percentage,
            key=key,
            log_retention=log_retention,
        )
        self.cost_schedule = self._cost_schedule(cost.schedule_expression, failures)

    def _functions(
        self,
        environment: Mapping[str, str],
        layer: lambda_.ILayerVersion,
        failures: sqs.IQueue,
        log_retention: logs.RetentionDays,
    ) -> tuple[TrainctlFunction, TrainctlFunction]:
        environment = dict(environment)
        plan = TrainctlFunction(
            self,
            "Plan",
            folder=PLAN_FOLDER,
            description="trainctl organization run: the accounts and regions to sweep",
            environment=environment,
            timeout=cdk.Duration.minutes(5),
            layer=layer,
            failures=failures,
            log_retention=log_retention,
            # Step Functions invokes it and retries it; a failed run is the state machine's to report.
            retry_attempts=0,
        )
        sweep = TrainctlFunction(
            self,
            "Sweep",
            folder=SWEEP_FOLDER,
            description="trainctl organization run: sweep one account in one region through its spoke role",
            environment=environment,
            memory_size=1024,
            # A child sweeps one account-region; it stops itself before this deadline and resumes next run.
            timeout=cdk.Duration.minutes(15),
            layer=layer,
            failures=failures,
            log_retention=log_retention,
            retry_attempts=0,
        )
        return plan, sweep

    def _schedule(self, schedule_expression: str, failures: sqs.IQueue) -> scheduler.Schedule:
        """The organization run at the sweep's cadence; undeliverable starts go to the failure queue."""
        return scheduler.Schedule(
            self,
            "Schedule",
            description="trainctl organization run",
            schedule=scheduler.ScheduleExpression.expression(schedule_expression),
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine,
                # The schedule's own role, here: CDK would otherwise make one at the stack's top.
                role=iam.Role(self, "ScheduleRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com")),
                input=scheduler.ScheduleTargetInput.from_object({"task": PLAN_FOLDER}),
                dead_letter_queue=failures,
                retry_attempts=2,
                max_event_age=cdk.Duration.hours(1),
            ),
        )

    def _grant(
        self,
        handler: TrainctlFunction,
        *,
        assumes_spokes: bool,
        organization_id: str,
        ledger: dynamodb.ITable,
        topic: sns.ITopic,
        key: kms.IKey,
        extra_routes: Sequence[Route] = (),
    ) -> None:
        """Hub-side grants only: what is done inside a spoke is done with the spoke role's credentials."""
        in_spokes = "called with the spoke role's credentials, which grant it in each spoke; never with this role"
        declared = declared_for(handler.folder).actions
        withheld = dict.fromkeys(declared & spoke_actions(), in_spokes)
        withheld |= {action: why for action, why in NO_PERMISSION_NEEDED.items() if action in declared}
        routes = [
            Route("Ledger", [ledger.table_arn], select=service("dynamodb")),
            Route("Notify", [topic.topic_arn], select=service("sns")),
            Route("EncryptedTopicAndLedger", [key.key_arn], select=service("kms")),
            # Organizations' reads of accounts, units and parents; the hub runs in its delegated administrator.
            Route("ReadTheOrganization", ["*"], select=service("organizations")),
            *extra_routes,
        ]
        if assumes_spokes:
            routes.append(
                Route(
                    "AssumeSpokeRolesInTheOrganizationOnly",
                    [self.spoke_role_arns],
                    actions=["sts:AssumeRole"],
                    conditions={"StringEquals": {"aws:ResourceOrgID": organization_id}},
                )
            )
        elif "sts:AssumeRole" in declared:
            withheld["sts:AssumeRole"] = "the plan reads the organization; only the child assumes spoke roles"
        handler.grant_declared(routes, withheld=withheld)
        acknowledge(
            handler.role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "Organizations' list and describe calls over accounts and units the settings name; reads only.",
        )
        if assumes_spokes:
            acknowledge(
                handler.role,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{self.spoke_role_arns}]",
                "The spoke role, by its one name, in any account of this organization only (aws:ResourceOrgID).",
            )

    def _organization_bus(self, organization_id: str) -> events.EventBus:
        """The bus spokes forward to: its policy admits the organization, not a list of accounts."""
        bus = events.EventBus(self, "Bus", event_bus_name=BUS_NAME)
        events.CfnEventBusPolicy(
            self,
            "BusPolicy",
            event_bus_name=bus.event_bus_name,
            statement_id="SpokesOfTheOrganization",
            statement={
                "Effect": "Allow",
                "Principal": "*",
                "Action": "events:PutEvents",
                "Resource": bus.event_bus_arn,
                "Condition": {"StringEquals": {"aws:PrincipalOrgID": organization_id}},
            },
        )
        return bus

    def handle_forwarded(
        self,
        *,
        spot: lambda_.Function,
        spot_role: iam.Role,
        age_guard: lambda_.Function,
        age_guard_role: iam.Role,
        organization_environment: Mapping[str, str],
        failures: sqs.IQueue,
    ) -> None:
        """What spokes forward to the organization bus goes where the single-account stack sends its own: spot warnings,
        rebalance recommendations and instances ending to the spot function; CloudTrail calls and first starts to
        age_guard. Both may then assume the spoke role (which trusts them), in this organization only.

        Instance state changes are not sent to the cost check: a member's burn is the organization's cost run's.
        """
        self.forwarded_rules = self._forwarded_rules(spot=spot, age_guard=age_guard, failures=failures)
        for function in (spot, age_guard):
            self._tell_of_the_organization(function, organization_environment)
        for role in (spot_role, age_guard_role):
            self._assume_spoke_roles(role)
        self._trusted_by_the_spokes(spot_role, age_guard_role)

    def _forwarded_rules(
        self, *, spot: lambda_.Function, age_guard: lambda_.Function, failures: sqs.IQueue
    ) -> dict[str, events.Rule]:
        """One rule on the organization bus per kind of forwarded event, each to the function that handles it."""
        ec2 = ["aws.ec2"]
        state_change = ["EC2 Instance State-change Notification"]
        routes = {
            "ForwardedSpotWarnings": (
                "spot warnings and rebalance recommendations",
                events.EventPattern(source=ec2, detail_type=SPOT_DETAIL_TYPES),
                targets.LambdaFunction(
                    spot, dead_letter_queue=failures, retry_attempts=2, max_event_age=cdk.Duration.minutes(2)
                ),
            ),
            "ForwardedEndings": (
                "instances stopping or terminated",
                events.EventPattern(source=ec2, detail_type=state_change, detail={"state": STATE_CHANGES}),
                targets.LambdaFunction(
                    spot, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(1)
                ),
            ),
            "ForwardedApiCalls": (
                "EC2 resources created, used, or moved in or out of scope",
                events.EventPattern(
                    source=ec2,
                    detail_type=["AWS API Call via CloudTrail"],
                    detail={"eventSource": ["ec2.amazonaws.com"], "eventName": [*STAMPED_EVENTS, *USE_EVENTS]},
                ),
                targets.LambdaFunction(
                    age_guard, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(2)
                ),
            ),
            "ForwardedFirstStarts": (
                "instances the trail did not attribute",
                events.EventPattern(source=ec2, detail_type=state_change, detail={"state": ["running"]}),
                targets.LambdaFunction(
                    age_guard, dead_letter_queue=failures, retry_attempts=4, max_event_age=cdk.Duration.hours(2)
                ),
            ),
        }
        return {
            rule_id: events.Rule(
                self,
                rule_id,
                event_bus=self.bus,
                description=f"trainctl organization: {what}, forwarded by the spokes",
                event_pattern=pattern,
                targets=[target],
            )
            for rule_id, (what, pattern, target) in routes.items()
        }

    def _tell_of_the_organization(
        self, function: lambda_.Function, organization_environment: Mapping[str, str]
    ) -> None:
        """The function reads which accounts it may act in for a forwarded event as the organization run does."""
        for name, value in organization_environment.items():
            function.add_environment(name, value)
        # The hub's own account is never a spoke: its events are the hub's (the deny-list as the run has it).
        function.add_environment("TRAINCTL_ORG_EXCLUDE_ACCOUNTS", cdk.Fn.join(",", self.not_spokes))

    def _assume_spoke_roles(self, role: iam.Role) -> None:
        """The function's role may assume the spoke role, by its name, in this organization's accounts only."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="AssumeSpokeRolesInTheOrganizationOnly",
                actions=["sts:AssumeRole"],
                resources=[self.spoke_role_arns],
                conditions={"StringEquals": {"aws:ResourceOrgID": self.organization_id}},
            )
        )
        acknowledge(
            role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{self.spoke_role_arns}]",
            "The spoke role, by its one name, in any account of this organization only (aws:ResourceOrgID), "
            "for an event that account forwarded.",
        )

    def _trusted_by_the_spokes(self, spot_role: iam.Role, age_guard_role: iam.Role) -> None:
        """The StackSet's parameters: the roles the spoke role trusts and the bus the spokes forward to."""
        # The spoke role trusts these functions' roles beside the organization run's child.
        hub_roles = cdk.Fn.join(",", [self.sweep.role.role_arn, spot_role.role_arn, age_guard_role.role_arn])
        parameter = cloudformation.CfnStackSet.ParameterProperty
        self.stack_set.parameters = [
            parameter(parameter_key=HUB_ROLES, parameter_value=hub_roles),
            parameter(parameter_key=HUB_BUS, parameter_value=self.bus.event_bus_arn),
        ]

    def _stack_set(
        self, organization: OrganizationSettings, organization_id: str, scope_tag: str
    ) -> cloudformation.CfnStackSet:
        """Service-managed: accounts that join a covered unit get a spoke with no one acting; those leaving lose it."""
        template = spoke_template(
            role_name=organization.org_spoke_role,
            regions=self.regions,
            scope_tag=scope_tag,
            organization_id=organization_id,
        )
        stack_set = cloudformation.CfnStackSet(
            self,
            "Spokes",
            stack_set_name=STACK_SET_NAME,
            description="trainctl spoke: the hub's role, event forwarding and SSM documents",
            permission_model="SERVICE_MANAGED",
            # The hub lives in the organization's delegated administrator for StackSets, not its management account.
            call_as="DELEGATED_ADMIN",
            auto_deployment=cloudformation.CfnStackSet.AutoDeploymentProperty(
                enabled=True, retain_stacks_on_account_removal=False
            ),
            capabilities=["CAPABILITY_NAMED_IAM"],
            managed_execution={"Active": True},
            operation_preferences=cloudformation.CfnStackSet.OperationPreferencesProperty(
                region_concurrency_type="PARALLEL", max_concurrent_percentage=25, failure_tolerance_percentage=10
            ),
            template_body=json.dumps(template, separators=(",", ":"), sort_keys=True),
            parameters=[
                cloudformation.CfnStackSet.ParameterProperty(
                    parameter_key=HUB_ROLES, parameter_value=self.sweep.role.role_arn
                ),
                cloudformation.CfnStackSet.ParameterProperty(
                    parameter_key=HUB_BUS, parameter_value=self.bus.event_bus_arn
                ),
            ],
            stack_instances_group=[
                cloudformation.CfnStackSet.StackInstancesProperty(
                    deployment_targets=cloudformation.CfnStackSet.DeploymentTargetsProperty(
                        organizational_unit_ids=list(organization.org_units),
                        accounts=self.not_spokes,
                        account_filter_type="DIFFERENCE",
                    ),
                    regions=list(self.regions),
                )
            ],
        )
        return stack_set

    def _results_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Results",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=RESULTS_KEPT, abort_incomplete_multipart_upload_after=cdk.Duration.days(1))
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(
            bucket,
            "AwsSolutions::AwsSolutions-S1",
            "Only the organization run's state machine writes here, and its execution log records every run; "
            "an access-log bucket would log that one writer.",
        )
        return bucket

    def _run(
        self,
        *,
        organization: OrganizationSettings,
        tolerated_failure_percentage: float,
        key: kms.IKey,
        log_retention: logs.RetentionDays,
    ) -> tuple[sfn.StateMachine, iam.Role]:
        plan = tasks.LambdaInvoke(self, "PlanAccounts", lambda_function=self.plan.function, payload_response_only=True)
        sweep_one = tasks.LambdaInvoke(
            self, "SweepAccountRegion", lambda_function=self.sweep.function, payload_response_only=True
        )
        fan_out = sfn.DistributedMap(
            self,
            "EveryAccountRegion",
            items_path="$.items",
            max_concurrency=organization.org_max_concurrency,
            tolerated_failure_percentage=tolerated_failure_percentage,
            map_execution_type=CHILD_TYPE,
            result_writer_v2=sfn.ResultWriterV2(bucket=self.results, prefix=RESULTS_PREFIX),
            label=MAP_LABEL,
        )
        fan_out.item_processor(sweep_one)
        machine, role, _ = state_machine(
            self,
            name=STATE_MACHINE_NAME,
            start=plan.next(fan_out),
            # Children run at most 15 minutes each; at the default concurrency 800 account-regions take hours,
            # not a day.
            timeout=cdk.Duration.hours(24),
            log_retention=log_retention,
            key=key,
            routes=[
                Route(
                    "InvokeOrganizationFunctions",
                    [self.plan.function.function_arn, self.sweep.function.function_arn],
                    actions=["lambda:InvokeFunction"],
                )
            ],
        )
        self._run_grants(machine, role, prefix=RESULTS_PREFIX, label=MAP_LABEL, results="each run's results")
        return machine, role

    # -- the organization's cost run ---------------------------------------------------------------------------

    def _cost_routes(self, cost: OrganizationCostProps) -> list[Route]:
        """The child prices through the hub: the stack's price table, and the Price List API in its one region."""
        routes = [
            Route(
                "ReadListPrices",
                ["*"],
                actions=["pricing:GetProducts"],
                conditions={"StringEquals": {"aws:RequestedRegion": [cost.pricing_region]}},
            )
        ]
        if cost.prices is not None:
            routes.append(
                Route("PriceCache", [cost.prices.table_arn], actions=["dynamodb:BatchGetItem", "dynamodb:PutItem"])
            )
        return routes

    def _cost_run(
        self,
        *,
        organization: OrganizationSettings,
        tolerated_failure_percentage: float,
        key: kms.IKey,
        log_retention: logs.RetentionDays,
    ) -> sfn.StateMachine:
        """Plan (one item per covered account), price each account in a child, then sum and tell (the plan
        function's total step). The total runs even when the Map fails: children without a result are named."""
        # A scope of its own: the state machine helper names its log group and role the same in every workflow.
        scope = Construct(self, "CostRun")
        plan = tasks.LambdaInvoke(
            scope, "PlanCostAccounts", lambda_function=self.plan.function, payload_response_only=True
        )
        price_one = tasks.LambdaInvoke(
            scope, "PriceAccount", lambda_function=self.sweep.function, payload_response_only=True
        )
        fan_out = sfn.DistributedMap(
            scope,
            "EveryAccount",
            items_path="$.items",
            max_concurrency=organization.org_max_concurrency,
            tolerated_failure_percentage=tolerated_failure_percentage,
            map_execution_type=CHILD_TYPE,
            result_writer_v2=sfn.ResultWriterV2(bucket=self.results, prefix=COST_RESULTS_PREFIX),
            # The plan's run, accounts and exclusions pass on to the total; the Map Run's pointer sits beside them.
            result_path="$.map_run",
            label=COST_MAP_LABEL,
        )
        fan_out.item_processor(price_one)
        total = tasks.LambdaInvoke(
            scope,
            "SumAndTell",
            lambda_function=self.plan.function,
            payload_response_only=True,
            payload=sfn.TaskInput.from_object(
                {
                    "task": "organization_cost_total",
                    "run": sfn.JsonPath.string_at("$.run"),
                    "covered": sfn.JsonPath.list_at("$.covered"),
                    "excluded": sfn.JsonPath.object_at("$.excluded"),
                }
            ),
        )
        fan_out.add_catch(total, result_path="$.map_error")
        machine, role, _ = state_machine(
            scope,
            name=COST_STATE_MACHINE_NAME,
            start=plan.next(fan_out.next(total)),
            # A run every quarter hour: one that outlasts an hour is stopped, its children's results summed by none.
            timeout=cdk.Duration.hours(1),
            log_retention=log_retention,
            key=key,
            routes=[
                Route(
                    "InvokeOrganizationFunctions",
                    [self.plan.function.function_arn, self.sweep.function.function_arn],
                    actions=["lambda:InvokeFunction"],
                )
            ],
        )
        self._run_grants(
            machine, role, prefix=COST_RESULTS_PREFIX, label=COST_MAP_LABEL, results="each cost run's results"
        )
        return machine

    def _run_grants(self, machine: sfn.StateMachine, role: iam.Role, *, prefix: str, label: str, results: str) -> None:
        """A run writes its results under its own prefix of the bucket, and starts only its own children."""
        role.add_to_policy(
            platform_statement("WriteRunResults", RESULT_WRITER_ACTIONS, [self.results.arn_for_objects(f"{prefix}/*")])
        )
        acknowledge(
            role,
            "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
            "Log delivery and X-Ray take no resource ARNs; nothing else is granted on *.",
        )
        acknowledge(
            role,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{logical_id(self.results)}.Arn>/{prefix}/*]",
            f"The Distributed Map writes {results} under its one prefix of the bucket the stack owns.",
        )
        # CDK's own policy for the Distributed Map: start, watch and redrive this state machine's children only.
        map_policy = machine.node.find_child("DistributedMapPolicy")
        assert isinstance(map_policy, iam.Policy), "CDK attaches the Distributed Map's grants as this policy"
        stack = cdk.Stack.of(self)
        # The execution ARNs as CDK writes them: the state machine's name cut from its ARN.
        executions = (
            f"arn:{cdk.Aws.PARTITION}:states:{stack.region}:{stack.account}:execution:"
            f"{cdk.Fn.select(6, cdk.Fn.split(':', machine.state_machine_arn))}"
        )
        for suffix in (":*", f"/{label}:*"):
            acknowledge(
                map_policy,
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{executions}{suffix}]",
                "The Distributed Map starts, describes, stops and redrives the child executions of this one state "
                "machine (Step Functions Developer Guide, IAM policies for using Distributed Map states).",
            )

    def _cost_schedule(self, schedule_expression: str, failures: sqs.IQueue) -> scheduler.Schedule:
        """The cost run at the cost check's cadence; undeliverable starts go to the failure queue."""
        return scheduler.Schedule(
            self,
            "CostSchedule",
            description="trainctl organization cost run",
            schedule=scheduler.ScheduleExpression.expression(schedule_expression),
            target=scheduler_targets.StepFunctionsStartExecution(
                self.cost_state_machine,
                role=iam.Role(self, "CostScheduleRole", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com")),
                input=scheduler.ScheduleTargetInput.from_object({"task": PLAN_FOLDER, "capability": "cost"}),
                dead_letter_queue=failures,
                retry_attempts=2,
                # A start older than the next run's is not worth making.
                max_event_age=cdk.Duration.minutes(15),
            ),
        )
