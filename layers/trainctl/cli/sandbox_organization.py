"""`trainctl sandbox --organization`: the organization run's story on a local moto server, start to finish.

moto serves Organizations and several accounts: credentials from an assumed role act in that role's account. The
sandbox makes an Organization of two units, three member accounts and one deny-listed account, gives each member
the spoke role the StackSet would create, leaves a forgotten instance in every account, then runs the
organization run's own definition (the one the stack synthesises, shipped as `organization_run.asl.json`) on
moto's Step Functions interpreter: the plan task, then the Distributed Map with one child per account and region,
each child's Lambda task dispatched in-process to functions/organization_sweep. Every account is new to the hub,
so every child is a dry-run report, whatever the deployment says: nothing is written in any account.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from trainctl.aws import state_machines as workflows
from trainctl.aws.clients import ClientFactory, Credentials
from trainctl.aws.observability import logger
from trainctl.cli import stack_resources
from trainctl.cli.local_lambda import forget_finished_workers, lambda_tasks_in_process
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
# Long enough ago that the sweep's rules take the instance, however the defaults are set.
FORGOTTEN_FOR = timedelta(days=20)


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


def run_organization(hub: ClientFactory, environment: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One organization run through the Distributed Map; the execution's description and each child's output."""
    definition, bucket = run_definition()
    hub.client("s3", REGION).create_bucket(Bucket=bucket)
    sfn = hub.client("stepfunctions", REGION)
    machine = sfn.create_state_machine(
        name="trainctl-organization-run",
        definition=definition,
        roleArn=f"arn:aws:iam::{workflows.EMULATOR_ACCOUNT}:role/organization-run",
    )["stateMachineArn"]
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
        stack_resources.ensure_on_emulator(hub, (REGION,))
        hub_account = str(hub.client("sts").get_caller_identity()["Account"])
        organization_id, units, accounts = make_organization(hub)
        console.print(
            Panel.fit(
                f"moto server on {endpoint}; the hub is account {hub_account} (the management account), "
                f"region {REGION}\nunits covered: {', '.join(f'{n} {u}' for n, u in units.items())}; "
                f"deny-listed: {EXCLUDED[0]}",
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

        # 2. The StackSet's spoke role in every member; the deny-listed account gets none (the StackSet leaves it out).
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
                f"every account, the deny-listed one too, has a managed g5.xlarge stopped {FORGOTTEN_FOR.days} days "
                "ago\n",
                style="dim",
            )
        )
        before = {a.account_id: instance_tags(a.account_id, a.instance_id) for a in accounts}
        report["spokes"] = {row[1]: row[2] for row in spokes}
        report["forgotten"] = {a.name: a.instance_id for a in accounts}

        # 3. The organization run, enforcing as deployed: each account's first sweep is a dry-run all the same.
        environment = {
            "TRAINCTL_REGIONS": REGION,
            "TRAINCTL_LEDGER_TABLE": names.LEDGER_TABLE,
            "TRAINCTL_TRAINING_DOCUMENT": names.TRAINING_DOCUMENT,
            "TRAINCTL_DRY_RUN": "false",
            "TRAINCTL_ORG_UNITS": ",".join(units.values()),
            "TRAINCTL_ORG_EXCLUDE_ACCOUNTS": next(a.account_id for a in accounts if a.excluded),
            "TRAINCTL_ORG_SPOKE_ROLE": SPOKE_ROLE,
        }
        records = AccountRecords(hub.dynamodb(), names.LEDGER_TABLE)
        onboarded_before = records.onboarded([a.account_id for a in accounts])
        described, children = run_organization(hub, environment)
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
        console.print(Text("a member's next run may enforce; the deny-listed account stays unswept\n", style="dim"))
        checks["no tag written in any account: first sweeps are dry-runs"] = len(unchanged) == len(accounts)
        checks["the deny-listed account was never swept"] = excluded.account_id not in by_account
        checks["the members onboarded by their first report, the deny-listed account not"] = (
            not onboarded_before and onboarded_after == {a.account_id for a in members}
        )
        report["afterwards"] = {a.name: after[a.account_id] for a in accounts}

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
