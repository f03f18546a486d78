"""The time-lapse's organization mode (issue 29): a member account beside the hub's, swept by the organization run.

moto serves Organizations and several accounts (credentials from an assumed role act in that role's account). The
hub is the harness's account, here the organization's management account, which the organization run never
sweeps (infra.organization leaves the hub's own account out: the hub's own sweep covers it). The member starts in
a unit the hub does not cover and is moved into the covered one on the second day; the StackSet's automatic
deployment then gives it the spoke (its role and the stack's SSM documents) with no one acting.

At each tick of the organization run's schedule (the sweep's rate, as infra.organization schedules it) the run is
played as the stack plays it: organization_plan's handler, then organization_sweep's handler once per item, in
process and one after another, with the environment infra.organization gives them. Not through moto's Step
Functions interpreter: it runs an execution on a thread of its own, which the agenda would have to wait on in
real time at every tick (tests/integration/test_organization_workflow.py runs the synthesised Distributed Map
under it).

The member's own events (its users' CloudTrail records, delivered as late as the hub's, its instances' state
changes and spot warnings) reach the hub's functions as the organization bus delivers them: once the member is
covered (the spoke's forwarding rules come with the StackSet), through the hub's rules there
(deliveries.FORWARDED_RULES), to spot_interruption and age_guard, which act in the member through the spoke role.
Before it joins, its events go nowhere, so its first people tag their launches themselves; those after the join are
stamped by age_guard. The member's CloudWatch gets its instances' load as the hub's does.

At each tick of the cost schedule the organization's cost run is played as its state machine
(trainctl-organization-cost) plays it: the plan asked for the cost capability, organization_sweep once per account
item, then the plan function's total step; each run's burn per account is kept beside the burn EC2's inventory and
the shipped price file give, apart from trainctl's cost code.

Every decision, notice, ledger row and mark tag about a resource is kept as an AccountLine under the account that
wrote it; the oracle (judge_accounts) holds each to the account whose EC2 holds the resource.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from bench.timelapse.cast import DAY, HOUR, IMAGE, MANAGED, MINUTE, NOTEBOOK, TRAINING, ZONE, Story
from bench.timelapse.clock import ticks
from bench.timelapse.deliveries import ACCOUNT_ID, CloudTrail, forwarded_targets, spot_warning, state_change
from bench.timelapse.harness import (
    BUSY,
    IDLE,
    METRICS_KEPT,
    REGION,
    SAMPLE,
    STATE_STEPS,
    TimeLapse,
    World,
    _busy_at,
    _moto_instant,
)
from bench.timelapse.oracle import AccountLine, Burn, Promise, Stamp, Truth
from infra.organization_spoke import SPOKE_DOCUMENTS
from trainctl.aws import ledger as keys
from trainctl.aws import ssm_documents as documents
from trainctl.aws.clients import ClientFactory, Credentials
from trainctl.aws.utilisation import GPU_METRIC, GPU_NAMESPACE
from trainctl.core import names, tags
from trainctl.core.accelerators import accelerators_for
from trainctl.core.clock import format_instant
from trainctl.cost.prices.model import HOURS_PER_MONTH, PriceKey
from trainctl.cost.prices.price_file import load_price_file
from trainctl.organization.record import sweep_partition
from trainctl.organization.run import TargetResult, reach_spoke
from trainctl.organization.settings import OrganizationSettings
from trainctl.providers.sweep import sweep_partition as provider_sweep_partition

# The provider sweeps record themselves in partitions of their own, under the hub: the hub's deployment runs them.
PROVIDER_SWEEP_PARTITIONS = frozenset(provider_sweep_partition(p) for p in ("runpod", "lyceum"))
ORGANIZATION_FUNCTIONS = ("organization_plan", "organization_sweep")
# The member joins the covered unit on the second day, in the afternoon: its notebook was forgotten long before.
JOINS_AFTER = DAY + 13 * HOUR
# The organization run's schedule is its own (EventBridge Scheduler), created with the stack a little after the
# sweep's: the same rate, two minutes later.
RUN_PHASE = timedelta(minutes=2)
# The hub's cost check runs three minutes after the sweep's first tick (harness); the organization's cost run, on
# its own schedule, RUN_PHASE after that.
COST_PHASE = timedelta(minutes=3) + RUN_PHASE
ONBOARDED_STOP = "idle instance stopped once its account is onboarded"
# A GPU instance large enough that, left running, it alone takes the member over the deployed daily threshold.
LARGE_GPU = "p4d.24xlarge"
# What the spoke role trusts is IAM's to enforce; moto enforces no trust policy.
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
)


@dataclass(frozen=True)
class ChildRun:
    """One organization_sweep invocation: the item's account, and what came of it."""

    at: datetime
    account: str
    dry_run: bool
    why_dry_run: str | None
    outcome: str
    error: str | None
    candidates: tuple[str, ...]  # what it found a candidate, acted on or not (a dry-run sends no SSM check)


@dataclass(frozen=True)
class CostRunSeen:
    """One organization cost run: what its total said of each account, beside what the member's EC2 held."""

    at: datetime
    covered: tuple[str, ...]
    accounts: dict[str, Any]  # the total's per-account burn, as it returned it
    breaches: tuple[str, ...]  # the keys of the breaches the total found
    notified: tuple[str, ...]
    cleared: tuple[str, ...]
    # The member's burn per hour from its EC2 inventory and the shipped price file; None while it runs a spot
    # instance (priced from the spot price history, which the price file does not hold).
    member_expected_usd: float | None


@dataclass
class AccountsSeen:
    """What the organization mode saw, for the oracle and the report."""

    hub: str
    member: str
    unit: str
    joined_at: datetime | None = None
    # Every resource id each account's EC2 held at some instant of the run.
    holders: dict[str, str] = field(default_factory=dict)
    children: list[ChildRun] = field(default_factory=list)
    plans: int = 0
    # Mark tags found in each account's EC2, and the ledger's rows, read as the run ends.
    tag_lines: dict[tuple[str, str], AccountLine] = field(default_factory=dict)
    ledger_lines: list[AccountLine] = field(default_factory=list)
    ledger_rows: int = 0
    hub_partition_rows: int = 0  # rows under the hub's own account as if it were a member: none expected
    # The member's events: those the organization bus delivered, per hub function, and those sent before the
    # spoke (and its forwarding rules) existed, which went nowhere.
    forwarded: dict[str, int] = field(default_factory=dict)
    not_forwarded: int = 0
    cost_runs: list[CostRunSeen] = field(default_factory=list)

    def onboarding(self) -> ChildRun | None:
        """The member's first completed child: the onboarding dry-run report."""
        return next((c for c in self.children if c.account == self.member and c.outcome == "done"), None)


def member_clients(hub: ClientFactory, account: str) -> ClientFactory:
    """Clients acting in a member account through the role Organizations creates there: the harness's own."""
    answer = hub.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="timelapse"
    )["Credentials"]
    return ClientFactory(
        REGION, credentials=Credentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
    )


class SecondAccount:
    """The Organization, its member account and the organization run, beside the hub's own time-lapse."""

    def __init__(self, lapse: TimeLapse) -> None:
        self.lapse = lapse
        organizations = lapse.harness.client("organizations")
        organization_id = organizations.create_organization(FeatureSet="ALL")["Organization"]["Id"]
        root = organizations.list_roots()["Roots"][0]["Id"]
        self.unit = self._unit(organizations, root, "research")
        self.arrivals = self._unit(organizations, root, "arrivals")  # not covered
        made = organizations.create_account(AccountName="member", Email="member@example.com")
        self.account = str(made["CreateAccountStatus"]["AccountId"])
        organizations.move_account(AccountId=self.account, SourceParentId=root, DestinationParentId=self.arrivals)
        self.seen = AccountsSeen(ACCOUNT_ID, self.account, self.unit)
        self.clients = member_clients(lapse.harness, self.account)
        # The member's people: each call of theirs reaches the member's CloudTrail, minutes late.
        self.users = member_clients(lapse.harness, self.account)
        self.trail = CloudTrail(self._forward_later, lapse.lag, lapse.clock.now, account=self.account)
        self.users.register("provide-client-params.ec2", self.trail.keep_params)
        self.users.register("after-call.ec2", self.trail.record)
        self.settings = OrganizationSettings(
            org_units=(self.unit,), org_enforce_units=(self.unit,), org_regions=(REGION,)
        )
        self._environment(organization_id)
        for function in ORGANIZATION_FUNCTIONS:
            lapse.handlers[function] = lapse._handler(function)
        self._tap_child(lapse.handlers["organization_sweep"])
        for function in ("spot_interruption", "age_guard"):
            self._count_spoke_calls(lapse.handlers[function])
        lapse.trainctl.register("before-parameter-build.sts.AssumeRole", self._spoke_as_iam_would)
        self.joins_at = lapse.start + JOINS_AFTER
        lapse.agenda.add(self.joins_at, "the member account joins the covered unit", self._join)
        schedule = lapse.stack.schedule_of("cleanup_sweep")
        for at in ticks(lapse.start, lapse.end, schedule.period, phase=lapse.sweep_phase + RUN_PHASE):
            lapse.agenda.add(at, f"schedule {schedule.expression} -> organization run", self._organization_run)
        cost = lapse.stack.schedule_of("cost_alerts")
        for at in ticks(lapse.start, lapse.end, cost.period, phase=lapse.sweep_phase + COST_PHASE):
            lapse.agenda.add(at, f"schedule {cost.expression} -> organization cost run", self._organization_cost_run)
        for day in ticks(lapse.start, lapse.end, DAY, phase=12 * HOUR):
            lapse.agenda.add(day, "CloudWatch retention in the member", self._prune_metrics)
        # The ledger as it stands at the end: the last instant of the story.
        lapse.agenda.add(lapse.end - timedelta(seconds=1), "the hub's ledger read", self._read_ledger)
        lapse.watchers.append(self._watch)
        self._metrics_written_until = lapse.start
        self._outcome: TargetResult | None = None
        lapse.cast += member_cast(lapse.world, self)

    @staticmethod
    def _unit(organizations: Any, root: str, name: str) -> str:
        return str(organizations.create_organizational_unit(ParentId=root, Name=name)["OrganizationalUnit"]["Id"])

    def _environment(self, organization_id: str) -> None:
        """What infra.organization gives both functions: the sweep's settings, TRAINCTL_ORG_*, and the hub's own
        account on the exclusion list. Merged into the one process the handlers share; a clash is refused."""
        config = self.lapse.stack.config
        options = config.options.model_copy(update={"org_id": organization_id})
        stack = config.model_copy(update={"organization": self.settings, "options": options})
        wanted = {
            **stack.function_environment(),
            **stack.organization_environment(),
            "TRAINCTL_ORG_EXCLUDE_ACCOUNTS": ",".join([*self.settings.org_exclude_accounts, ACCOUNT_ID]),
        }
        for key, value in wanted.items():
            if os.environ.setdefault(key, value) != value:
                raise ValueError(f"{key} differs between the organization's functions and the others")

    def _tap_child(self, module: Any) -> None:
        """Keep each child's outcome (its decisions are not in its JSON) and count its calls in the spoke."""
        sweep_target = module.sweep_target

        def counted_spoke(hub: ClientFactory, account: str, region: str, role_name: str) -> ClientFactory:
            spoke = reach_spoke(hub, account, region, role_name)
            self.lapse._count_call()  # its GetCallerIdentity, made before the hook could be
            spoke.register("before-call", self.lapse._count_call)
            return spoke

        @functools.wraps(sweep_target)
        def kept(*args: Any, **kwargs: Any) -> TargetResult:
            self._outcome = sweep_target(*args, spoke=counted_spoke, **kwargs)
            return self._outcome

        module.sweep_target = kept

    def _count_spoke_calls(self, module: Any) -> None:
        """A forwarded event's handler reaches the spoke through its own (reusing) factory: count its calls too."""
        reach = module.spoke_clients()
        counted: set[int] = set()

        def counting(hub: ClientFactory, account: str, region: str, role_name: str) -> ClientFactory:
            spoke = reach(hub, account, region, role_name)
            if id(spoke) not in counted:  # a reused spoke is hooked once
                counted.add(id(spoke))
                self.lapse._count_call()  # its GetCallerIdentity, made before the hook could be
                spoke.register("before-call", self.lapse._count_call)
            return spoke

        module.spoke_clients = lambda: counting

    def _spoke_as_iam_would(self, params: dict[str, Any], **_: Any) -> None:
        """moto's STS assumes any role; IAM refuses one the account does not hold (before the StackSet reached it)."""
        from moto.iam.models import iam_backends

        arn = str(params["RoleArn"])
        account, role = arn.split(":")[4], arn.rsplit("/", 1)[1]
        if role not in {r.name for r in iam_backends[account]["global"].roles.values()}:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    # ---- the story's events --------------------------------------------------------------------------------

    def _join(self) -> None:
        """The account is moved into the covered unit; the StackSet's automatic deployment gives it the spoke."""
        organizations = self.lapse.harness.client("organizations")
        organizations.move_account(AccountId=self.account, SourceParentId=self.arrivals, DestinationParentId=self.unit)
        self.clients.client("iam").create_role(RoleName=self.settings.org_spoke_role, AssumeRolePolicyDocument=TRUST)
        ssm = self.clients.ssm(REGION)
        for name, document in SPOKE_DOCUMENTS.values():
            content = json.dumps(documents.load(document))
            ssm.create_document(Name=name, Content=content, DocumentType="Command", DocumentFormat="JSON")
        self.seen.joined_at = self.lapse.clock.now()

    def _forward_later(self, event: dict[str, Any], at: datetime) -> None:
        """An event on the member's default bus at `at`: the spoke's rules forward it to the hub's organization bus,
        whose rules invoke the hub's functions; before the spoke exists nothing forwards it."""

        def deliver() -> None:
            if self.seen.joined_at is None:
                self.seen.not_forwarded += 1
                return
            for function in forwarded_targets(event):
                self.seen.forwarded[function] = self.seen.forwarded.get(function, 0) + 1
                self.lapse.invoke(function, event, trigger=f"forwarded {event['detail-type']}")

        self.lapse.agenda.add(at, f"the member's {event['detail-type']}", deliver)

    def spot_reclaim(self, instance_id: str, at: datetime) -> None:
        """EC2 takes back a spot instance in the member: its warning, then the termination two minutes later."""

        def warn() -> None:
            now = self.lapse.clock.now()
            event = spot_warning(instance_id, now, REGION, account=self.account)
            self._forward_later(event, now + self.lapse.lag.eventbridge())
            self.lapse.world.at(now + timedelta(minutes=2), f"EC2 reclaims {instance_id} in the member", reclaim)

        def reclaim() -> None:
            self.clients.ec2(REGION).terminate_instances(InstanceIds=[instance_id])

        self.lapse.world.at(at, f"spot warning for {instance_id} in the member", warn)

    def _organization_cost_run(self) -> None:
        """The cost run as its state machine plays it: the plan, one child per account, then the total (which the
        state machine runs even when the Map fails)."""
        expression = self.lapse.stack.schedule_of("cost_alerts").expression
        planned = self.lapse.invoke(
            "organization_plan", {"task": "organization_plan", "capability": "cost"}, trigger=expression
        ).result
        if planned is None:  # the plan failed: the harness keeps its error, and the state machine stops there
            return
        for item in planned.get("items", []):
            self.lapse.invoke("organization_sweep", item, trigger="organization cost run item")
        request = {
            "task": "organization_cost_total",
            "run": planned["run"],
            "covered": planned["covered"],
            "excluded": planned["excluded"],
        }
        total = self.lapse.invoke("organization_plan", request, trigger="organization cost run total")
        summary = total.result or {}
        self.seen.cost_runs.append(
            CostRunSeen(
                total.at,
                tuple(planned["covered"]),
                dict(summary.get("accounts", {})),
                tuple(b["key"] for b in summary.get("breaches", [])),
                tuple(summary.get("alerts", {}).get("notified", [])),
                tuple(summary.get("alerts", {}).get("cleared", [])),
                self._expected_burn(),
            )
        )

    def _expected_burn(self) -> float | None:
        """The member's burn per hour as its EC2 holds it now, priced from the shipped price file."""
        prices = load_price_file()
        backend = self._backend(self.account)
        hourly = 0.0
        for instance in backend.all_instances():
            if instance.state != "running":
                continue
            if instance.lifecycle == "spot":
                return None
            hourly += prices.price(PriceKey("instance", REGION, instance.instance_type)).cost(1)
        monthly = 0.0
        for volume in backend.volumes.values():
            monthly += prices.price(PriceKey("storage", REGION, volume.volume_type)).cost(volume.size)
        for snapshot in backend.snapshots.values():
            monthly += prices.price(PriceKey("snapshot", REGION, "standard")).cost(snapshot.volume.size)
        return hourly + monthly / HOURS_PER_MONTH

    def _organization_run(self) -> None:
        """The run as the stack plays it: the plan, then one child per item (the Distributed Map's items)."""
        self._write_metrics()
        expression = self.lapse.stack.schedule_of("cleanup_sweep").expression
        plan = self.lapse.invoke("organization_plan", {"task": "organization_plan"}, trigger=expression)
        self.seen.plans += 1
        for item in (plan.result or {}).get("items", []):
            self._outcome = None
            child = self.lapse.invoke("organization_sweep", item, trigger="organization run item")
            outcome = self._outcome
            if outcome is None:  # the handler failed before the child ran: the harness keeps its error
                continue
            decisions = outcome.result.decisions if outcome.result else ()
            self.seen.children.append(
                ChildRun(
                    child.at,
                    outcome.account,
                    outcome.dry_run,
                    outcome.why_dry_run,
                    "failed" if outcome.error else "done",
                    outcome.error,
                    tuple(d.resource_id for d in decisions if d.reasons),
                )
            )
            # A dry-run wrote nothing: its decisions are a report, not marks nor actions.
            if outcome.result is not None and not outcome.dry_run:
                self.lapse._keep_decisions(
                    child.at, {"decisions": [d.to_json() for d in decisions]}, account=outcome.account
                )

    # ---- what each account holds ----------------------------------------------------------------------------

    def _backend(self, account: str) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[account][REGION]

    def _watch(self) -> None:
        """After each instant: which account holds each resource, the member's states (for the bill), and every
        mark tag in each account's EC2."""
        now = self.lapse.clock.now()
        record = self.lapse.record
        for account in (ACCOUNT_ID, self.account):
            backend = self._backend(account)
            instances = list(backend.all_instances())
            for resource_id in [i.id for i in instances] + list(backend.volumes) + list(backend.snapshots):
                self.seen.holders.setdefault(resource_id, account)
            for resource_id, found in backend.tags.items():
                if tags.CLEANUP_AFTER in found and (resource_id, account) not in self.seen.tag_lines:
                    self.seen.tag_lines[(resource_id, account)] = AccountLine("mark tag", resource_id, account, now)
        backend = self._backend(self.account)
        for instance in backend.all_instances():
            history = record.states.setdefault(instance.id, [])
            if not history or history[-1][1] != instance.state:
                history.append((now, instance.state))
                record.instance_types[instance.id] = instance.instance_type
                # EC2's state-change events on the member's bus, each step its own event (as the hub's).
                for step, name in enumerate(STATE_STEPS.get(instance.state, (instance.state,))):
                    at = now + timedelta(seconds=step)
                    event = state_change(instance.id, name, at, REGION, account=self.account)
                    self._forward_later(event, at + self.lapse.lag.eventbridge())
        for resource_id, found in backend.tags.items():
            if tags.CREATED_BY in found and resource_id not in record.stamps:
                record.stamps[resource_id] = (now, found.get(tags.OWNER), found[tags.CREATED_BY])
        for snapshot_id, snapshot in backend.snapshots.items():
            if snapshot_id not in record.snapshot_sizes:
                record.snapshot_sizes[snapshot_id] = int(snapshot.volume.size)
                record.states.setdefault(snapshot_id, []).append((now, "exists"))
        for volume_id, volume in backend.volumes.items():
            if volume_id not in record.volume_sizes:
                record.volume_sizes[volume_id] = (int(volume.size), str(volume.volume_type))
                record.states.setdefault(volume_id, []).append((now, "exists"))
        for volume_id, history in record.states.items():
            mine = self.seen.holders.get(volume_id) == self.account and volume_id in record.volume_sizes
            if mine and volume_id not in backend.volumes and history[-1][1] != "deleted":
                history.append((now, "deleted"))

    def state_of(self, instance_id: str) -> str:
        found = [i.state for i in self._backend(self.account).all_instances() if i.id == instance_id]
        return found[0] if found else "gone"

    def _read_ledger(self) -> None:
        """Every row of the hub's ledger about a resource, under the account it was written for: its own `account`
        (the hub's where none), and the account of the sweep partition its sweep id was recorded in."""
        dynamodb = self.lapse.harness.dynamodb()
        rows = [
            row
            for page in dynamodb.get_paginator("scan").paginate(TableName=names.LEDGER_TABLE)
            for row in page.get("Items", [])
        ]
        self.seen.ledger_rows = len(rows)
        sweeps: dict[str, str] = {}
        for row in rows:
            partition, sort = str(row[keys.PARTITION_KEY]["S"]), str(row[keys.SORT_KEY]["S"])
            if partition == keys.SWEEP_PARTITION:
                sweeps[sort.rsplit("#", 1)[-1]] = ACCOUNT_ID
            elif partition.startswith(f"{keys.SWEEP_PARTITION}#account#"):
                sweeps[sort.rsplit("#", 1)[-1]] = partition.rsplit("#", 1)[-1]
            elif partition in PROVIDER_SWEEP_PARTITIONS:  # RunPod's and Lyceum's sweeps: the hub's deployment runs them
                sweeps[sort.rsplit("#", 1)[-1]] = ACCOUNT_ID
        self.seen.hub_partition_rows = sum(
            1
            for row in rows
            if str(row[keys.PARTITION_KEY]["S"]) in (sweep_partition(ACCOUNT_ID), f"account#{ACCOUNT_ID}")
        )
        for row in rows:
            partition = str(row[keys.PARTITION_KEY]["S"])
            written_for = str(row.get("account", {}).get("S") or ACCOUNT_ID)
            kind, _, resource_id = partition.partition("#")
            if kind in ("resource", "mark"):
                self.seen.ledger_lines.append(AccountLine(f"ledger {kind} row", resource_id, written_for))
            sweep_id = str(row.get("sweep_id", {}).get("S", ""))
            if kind == "resource" and sweep_id:  # a sweep's decision (age_guard's lines of use carry none)
                swept_as = sweeps.get(sweep_id, "no recorded sweep")
                self.seen.ledger_lines.append(AccountLine("ledger row's sweep", resource_id, swept_as))
            elif kind == "spot":  # the spot function's record of an interruption
                self.seen.ledger_lines.append(AccountLine("ledger spot row", resource_id, written_for))
            elif kind == "runtime":  # the hub's cost check: its instances' running history
                instance_id = str(row[keys.SORT_KEY]["S"]).split("#", 1)[0]
                self.seen.ledger_lines.append(AccountLine("ledger runtime row", instance_id, written_for))

    def lines(self) -> list[AccountLine]:
        """Everything trainctl wrote or said about a resource, each under the account it was written for."""
        record = self.lapse.record
        found = [
            AccountLine("sweep decision", d.resource_id, d.account, d.at)
            for decisions in record.decisions.values()
            for d in decisions
        ]
        found += [AccountLine(f"{n.kind} notice", r, n.account, n.at) for n in record.notices for r in n.resources]
        return found + list(self.seen.tag_lines.values()) + self.seen.ledger_lines

    # ---- CloudWatch in the member ---------------------------------------------------------------------------

    def _write_metrics(self) -> None:
        """The member's instances' load since the last run, as the harness writes the hub's."""
        now = self.lapse.clock.now()
        since, self._metrics_written_until = self._metrics_written_until, now
        data: dict[str, list[dict[str, Any]]] = {"AWS/EC2": [], GPU_NAMESPACE: []}
        samples = list(ticks(since, now, SAMPLE))
        for instance in self._backend(self.account).all_instances():
            if instance.state != "running":
                continue
            timeline = self.lapse.load.get(instance.id, [])
            dimensions = [{"Name": "InstanceId", "Value": instance.id}]
            for at in (s for s in samples if s >= _moto_instant(instance.launch_time)):
                load = BUSY if _busy_at(timeline, at) else IDLE
                data["AWS/EC2"] += [
                    {"MetricName": "CPUUtilization", "Dimensions": dimensions, "Timestamp": at, "Value": load["cpu"]},
                    {"MetricName": "NetworkIn", "Dimensions": dimensions, "Timestamp": at, "Value": load["net"]},
                    {"MetricName": "NetworkOut", "Dimensions": dimensions, "Timestamp": at, "Value": load["net"] / 4},
                ]
                if accelerators_for(instance.instance_type) is not None:
                    data[GPU_NAMESPACE].append(
                        {"MetricName": GPU_METRIC, "Dimensions": dimensions, "Timestamp": at, "Value": load["gpu"]}
                    )
        cloudwatch = self.clients.cloudwatch(REGION)
        for namespace, points in data.items():
            for start in range(0, len(points), 1000):
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=points[start : start + 1000])

    def _prune_metrics(self) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        backend = cloudwatch_backends[self.account][REGION]
        oldest = self.lapse.clock.now() - METRICS_KEPT
        backend.metric_data = [d for d in backend.metric_data if _moto_instant(d.timestamp) >= oldest]


# ---- the member's people -------------------------------------------------------------------------------------


class MemberStory(Story):
    """A user of the member account: their calls act there and reach its CloudTrail as theirs."""

    def __init__(self, world: World, user: str, story: str, member: SecondAccount) -> None:
        super().__init__(world, user, story)
        self.member = member

    def ec2(self) -> Any:
        self.member.trail.actor = self.user
        return self.member.users.ec2(REGION)

    def truth(self, resource_id: str, kind: str) -> Truth:
        found = super().truth(resource_id, kind)
        found.account = self.member.account
        return found

    def owned(self, resource_id: str) -> str:
        """Before its account joins, nothing stamps a launch: its user tags it."""
        self.ec2().create_tags(Resources=[resource_id], Tags=[{"Key": tags.OWNER, "Value": self.user}])
        return resource_id

    def stamped(self, resource_id: str, kind: str) -> Truth:
        """A launch after the join: age_guard owes it the creator's stamp, in the member."""
        found = self.truth(resource_id, kind)
        found.stamp = Stamp(self.user, self.member.account, self.world.now)
        return found


class ForgottenBeforeOnboarding(MemberStory):
    """nora's GPU notebook in the member, named as her notebook in the hub is: idle from its launch, forgotten
    before the account joins the covered unit. Once it joins, the first run is a dry-run report that writes
    nothing, the next marks it, and it is stopped within the bound, counted from the join with one run more
    (the onboarding dry-run). nora terminates it herself the morning after it is stopped."""

    def __init__(self, world: World, member: SecondAccount) -> None:
        super().__init__(world, "nora", "notebook forgotten before its account joined", member)
        self.at(world.start + 8 * HOUR + 30 * MINUTE, self.set_up)

    def set_up(self) -> None:
        self.instance = self.owned(self.launch("g5.xlarge", name="nora-notebook forgotten on Friday"))
        self.me = self.truth(self.instance, "instance")
        self.world.idle(self.instance, NOTEBOOK)
        period = self.world.stack.schedule_of("cleanup_sweep").period
        # The onboarding dry-run may come up to one run after the join, and marks nothing: one period more.
        owed = Promise(ONBOARDED_STOP, self.member.joins_at, "stop", late_news=period)
        self.me.promises.append(owed)
        days = int((self.world.end - self.member.joins_at) / DAY) + 1
        for day in range(1, days + 1):
            self.at(self.member.joins_at.replace(hour=9, minute=0) + day * DAY, self.look)

    def look(self) -> None:
        if self.member.state_of(self.instance) == "stopped":
            self.ec2().terminate_instances(InstanceIds=[self.instance])
            self.me.ended_by_others = self.world.now


class AlwaysAtWork(MemberStory):
    """An instance at work all the time (a dev box, a training box): never stopped."""

    def __init__(
        self, world: World, user: str, member: SecondAccount, *, instance_type: str, name: str, work: str, gpu: bool
    ) -> None:
        super().__init__(world, user, f"{name} always at work", member)
        self.spec = (instance_type, name, work, gpu)
        self.at(world.start + 6 * HOUR, self.set_up)

    def set_up(self) -> None:
        instance_type, name, work, gpu = self.spec
        instance = self.owned(self.launch(instance_type, name=name))
        self.truth(instance, "instance").begin_use(self.world.now)
        self.world.busy(instance, work, gpu=gpu)


class KeptDataset(MemberStory):
    """A persistent dataset volume, unattached: never touched."""

    def __init__(self, world: World, user: str, member: SecondAccount) -> None:
        super().__init__(world, user, "persistent dataset volume", member)
        self.at(world.start + 6 * HOUR + 30 * MINUTE, self.set_up)

    def set_up(self) -> None:
        volume = self.owned(self.create_volume(500, persistent=True))
        self.truth(volume, "volume").begin_use(self.world.now)


class SpotAfterOnboarding(MemberStory):
    """spencer's spot training job in the member, launched the morning after the join (the account enforced on by
    then) and stamped by age_guard through the spoke; EC2 reclaims it two hours later. The hub's spot function,
    reached through the organization bus, checkpoints it and snapshots its data volume in the member, and tells
    spencer under the member's account."""

    def __init__(self, world: World, member: SecondAccount) -> None:
        super().__init__(world, "spencer", "spot job reclaimed after onboarding", member)
        self.at(member.joins_at + 20 * HOUR, self.launch_job)

    def launch_job(self) -> None:
        instance = self.ec2().run_instances(
            ImageId=IMAGE,
            InstanceType="g5.xlarge",
            MinCount=1,
            MaxCount=1,
            Placement={"AvailabilityZone": ZONE},
            InstanceMarketOptions={"MarketType": "spot"},
            BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100, "DeleteOnTermination": True}}],
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [*MANAGED, {"Key": "Name", "Value": "spencer-job"}]}
            ],
        )["Instances"][0]["InstanceId"]
        me = self.stamped(str(instance), "instance")
        me.begin_use(self.world.now)
        self.world.busy(str(instance), TRAINING, gpu=True)
        warned = self.world.now + 2 * HOUR
        if warned < self.world.end - 3 * MINUTE:
            me.spot_warnings.append(warned)
            me.ended_by_others = warned + 2 * MINUTE
            self.member.spot_reclaim(str(instance), warned)


class LeftRunning(MemberStory):
    """stan's large GPU instance in the member, launched after the join and left idle from the start: alone it
    takes the member over its daily threshold, which the organization's cost run owes a notice under the member's
    account; the sweep stops it as any idle instance (and the breach then clears). stan terminates it himself the
    morning after it is stopped, as nora does her notebook."""

    def __init__(self, world: World, member: SecondAccount) -> None:
        super().__init__(world, "stan", "large GPU instance left running", member)
        self.at(member.joins_at + 2 * HOUR, self.set_up)

    def set_up(self) -> None:
        self.instance = self.launch(LARGE_GPU, name="stan-p4d")
        self.me = self.stamped(self.instance, "instance")
        self.me.burns.append(Burn(self.member.account, self.world.now))
        self.me.promises.append(Promise("idle instance stopped", self.world.now, "stop", idle=True))
        self.world.idle(self.instance)
        days = int((self.world.end - self.world.now) / DAY) + 1
        for day in range(1, days + 1):
            self.at(self.world.now.replace(hour=9, minute=0, second=0, microsecond=0) + day * DAY, self.look)

    def look(self) -> None:
        if self.member.state_of(self.instance) == "stopped":
            self.ec2().terminate_instances(InstanceIds=[self.instance])
            self.me.ended_by_others = self.world.now


def member_cast(world: World, member: SecondAccount) -> list[Story]:
    """The member's people, named as the hub's are: a mark, notice or ledger line that crossed would show. Five
    instances and a volume in scope at most, so the sweep's share cap (a quarter of the fleet) allows each stop owed
    in its sweep (the two are due on different days' afternoons)."""
    return [
        ForgottenBeforeOnboarding(world, member),
        AlwaysAtWork(world, "sami", member, instance_type="t3.medium", name="sami-devbox", work="make -j4", gpu=False),
        AlwaysAtWork(world, "theo", member, instance_type="g5.2xlarge", name="theo-trainer", work=TRAINING, gpu=True),
        KeptDataset(world, "dana", member),
        SpotAfterOnboarding(world, member),
        LeftRunning(world, member),
    ]


def accounts_report(seen: AccountsSeen, lines: list[AccountLine]) -> list[str]:
    """The organization mode's lines of the text report."""
    onboarding = seen.onboarding()
    failed = [c for c in seen.children if c.outcome == "failed"]
    per_account: dict[str, int] = {}
    for account in seen.holders.values():
        per_account[account] = per_account.get(account, 0) + 1
    kinds: dict[str, int] = {}
    for line in lines:
        kinds[line.what] = kinds.get(line.what, 0) + 1
    out = [
        f"organization: hub {seen.hub} ({per_account.get(seen.hub, 0)} resources), member {seen.member} "
        f"({per_account.get(seen.member, 0)} resources) in unit {seen.unit}",
        f"  joined the covered unit at {format_instant(seen.joined_at) if seen.joined_at else '-'}; onboarding "
        + (
            f"dry-run at {format_instant(onboarding.at)} ({onboarding.why_dry_run}), "
            f"{len(onboarding.candidates)} candidates reported, nothing written"
            if onboarding
            else "never"
        ),
        f"  organization runs: {seen.plans} plans, {len(seen.children)} children "
        f"({sum(c.dry_run for c in seen.children)} dry-run, {len(failed)} failed)",
        "  lines checked against the account holding their resource: "
        + ", ".join(f"{n} {what}" for what, n in sorted(kinds.items())),
        f"  ledger rows read: {seen.ledger_rows}; under the hub's account as a member's: {seen.hub_partition_rows}",
        "  the member's events through the organization bus: "
        + ", ".join(f"{n} to {function}" for function, n in sorted(seen.forwarded.items()))
        + f"; {seen.not_forwarded} before its spoke existed, forwarded nowhere",
    ]
    runs = seen.cost_runs
    priced = [r for r in runs if seen.member in r.covered]
    told = sorted({key for r in runs for key in r.notified})
    out.append(
        f"  organization cost runs: {len(runs)} ({len(priced)} pricing the member); member's burn at most "
        + (f"${max(float(r.accounts[seen.member]['hourly_usd'] or 0) for r in priced):,.2f}/h" if priced else "-")
        + f"; breaches told: {', '.join(told) or 'none'}"
    )
    out += [f"  failed child at {format_instant(c.at)}: {c.error}" for c in failed[:5]]
    return out
