"""`trainctl sandbox --organization`: the organization run's story on a local moto server, start to finish.

moto serves Organizations and several accounts: credentials from an assumed role act in that role's account. The
sandbox makes an Organization of two units, three member accounts and one deny-listed account, gives each member
the spoke role and the SSM documents the StackSet would create, leaves a forgotten instance in every account, then
runs the organization run's own definition (the one the stack synthesises, shipped as `organization_run.asl.json`)
on moto's Step Functions interpreter: the plan task, then the Distributed Map with one child per account and
region, each child's Lambda task dispatched in-process to functions/organization_sweep. Every account is new to
the hub, so every child is a dry-run report, whatever the deployment says: nothing is written in any account.

A second run enforces on the platform unit alone (TRAINCTL_ORG_ENFORCE_UNITS): its member's sweep marks, the
research unit's still only report. Then events reach the hub as the organization's bus delivers them (the
EventBridge envelope with the member's account and region), each run in-process by the deployed handler: a spot
warning from the enforced member is acted on in that account through its spoke role; one claiming the deny-listed
account is refused and counted, and nothing is written; a CloudTrail CreateVolume from the enforced member is
stamped there by age_guard through its spoke role.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from trainctl.aws import ledger
from trainctl.aws import ssm_documents as documents
from trainctl.aws import state_machines as workflows
from trainctl.aws.clients import ClientFactory, Credentials
from trainctl.aws.observability import logger, metrics
from trainctl.cli import stack_resources
from trainctl.cli.local_lambda import InProcessLambda, forget_finished_workers, lambda_tasks_in_process
from trainctl.cli.render import ESSENTIAL, Col, print_table
from trainctl.cli.sandbox_fleet import moto_server
from trainctl.core import names, tags
from trainctl.core.clock import format_instant, system_clock
from trainctl.organization.record import AccountRecords

REGION = "us-east-1"
SPOKE_ROLE = "trainctl-spoke"
ORGANIZATION_RUN = "organization_run"
RUN_DEADLINE_SECONDS = 120
# Who is who: the member accounts by unit, and the one the hub's deny-list names.
MEMBERS = (("alice", "research"), ("bob", "research"), ("carol", "platform"))
EXCLUDED = ("xavier", "research")
# The unit the deployment enforces on (its member's sweeps after the first, and the hub's answers to its events).
ENFORCED_UNIT = "platform"
# Long enough ago that the sweep's rules take the instance, however the defaults are set.
FORGOTTEN_FOR = timedelta(days=20)
# The sample events a member's rules forward, as EventBridge delivers them; the sandbox fills in who and when.
EVENTS = Path(__file__).resolve().parents[3] / "events"
SAMPLE_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class Account:
    name: str
    account_id: str
    unit: str
    excluded: bool
    instance_id: str = ""


def in_account(account_id: str) -> ClientFactory:
    """Clients acting in a member account, through the role Organizations creates in each new account."""
    answer = (
        ClientFactory(REGION)
        .client("sts")
        .assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="sandbox-set-up"
        )["Credentials"]
    )
    return ClientFactory(
        REGION, credentials=Credentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])
    )


def make_organization(hub: ClientFactory) -> tuple[str, dict[str, str], list[Account]]:
    """The Organization, its two units, and its four member accounts, each in its unit."""
    org = hub.client("organizations")
    organization_id = str(org.create_organization(FeatureSet="ALL")["Organization"]["Id"])
    root = org.list_roots()["Roots"][0]["Id"]
    units = {
        name: str(org.create_organizational_unit(ParentId=root, Name=name)["OrganizationalUnit"]["Id"])
        for name in ("research", "platform")
    }
    accounts = []
    for name, unit in (*MEMBERS, EXCLUDED):
        made = org.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]["AccountId"]
        org.move_account(AccountId=made, SourceParentId=root, DestinationParentId=units[unit])
        accounts.append(Account(name, str(made), unit, excluded=(name, unit) == EXCLUDED))
    return organization_id, units, accounts


def spoke_trust(hub_account: str, organization_id: str) -> str:
    """The spoke role's trust as the StackSet writes it: the hub's roles, from inside the organization only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{hub_account}:root"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"aws:PrincipalOrgID": organization_id}},
                }
            ],
        }
    )


def forgotten_instance(member: ClientFactory, account_id: str, now: datetime) -> str:
    """A managed instance stopped long ago: what a sweep marks. Dated back in moto's own records (in-process)."""
    # Cold start: moto's EC2 models, only for the sandbox.
    from moto.ec2.models import ec2_backends

    ec2 = member.ec2(REGION)
    created = now - FORGOTTEN_FOR - timedelta(days=1)
    instance_id = str(
        ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            MinCount=1,
            MaxCount=1,
            InstanceType="g5.xlarge",
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": tags.MANAGED, "Value": "true"},
                        {"Key": tags.OWNER, "Value": "ana"},
                        {"Key": tags.CREATED_AT, "Value": format_instant(created)},
                    ],
                }
            ],
        )["Instances"][0]["InstanceId"]
    )
    ec2.stop_instances(InstanceIds=[instance_id])
    instance = ec2_backends[account_id][REGION].get_instance(instance_id)
    instance.launch_time = created.replace(tzinfo=instance.launch_time.tzinfo)
    instance._reason = f"User initiated ({now - FORGOTTEN_FOR:%Y-%m-%d %H:%M:%S} UTC)"
    return instance_id


def instance_tags(account_id: str, instance_id: str) -> dict[str, str]:
    found = in_account(account_id).ec2(REGION).describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])
    return {t["Key"]: t["Value"] for t in found["Tags"]}


def run_definition() -> tuple[str, str]:
    """The shipped definition, and the bucket its ResultWriter writes to."""
    text = workflows.load(ORGANIZATION_RUN)
    bucket = str(json.loads(text)["States"]["EveryAccountRegion"]["ResultWriter"]["Parameters"]["Bucket"])
    # moto's ASL grammar takes ToleratedFailurePercentage only as a decimal (10 lexes as an integer there), where
    # Step Functions takes any number: the same value, written 10.0 for the interpreter.
    return re.sub(r'("ToleratedFailurePercentage":\s*)(\d+)([,\s}])', r"\g<1>\g<2>.0\g<3>", text), bucket


def create_run_machine(hub: ClientFactory) -> str:
    """The organization run's state machine, and the bucket its results go to, in the hub."""
    definition, bucket = run_definition()
    hub.client("s3", REGION).create_bucket(Bucket=bucket)
    return str(
        hub.client("stepfunctions", REGION).create_state_machine(
            name="trainctl-organization-run",
            definition=definition,
            roleArn=f"arn:aws:iam::{workflows.EMULATOR_ACCOUNT}:role/organization-run",
        )["stateMachineArn"]
    )


def run_organization(
    hub: ClientFactory, machine: str, environment: dict[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One organization run through the Distributed Map; the execution's description and each child's output."""
    sfn = hub.client("stepfunctions", REGION)
    forget_finished_workers()
    children: list[dict[str, Any]] = []
    with lambda_tasks_in_process(environment) as lambdas:
        dispatch = lambdas.invoke

        def recorded(**call: Any) -> dict[str, Any]:
            answer = dispatch(**call)
            if str(call.get("FunctionName", "")).endswith("organization_sweep"):
                children.append(json.loads(answer["Payload"].getvalue()))
                answer["Payload"].seek(0)
            return answer

        lambdas.invoke = recorded  # type: ignore[method-assign,assignment]
        execution = sfn.start_execution(
            stateMachineArn=machine, name=f"run-{uuid.uuid4().hex}", input=json.dumps({"task": "organization_plan"})
        )["executionArn"]
        deadline = time.monotonic() + RUN_DEADLINE_SECONDS
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    return dict(described), children


def spoke_documents(member: ClientFactory) -> None:
    """The SSM documents the StackSet puts in each spoke: the hub's checkpoint and checks run there by name."""
    ssm = member.ssm(REGION)
    for name, document in stack_resources.DOCUMENTS.items():
        content = json.dumps(documents.load(document))
        ssm.create_document(Name=name, Content=content, DocumentType="Command", DocumentFormat="JSON")


def spot_trainer(member: ClientFactory) -> str:
    """A managed spot instance training with a data volume: what a warning's snapshot is for."""
    return str(
        member.ec2(REGION).run_instances(
            ImageId="ami-0abcdef1234567890",
            InstanceType="g5.xlarge",
            MinCount=1,
            MaxCount=1,
            Placement={"AvailabilityZone": f"{REGION}a"},
            InstanceMarketOptions={"MarketType": "spot"},
            BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 200, "DeleteOnTermination": True}}],
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "ana"}],
                }
            ],
        )["Instances"][0]["InstanceId"]
    )


def forwarded(sample: str, account: str, replace: dict[str, str], at: datetime) -> dict[str, Any]:
    """A sample event as the organization's bus delivers it from `account`: its envelope and detail name the member."""
    text = (EVENTS / f"{sample}.json").read_text(encoding="utf-8").replace(SAMPLE_ACCOUNT, account)
    for placeholder, value in replace.items():
        text = text.replace(placeholder, value)
    event: dict[str, Any] = json.loads(text)
    event["id"] = str(uuid.uuid4())
    event["time"] = format_instant(at)
    if "eventTime" in event["detail"]:
        event["detail"]["eventTime"] = format_instant(at)
    return event


def emitted(output: str) -> dict[str, float]:
    """The metrics in a handler's EMF lines, by name, summed: what CloudWatch would count."""
    counted: dict[str, float] = {}
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document.get(metric["Name"], 0)
                counted[metric["Name"]] = counted.get(metric["Name"], 0.0) + float(
                    sum(value) if isinstance(value, list) else value
                )
    return counted


def deliver(
    function: str, event: dict[str, Any], environment: dict[str, str]
) -> tuple[dict[str, Any], dict[str, float]]:
    """The event run by the deployed handler in-process, as Lambda runs it for the bus's rule: its answer (or its
    error) and the metrics it emitted. Its logs and EMF lines are kept off the story's own output."""
    sink = io.StringIO()
    # Metrics the sandbox's earlier handlers added while their flushing was switched off would count here.
    metrics.clear_metrics()
    # Assigned, not setStream(): as `trainctl invoke` does, nothing is flushed into a stream that may be gone.
    handler = cast("logging.StreamHandler[Any]", logger.registered_handler)
    stream = handler.stream
    handler.stream = sink
    try:
        with contextlib.redirect_stdout(sink):
            answer = InProcessLambda({**environment, "POWERTOOLS_METRICS_DISABLED": "false"}).invoke(
                FunctionName=f"trainctl-{function}", Payload=json.dumps(event)
            )
    finally:
        handler.stream = stream
    result: dict[str, Any] = json.loads(answer["Payload"].getvalue())
    return result, emitted(sink.getvalue())


def spot_snapshots(clients: ClientFactory) -> list[str]:
    """The snapshots a spot warning made in the account these clients act in."""
    found = clients.ec2(REGION).describe_snapshots(OwnerIds=["self"])["Snapshots"]
    return sorted(str(s["SnapshotId"]) for s in found if any(t["Key"] == tags.SPOT_INSTANCE for t in s.get("Tags", [])))


def ledger_items(hub: ClientFactory) -> list[dict[str, Any]]:
    pages = hub.dynamodb().get_paginator("scan").paginate(TableName=names.LEDGER_TABLE)
    return [item for page in pages for item in page["Items"]]


def run_organization_sandbox(console: Console, *, as_json: bool = False) -> int:
    """The story as tables on `console`, or, with `as_json`, one JSON object on stdout and nothing else."""
    report: dict[str, Any] = {}
    shown = Console(file=io.StringIO(), width=console.width) if as_json else console
    code = _run(shown, report)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    return code


def _run(console: Console, report: dict[str, Any]) -> int:
    started = time.monotonic()
    checks: dict[str, bool] = {}
    with moto_server() as endpoint:
        # The report is the tables below; the handlers' own JSON logs and EMF lines would drown them.
        logger.setLevel("WARNING")
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        hub = ClientFactory(REGION)
        resources = stack_resources.ensure_on_emulator(hub, (REGION,))
        hub_account = str(hub.client("sts").get_caller_identity()["Account"])
        organization_id, units, accounts = make_organization(hub)
        console.print(
            Panel.fit(
                f"moto server on {endpoint}; the hub is account {hub_account} (the management account), "
                f"region {REGION}\nunits covered: {', '.join(f'{n} {u}' for n, u in units.items())}; "
                f"deny-listed: {EXCLUDED[0]}; enforced after each account's first run: the {ENFORCED_UNIT} unit",
                title="trainctl sandbox --organization",
                title_align="left",
            )
        )
        print_table(
            console,
            "1. the Organization: two units covered, three members, one deny-listed",
            (
                Col("account", ESSENTIAL, whole=True),
                Col("name", 90, whole=True),
                Col("unit", 80, whole=True),
                Col("covered", 70, whole=True),
            ),
            [[a.account_id, a.name, a.unit, "no: deny-listed" if a.excluded else "yes"] for a in accounts],
        )
        console.print()
        report["organization"] = {
            "id": organization_id,
            "hub": hub_account,
            "units": units,
            "accounts": {a.name: {"id": a.account_id, "unit": a.unit, "excluded": a.excluded} for a in accounts},
        }

        # 2. The StackSet's spoke role and SSM documents in every member; the deny-listed account gets none (the
        # StackSet leaves it out).
        now = system_clock()
        spokes = []
        seeded = []
        for account in accounts:
            member = in_account(account.account_id)
            role = ""
            if not account.excluded:
                role = member.client("iam").create_role(
                    RoleName=SPOKE_ROLE, AssumeRolePolicyDocument=spoke_trust(hub_account, organization_id)
                )["Role"]["Arn"]
                spoke_documents(member)
            spokes.append([account.account_id, account.name, role or "none (the StackSet leaves it out)"])
            seeded.append(
                Account(
                    account.name,
                    account.account_id,
                    account.unit,
                    account.excluded,
                    forgotten_instance(member, account.account_id, now),
                )
            )
        accounts = seeded
        print_table(
            console,
            "2. the spoke role in each member, and a forgotten instance in every account",
            (
                Col("account", ESSENTIAL, whole=True),
                Col("name", 90, whole=True),
                Col("spoke role", 80, min_width=30),
            ),
            spokes,
        )
        console.print(
            Text(
                f"each spoke holds the SSM documents too; every account, the deny-listed one too, has a managed "
                f"g5.xlarge stopped {FORGOTTEN_FOR.days} days ago\n",
                style="dim",
            )
        )
        before = {a.account_id: instance_tags(a.account_id, a.instance_id) for a in accounts}
        report["spokes"] = {row[1]: row[2] for row in spokes}
        report["forgotten"] = {a.name: a.instance_id for a in accounts}

        # 3. The organization run, enforcing on a unit as deployed: each account's first sweep is a dry-run all the
        # same.
        environment = {
            "TRAINCTL_REGIONS": REGION,
            "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
            "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
            "TRAINCTL_TOPIC_ARN": resources.topic_arn,
            "TRAINCTL_DRY_RUN": "false",
            "TRAINCTL_ORG_UNITS": ",".join(units.values()),
            "TRAINCTL_ORG_ENFORCE_UNITS": units[ENFORCED_UNIT],
            "TRAINCTL_ORG_EXCLUDE_ACCOUNTS": next(a.account_id for a in accounts if a.excluded),
            "TRAINCTL_ORG_SPOKE_ROLE": SPOKE_ROLE,
        }
        records = AccountRecords(hub.dynamodb(), names.LEDGER_TABLE)
        onboarded_before = records.onboarded([a.account_id for a in accounts])
        machine = create_run_machine(hub)
        described, children = run_organization(hub, machine, environment)
        onboarded_after = records.onboarded([a.account_id for a in accounts])
        by_account = {str(c.get("account")): c for c in children}
        rows = []
        for account in accounts:
            child = by_account.get(account.account_id)
            if child is None:
                rows.append([account.account_id, account.name, "not swept", "deny-listed", "-"])
                continue
            marks = sum(int(counts.get("mark", 0)) for counts in dict(child.get("owners") or {}).values())
            rows.append(
                [
                    account.account_id,
                    account.name,
                    str(child.get("outcome")),
                    ("dry-run" if child.get("dry_run") else "enforced")
                    + ("" if account.account_id in onboarded_before else ": new to the hub"),
                    f"would mark {marks}" if child.get("dry_run") else f"marked {marks}",
                ]
            )
        print_table(
            console,
            f"3. the organization run (the synthesised Distributed Map on moto): {described['status']}",
            (
                Col("account", ESSENTIAL, whole=True),
                Col("name", 90, whole=True),
                Col("outcome", 85, whole=True),
                Col("sweep", 60, min_width=20),
                Col("instance", 70, whole=True),
            ),
            rows,
        )
        console.print()
        members = [a for a in accounts if not a.excluded]
        excluded = next(a for a in accounts if a.excluded)
        checks["the run succeeded"] = described["status"] == "SUCCEEDED"
        checks["one child per member account"] = sorted(by_account) == sorted(a.account_id for a in members)
        checks["each member's forgotten instance found, a dry-run"] = all(
            (child := by_account.get(a.account_id)) is not None
            and child.get("outcome") == "done"
            and child.get("dry_run") is True
            and sum(int(c.get("mark", 0)) for c in dict(child.get("owners") or {}).values()) == 1
            for a in members
        )
        report["run"] = {"status": described["status"], "children": children}

        # 4. What the accounts hold now: the first sweep of a new account writes nothing, anywhere.
        after = {a.account_id: instance_tags(a.account_id, a.instance_id) for a in accounts}
        unchanged = [a for a in accounts if after[a.account_id] == before[a.account_id]]
        print_table(
            console,
            "4. afterwards: what each account's instance carries",
            (
                Col("account", ESSENTIAL, whole=True),
                Col("name", 90, whole=True),
                Col("instance", 80, whole=True),
                Col(tags.CLEANUP_AFTER, 70, whole=True),
                Col("onboarded", 60, whole=True),
            ),
            [
                [
                    a.account_id,
                    a.name,
                    a.instance_id,
                    after[a.account_id].get(tags.CLEANUP_AFTER, "none"),
                    "yes" if a.account_id in onboarded_after else "no",
                ]
                for a in accounts
            ],
        )
        console.print(
            Text(
                f"a member's next run may enforce (the {ENFORCED_UNIT} unit's); the deny-listed account stays "
                "unswept\n",
                style="dim",
            )
        )
        checks["no tag written in any account: first sweeps are dry-runs"] = len(unchanged) == len(accounts)
        checks["the deny-listed account was never swept"] = excluded.account_id not in by_account
        checks["the members onboarded by their first report, the deny-listed account not"] = (
            not onboarded_before and onboarded_after == {a.account_id for a in members}
        )
        report["afterwards"] = {a.name: after[a.account_id] for a in accounts}

        enforced = next(a for a in members if a.unit == ENFORCED_UNIT)
        checks.update(next_run(console, report, hub, machine, environment, accounts, enforced))
        checks.update(forwarded_events(console, report, hub, hub_account, environment, enforced, excluded))

    console.print()
    for what, held in checks.items():
        console.print(Text(f"{'ok  ' if held else 'FAIL'} {what}", style="green" if held else "bold red"))
    failed = [what for what, held in checks.items() if not held]
    report["checks"] = checks
    code = 0 if not failed else 1
    report["done"] = {"seconds": round(time.monotonic() - started, 1), "failed": failed, "exit_code": code}
    console.print(
        Text(
            f"\ndone in {time.monotonic() - started:.0f} s at {format_instant(system_clock())}",
            style="dim",
        )
    )
    return code


def sweep_words(child: dict[str, Any], account: Account) -> str:
    """How a child swept its account; a dry-run the plan decided is told by the setting behind it."""
    if not child.get("dry_run"):
        return "enforced"
    why = str(child.get("why_dry_run"))
    return (
        f"dry-run: {account.unit} not enforced"
        if why == "planned" and account.unit != ENFORCED_UNIT
        else f"dry-run: {why}"
    )


def next_run(
    console: Console,
    report: dict[str, Any],
    hub: ClientFactory,
    machine: str,
    environment: dict[str, str],
    accounts: list[Account],
    enforced: Account,
) -> dict[str, bool]:
    """5. The next organization run: the enforced unit's member is marked, the others still only report."""
    before = {a.account_id: instance_tags(a.account_id, a.instance_id) for a in accounts}
    described, children = run_organization(hub, machine, environment)
    after = {a.account_id: instance_tags(a.account_id, a.instance_id) for a in accounts}
    by_account = {str(c.get("account")): c for c in children}
    rows = []
    for account in accounts:
        child = by_account.get(account.account_id)
        if child is None:
            rows.append([account.account_id, account.name, "not swept", "deny-listed", "none"])
            continue
        rows.append(
            [
                account.account_id,
                account.name,
                str(child.get("outcome")),
                sweep_words(child, account),
                after[account.account_id].get(tags.CLEANUP_AFTER, "none"),
            ]
        )
    print_table(
        console,
        f"5. the next run, the {ENFORCED_UNIT} unit enforced: {described['status']}",
        (
            Col("account", ESSENTIAL, whole=True),
            Col("name", 90, whole=True),
            Col("outcome", 85, whole=True),
            Col("sweep", 60, min_width=20),
            Col(tags.CLEANUP_AFTER, 70, whole=True),
        ),
        rows,
    )
    console.print(Text("a mark is a promise: the instance is stopped only after its grace period\n", style="dim"))
    report["next_run"] = {
        "status": described["status"],
        "children": children,
        "afterwards": {a.name: after[a.account_id] for a in accounts},
    }
    members = [a for a in accounts if not a.excluded]
    mine = by_account.get(enforced.account_id, {})
    others = [a for a in members if a != enforced]
    return {
        "the next run succeeded": described["status"] == "SUCCEEDED",
        f"the {ENFORCED_UNIT} unit's member enforced: its forgotten instance marked": (
            mine.get("outcome") == "done"
            and mine.get("dry_run") is False
            and tags.CLEANUP_AFTER in after[enforced.account_id]
        ),
        "the other members still dry-runs: nothing written in them": all(
            by_account.get(a.account_id, {}).get("dry_run") is True and after[a.account_id] == before[a.account_id]
            for a in others
        ),
        "the deny-listed account still never swept": not {a.account_id for a in accounts if a.excluded}
        & set(by_account),
    }


def forwarded_events(
    console: Console,
    report: dict[str, Any],
    hub: ClientFactory,
    hub_account: str,
    environment: dict[str, str],
    enforced: Account,
    excluded: Account,
) -> dict[str, bool]:
    """6-7. Events forwarded by members' rules to the hub's bus, each run by the deployed handler in-process."""
    checks: dict[str, bool] = {}
    member = in_account(enforced.account_id)
    trainer = spot_trainer(member)
    warning = forwarded(
        "spot_interruption/warning", enforced.account_id, {"i-0000000000000000a": trainer}, system_clock()
    )
    warned, warned_counts = deliver("spot_interruption", warning, environment)
    steps = list(warned.get("steps") or [])
    print_table(
        console,
        f"6. a spot warning from {enforced.name} ({enforced.account_id}) for {trainer}, forwarded to the hub: "
        f"{warned.get('status') or warned.get('errorType')}",
        (
            Col("step", ESSENTIAL, whole=True),
            Col("at ms", 90, whole=True, justify="right"),
            Col("took ms", 85, whole=True, justify="right"),
            Col("outcome", 80, whole=True),
            Col("detail", 70, min_width=20),
        ),
        [[s["step"], f"{s['at_ms']:.0f}", f"{s['took_ms']:.0f}", s["outcome"], s["detail"]] for s in steps],
    )
    made = sorted(str(s["snapshot_id"]) for s in warned.get("snapshots") or [])
    in_member, in_hub = spot_snapshots(member), spot_snapshots(hub)
    recorded = [i for i in ledger_items(hub) if i[ledger.PARTITION_KEY]["S"] == f"spot#{trainer}"]
    recorded_under = [str(i.get("account", {}).get("S", "none")) for i in recorded]
    console.print(
        Text(
            f"acted on through {enforced.name}'s spoke role; snapshots in its account (read with its own "
            f"credentials): {', '.join(in_member) or 'none'}; in the hub's: {', '.join(in_hub) or 'none'}; the hub's "
            f"ledger records the warning under account {', '.join(recorded_under) or 'none'}\n"
        )
    )
    report["forwarded"] = {
        "spot_warning": {
            "account": enforced.account_id,
            "instance_id": trainer,
            "result": warned,
            "metrics": warned_counts,
            "snapshots_in_member": in_member,
            "snapshots_in_hub": in_hub,
            "ledger_accounts": recorded_under,
        }
    }
    checks[f"{enforced.name}'s spot warning acted on in its account through its spoke role"] = (
        warned.get("status") == "handled"
        and warned.get("account") == enforced.account_id
        and warned.get("why_dry_run") is None
        and any(s["step"] == "checkpoint-command" and s["outcome"] == "done" for s in steps)
    )
    checks[f"the warning's snapshot made in {enforced.name}'s account, none in the hub's"] = (
        bool(made) and in_member == made and in_hub == []
    )
    checks["the hub's ledger records the warning under the member's account"] = recorded_under == [enforced.account_id]

    # A warning claiming the deny-listed account (no spoke there forwards; a misrouted or forged event would).
    kept = sorted(json.dumps(i, sort_keys=True) for i in ledger_items(hub))
    claim = forwarded(
        "spot_interruption/warning", excluded.account_id, {"i-0000000000000000a": excluded.instance_id}, system_clock()
    )
    refused, refused_counts = deliver("spot_interruption", claim, environment)
    unchanged = sorted(json.dumps(i, sort_keys=True) for i in ledger_items(hub)) == kept
    denied_snapshots = spot_snapshots(in_account(excluded.account_id)) + spot_snapshots(hub)

    # A CloudTrail CreateVolume in the enforced member, stamped there by age_guard through the spoke role.
    volume = str(member.ec2(REGION).create_volume(AvailabilityZone=f"{REGION}a", Size=500)["VolumeId"])
    call = forwarded(
        "age_guard/create_volume_iam_user", enforced.account_id, {"vol-0000000000000000a": volume}, system_clock()
    )
    stamped, stamped_counts = deliver("age_guard", call, {**environment, "TRAINCTL_ACCOUNT_ID": hub_account})
    found = member.ec2(REGION).describe_tags(Filters=[{"Name": "resource-id", "Values": [volume]}])["Tags"]
    volume_tags = {t["Key"]: t["Value"] for t in found}

    def counted(metrics_seen: dict[str, float]) -> str:
        return ", ".join(f"{name} {value:g}" for name, value in sorted(metrics_seen.items()) if value) or "none"

    print_table(
        console,
        "7. more forwarded events: one the hub refuses, one it stamps through the spoke",
        (
            Col("event", ESSENTIAL, whole=True),
            Col("account", ESSENTIAL, whole=True),
            Col("hub's answer, counted", 90, min_width=20),
            Col("written", 80, min_width=16),
        ),
        [
            [
                "spot warning",
                f"{excluded.account_id} ({excluded.name})",
                f"{refused.get('status') or refused.get('errorType')}: {refused.get('refused')}; "
                f"{counted(refused_counts)}",
                "nothing" if unchanged and not denied_snapshots else "written",
            ],
            [
                "CreateVolume",
                f"{enforced.account_id} ({enforced.name})",
                f"{stamped.get('status') or stamped.get('errorType')}; {counted(stamped_counts)}",
                ", ".join(sorted(volume_tags)) or "nothing",
            ],
        ],
    )
    console.print(
        Text(
            f"{volume} in {enforced.name}'s account, read with its own credentials: "
            f"{tags.CREATED_BY}={volume_tags.get(tags.CREATED_BY, 'none')}\n",
            style="dim",
        )
    )
    report["forwarded"]["deny_listed_warning"] = {
        "account": excluded.account_id,
        "result": refused,
        "metrics": refused_counts,
        "ledger_unchanged": unchanged,
        "snapshots": denied_snapshots,
    }
    report["forwarded"]["create_volume"] = {
        "account": enforced.account_id,
        "volume_id": volume,
        "result": stamped,
        "metrics": stamped_counts,
        "tags": volume_tags,
    }
    checks["a warning claiming the deny-listed account refused and counted"] = (
        refused.get("status") == "refused"
        and refused.get("refused") == "deny-listed"
        and refused_counts.get("ForwardedRefused") == 1
    )
    checks["nothing written for it: no ledger item, no snapshot in it or the hub"] = unchanged and not denied_snapshots
    checks[f"age_guard stamped {enforced.name}'s new volume in its account through its spoke role"] = (
        stamped.get("status") == "stamped"
        and stamped.get("account") == enforced.account_id
        and volume_tags.get(tags.CREATED_BY) == f"arn:aws:iam::{enforced.account_id}:user/bob"
        and tags.CREATED_AT in volume_tags
    )
    return checks
