"""`trainctl sandbox`: the cleanup sweep's whole story on a local moto server, start to finish."""

from __future__ import annotations

import html
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from trainctl.aws.clients import ClientFactory
from trainctl.aws.observability import logger
from trainctl.cli import stack_resources
from trainctl.cli.local_lambda import failing_sdk_call, forget_finished_workers, lambda_tasks_in_process
from trainctl.cli.local_run import invoke_handler
from trainctl.cli.prewarm_run import follow, start_prewarm
from trainctl.cli.render import ESSENTIAL, Col, duration, print_cost, print_sweep, print_table, sweep_summary
from trainctl.cli.report import DEFAULT_SINCE, print_report, window_start
from trainctl.cli.sandbox_fleet import (
    SANDBOX_CLOCK_OFFSET,
    SANDBOX_REGIONS,
    SeededFleet,
    moto_server,
    seed_agents,
    seed_training_fleet,
)
from trainctl.cli.ssm_agent import SsmAgents, emulated_agents
from trainctl.core import tags
from trainctl.core.clock import fixed_clock, format_instant, system_clock
from trainctl.core.settings import CostSettings, SweepSettings
from trainctl.cost.run import effects_for as cost_effects_for
from trainctl.cost.run import price_book_for, run_cost_check
from trainctl.prewarm.rules import PrewarmRequest, VolumeSpec
from trainctl.report.run import build_report
from trainctl.sweep.run import SweepResult, effects_for, run_sweep

# Sandbox settings differ from the defaults only where the demo needs it, and say so.
SANDBOX_SETTINGS = {
    "TRAINCTL_SNAPSHOT_RETENTION": "7d",
    "TRAINCTL_TRAINING_CHECK_TIMEOUT": "5s",
    "TRAINCTL_SCOPE_PRINCIPALS": "arn:aws:iam::*:role/MLTeam*",
    # An idle instance is stopped only if a sweep saw it idle once per idle window (2h) of its grace: a 2h grace
    # needs one sweep inside it, where the default day would need a dozen.
    "TRAINCTL_GRACE_PERIOD": "2h",
}
EVENTS = Path(__file__).resolve().parents[3] / "events" / "age_guard"
SPOT_EVENTS = EVENTS.parent / "spot_interruption"


def replay_creation(console: Console, factory: ClientFactory, at: datetime, report: dict[str, Any]) -> dict[str, str]:
    """Someone creates a volume and launches two instances; age_guard gets the CloudTrail events."""
    ec2 = factory.ec2(SANDBOX_REGIONS[0])
    volume_id = ec2.create_volume(Size=250, AvailabilityZone=f"{SANDBOX_REGIONS[0]}a")["VolumeId"]
    instances = [
        i["InstanceId"]
        for i in ec2.run_instances(ImageId="ami-0abcdef1234567890", MinCount=2, MaxCount=2, InstanceType="g5.2xlarge")[
            "Instances"
        ]
    ]
    replays = {
        "create_volume_iam_user": {"vol-0000000000000000a": volume_id},
        "run_instances_assumed_role": {"i-0000000000000000a": instances[0], "i-0000000000000000b": instances[1]},
    }
    # The report is the tables below; the handler's own JSON logs and EMF lines would drown them.
    logger.setLevel("WARNING")
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    for case, ids in replays.items():
        text = (EVENTS / f"{case}.json").read_text(encoding="utf-8")
        for placeholder, real in ids.items():
            text = text.replace(placeholder, real)
        event = json.loads(text)
        event["detail"]["eventTime"] = format_instant(at)
        invoke_handler(factory, "age_guard", event)
    stamped = [volume_id, *instances]
    found = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": stamped}])["Tags"]
    by_resource: dict[str, dict[str, str]] = {r: {} for r in stamped}
    for tag in found:
        by_resource[tag["ResourceId"]][tag["Key"]] = tag["Value"]
    report["age_guard"] = dict(by_resource)
    print_table(
        console,
        "0. age guard: CloudTrail events replayed, resources stamped",
        (
            Col("resource", ESSENTIAL, whole=True),
            Col("owner", 90, min_width=10),
            Col("managed", 80, whole=True),
            Col("created-at", 70, whole=True),
            Col("created-by", 60, min_width=40),  # a principal's ARN: whole, or left out
        ),
        [
            [
                resource_id,
                values.get(tags.OWNER, "-"),
                values.get(tags.MANAGED, "-"),
                values.get(tags.CREATED_AT, "-"),
                values.get(tags.CREATED_BY, "-"),
            ]
            for resource_id, values in by_resource.items()
        ],
    )
    console.print(
        Text(
            "alice's role matches TRAINCTL_SCOPE_PRINCIPALS, so her instances are in scope; "
            "bob's volume is stamped but stays out of scope\n",
            style="dim",
        )
    )
    return {"stamped-volume": volume_id, "stamped-instance": instances[0]}


def subscribe_inbox(factory: ClientFactory, topic_arn: str) -> str:
    """An SQS queue on the topic: what the topic received is what a subscriber would read."""
    sqs = factory.client("sqs", SANDBOX_REGIONS[0])
    queue_url: str = sqs.create_queue(QueueName="sandbox-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    factory.sns().subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return queue_url


def inbox_subjects(factory: ClientFactory, queue_url: str) -> list[str]:
    sqs = factory.client("sqs", SANDBOX_REGIONS[0])
    subjects = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            subjects.append(str(json.loads(message["Body"]).get("Subject", "")))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return subjects


def cost_checks(
    console: Console,
    factory: ClientFactory,
    environ: dict[str, str],
    topic_arn: str,
    at: datetime,
    report: dict[str, Any],
) -> bool:
    """What the fleet burns now; breaches reach the topic once, and a second check 15 minutes later is quiet."""
    settings = CostSettings.from_env(environ).model_copy(update={"topic_arn": topic_arn})
    inbox = subscribe_inbox(factory, topic_arn)
    told: list[list[str]] = []
    for step, offset in (("a", timedelta(0)), ("b", timedelta(minutes=15))):
        clock = fixed_clock(at + offset)
        # The same chain and effects as the cost_alerts handler; moto has no Price List API, so the file answers.
        book = price_book_for(factory, settings, clock, use_table=True, use_api=False)
        result = run_cost_check(factory, settings, clock, book, cost_effects_for(factory, settings))
        if step == "a":
            print_cost(console, result, f"0b. cost: the money burning at {format_instant(at)}")
        told.append(inbox_subjects(factory, inbox))
        report.setdefault("cost", []).append({**result.to_json(), "sent": told[-1]})
        console.print(
            Text.assemble(
                (f"cost check {step}", "bold"),
                f" at {format_instant(at + offset)}: {len(result.breaches)} breaches, "
                f"{len(told[-1])} message(s) on the topic"
                + (f", {len(result.suppressed)} not repeated (cooldown)" if result.suppressed else ""),
            )
        )
        for subject in told[-1]:
            console.print(Text.assemble(("  sent: ", "red"), subject))
    console.print()
    return bool(told[0]) and not told[1]


def reclaimed_by_ec2(instance_id: str, region: str) -> None:
    """moto records any termination as asked for (Client.UserInitiatedShutdown); EC2 taking back spot capacity
    says Server.SpotInstanceTermination, which is what recovery waits for. The server runs in this process."""
    # Cold start: moto's EC2 models, only for the sandbox's reclaim.
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.instances import StateReason

    instance = ec2_backends[DEFAULT_ACCOUNT_ID][region].get_instance(instance_id)
    instance.state_reason = StateReason(
        "Server.SpotInstanceTermination: Spot instance termination", "Server.SpotInstanceTermination"
    )


def stopped_on_the_sandbox_clock(instance_id: str, region: str, at: datetime) -> None:
    """moto dates a stop by the wall clock, SANDBOX_CLOCK_OFFSET behind the sweeps': dated when the sweep stopped it,
    the instance is not taken by the next sweep for one stopped days ago. The server runs in this process."""
    # Cold start: moto's EC2 models, only for the sandbox.
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    instance = ec2_backends[DEFAULT_ACCOUNT_ID][region].get_instance(instance_id)
    instance._reason = f"User initiated ({at:%Y-%m-%d %H:%M:%S} UTC)"


def spot_story(console: Console, factory: ClientFactory, report: dict[str, Any]) -> bool:
    """A spot instance gets its two-minute warning, is reclaimed, and the recovery workflow relaunches it."""
    region = SANDBOX_REGIONS[0]
    ec2 = factory.ec2(region)
    template = ec2.create_launch_template(
        LaunchTemplateName="sandbox-finetune",
        LaunchTemplateData={"ImageId": "ami-0abcdef1234567890", "InstanceType": "g5.xlarge"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    instance = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": f"{region}a"},
        InstanceMarketOptions={"MarketType": "spot"},
        BlockDeviceMappings=[
            {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 500, "DeleteOnTermination": True}},
            {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 200, "DeleteOnTermination": True}},
        ],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [
                    {"Key": "Name", "Value": "spot-llm-finetune"},
                    {"Key": tags.MANAGED, "Value": "true"},
                    {"Key": tags.OWNER, "Value": "carol"},
                    {"Key": tags.RECOVER, "Value": "true"},
                ],
            }
        ],
    )["Instances"][0]
    instance_id = instance["InstanceId"]
    data = next(m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sdf")
    ec2.create_tags(Resources=[data], Tags=[{"Key": tags.PERSISTENT, "Value": "true"}])
    os.environ.setdefault("TRAINCTL_SPOT_CHECKPOINT_S3_URI", "s3://sandbox-checkpoints/runs")

    def event(case: str) -> dict[str, object]:
        text = (SPOT_EVENTS / f"{case}.json").read_text(encoding="utf-8").replace("i-0000000000000000a", instance_id)
        loaded: dict[str, object] = json.loads(text)
        loaded["time"] = format_instant(system_clock())
        return loaded

    warned = invoke_handler(factory, "spot_interruption", event("warning"))
    again = invoke_handler(factory, "spot_interruption", event("warning"))
    ec2.terminate_instances(InstanceIds=[instance_id])
    reclaimed_by_ec2(instance_id, region)
    sfn = factory.client("stepfunctions", region)
    execution = {"status": "NOT STARTED"}
    # The workflow's plan task (spot_recovery_plan) runs in this process.
    with lambda_tasks_in_process({}):
        started = invoke_handler(factory, "spot_interruption", event("terminated"))
        if started.get("execution_arn"):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                execution = sfn.describe_execution(executionArn=started["execution_arn"])
                if execution["status"] != "RUNNING":
                    break
                time.sleep(0.2)
    history = (
        sfn.get_execution_history(executionArn=started["execution_arn"], maxResults=1000)["events"]
        if started.get("execution_arn")
        else []
    )
    relaunched = [
        i
        for r in ec2.describe_instances(Filters=[{"Name": f"tag:{tags.RECOVERED_FROM}", "Values": [instance_id]}])[
            "Reservations"
        ]
        for i in r["Instances"]
    ]
    report["spot"] = {"warning": warned, "recovery": started, "status": execution["status"]}
    print_table(
        console,
        f"5. spot: the two-minute warning for {instance_id} (carol's fine-tune, in scope, recover=true)",
        (
            Col("step", ESSENTIAL, whole=True),
            Col("at ms", 90, whole=True, justify="right"),
            Col("took ms", 85, whole=True, justify="right"),
            Col("outcome", 80, whole=True),
            Col("detail", 70, min_width=20),
        ),
        [
            [step["step"], f"{step['at_ms']:.0f}", f"{step['took_ms']:.0f}", step["outcome"], step["detail"]]
            for step in warned["steps"]
        ],
    )
    console.print(
        Text(
            f"snapshots {', '.join(s['snapshot_id'] for s in warned['snapshots'])}; "
            f"kept {', '.join(warned['kept_volumes']) or 'nothing'}; "
            f"the same warning again: {'nothing new (idempotent)' if again == warned else 'ACTED TWICE'}"
        )
    )
    placed = ", ".join(
        f"{i['InstanceId']} in {i['Placement']['AvailabilityZone']} ({i['State']['Name']})" for i in relaunched
    )
    console.print(
        Text(
            f"reclaimed; recovery workflow {execution['status']} in {len(history)} history events: "
            f"relaunched from the launch template as {placed or 'nothing'}, data volumes restored from the snapshots\n"
        )
    )
    return warned["status"] == "handled" and again == warned and execution["status"] == "SUCCEEDED"


def prewarm_story(
    console: Console, factory: ClientFactory, resources: stack_resources.StackResources, report: dict[str, Any]
) -> bool:
    """The pre-warm workflow fills a volume from S3, then runs again with an attach that fails: both end clean."""

    region = SANDBOX_REGIONS[0]
    s3 = factory.client("s3", region)
    s3.create_bucket(Bucket="sandbox-datasets")
    for shard in range(4):
        s3.put_object(Bucket="sandbox-datasets", Key=f"tokenized/shard-{shard:03d}.bin", Body=b"\0" * 65536)
    ec2 = factory.ec2(region)
    assert resources.prewarm_state_machine and resources.prewarm_instance_profile
    environment = {"TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN": resources.prewarm_instance_profile}

    def workers() -> set[str]:
        found = ec2.describe_instances(
            Filters=[
                {"Name": f"tag:{tags.ROLE}", "Values": [tags.PREWARM_WORKER_ROLE]},
                {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
            ]
        )["Reservations"]
        return {i["InstanceId"] for r in found for i in r["Instances"]}

    def clean(volume_id: str, before: set[str]) -> bool:
        """The volume is available again and no worker this run launched is left (the seeded one is the sweep's)."""
        volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        return volume["State"] == "available" and not workers() - before

    outcomes = []
    with lambda_tasks_in_process(environment) as lambdas:
        for title, fault in (
            ("6. pre-warm a data volume from S3", None),
            ("7. pre-warm again, attach fails", "AttachVolume"),
        ):
            volume_id = ec2.create_volume(
                Size=200,
                AvailabilityZone=f"{region}a",
                VolumeType="gp3",
                # In scope and not claimed by anyone yet: a volume pre-warm may fill.
                TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
            )["VolumeId"]
            request = PrewarmRequest(volume_id=volume_id, s3_uri="s3://sandbox-datasets/tokenized/")
            console.print(Text.assemble((title, "bold"), f": trainctl prewarm {volume_id} {request.s3_uri}"))
            forget_finished_workers()
            before = len(lambdas.invocations)
            earlier = workers()
            if fault:
                with failing_sdk_call(fault):
                    result = follow(factory, start_prewarm(factory, resources.prewarm_state_machine, request), console)
            else:
                result = follow(factory, start_prewarm(factory, resources.prewarm_state_machine, request), console)
            tagged = {
                t["Key"]: t["Value"] for t in ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0].get("Tags", [])
            }
            tidy = clean(volume_id, earlier)
            console.print(
                Text(
                    f"  {result['status']} after {result['state_transitions']} state transitions and "
                    f"{len(lambdas.invocations) - before} Lambda invocations"
                    + (f" ({result['error']}: {str(result['cause'])[:120]})" if result["error"] else "")
                    + ("; volume available and detached, no worker left; " if tidy else "; NOT CLEAN; ")
                    + f"{tags.PREWARMED_AT}={tagged.get(tags.PREWARMED_AT, '-')}\n"
                )
            )
            outcomes.append((result["status"], tidy))
            report.setdefault("prewarm", []).append({**result, "volume_id": volume_id, "clean": tidy})
    return outcomes == [("SUCCEEDED", True), ("FAILED", True)]


SSM_STORY = ("forgotten-notebook", "data-wait-finetune", "debug-box-no-ssm")


def agent_says(agents: SsmAgents, instance_id: str) -> str:
    host = agents.host(instance_id)
    if host is None:
        return "no SSM agent"
    return "; ".join(host.processes) + ("; GPU compute" if host.gpu_processes else "") or "nothing"


def ssm_story(
    console: Console, agents: SsmAgents, fleet: SeededFleet, result: SweepResult, report: dict[str, Any]
) -> None:
    """What each instance's SSM agent answered the training check, and what the sweep made of it."""
    decisions = {d.resource_id: d for d in result.decisions}
    rows = []
    for name in SSM_STORY:
        decision = decisions[fleet[name]]
        why = decision.detail.split(";")[0]  # the first clause says it; --json has the rest
        rows.append(
            [
                f"{name}\n{fleet[name]}",
                agent_says(agents, fleet[name]),
                decision.action,
                f"{', '.join(decision.protections)}: {why}" if decision.protections else why,
            ]
        )
    report["ssm_agents"] = [
        dict(zip(("instance", "runs", "action", "why"), (fleet[name], *row[1:]), strict=True))
        for name, row in zip(SSM_STORY, rows, strict=True)
    ]
    print_table(
        console,
        "2b. the training check: what each instance's SSM agent answered",
        (
            Col("instance", ESSENTIAL, whole=True),
            Col("its agent sees", 80, min_width=14),
            Col("action", ESSENTIAL, whole=True),
            Col("why", 90, min_width=20),
        ),
        rows,
    )
    unmanaged = result.summary().get("not_managed_by_ssm", 0)
    console.print(Text(f"not_managed_by_ssm: {unmanaged} in the summary (no check can reach it: kept, counted)\n"))


def notebook_story(
    console: Console, notebook: str, marked: SweepResult, acted: SweepResult, grace: timedelta, lag: timedelta
) -> bool:
    """The forgotten notebook: marked by one sweep, stopped by the first sweep after its grace and the events' lag."""
    mark = next(d for d in marked.decisions if d.resource_id == notebook)
    act = next(d for d in acted.decisions if d.resource_id == notebook)
    console.print(
        Text(
            f"the forgotten notebook {notebook}: {mark.action} at {format_instant(marked.at)}; grace "
            f"{duration(grace)}, then {duration(lag)} for late events; {act.action} at {format_instant(acted.at)}: "
            f"{act.outcome}\n"
        )
    )
    return (mark.action, act.action, act.outcome) == ("mark", "stop", "done")


def capture_publishes(factory: ClientFactory) -> list[dict[str, Any]]:
    """Every Publish the sandbox makes, as SNS was handed it: what each kind of subscriber is sent."""
    published: list[dict[str, Any]] = []
    factory.register("provide-client-params.sns.Publish", lambda params, **_: published.append(dict(params)))
    return published


def as_chat_shows(markdown: str) -> str:
    """The notice's markdown as a chat client shows it: escapes and entities read as the characters they stand for."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def notice_story(console: Console, published: list[dict[str, Any]], report: dict[str, Any]) -> bool:
    """One owner's notice from the acting sweep, as their e-mail and as their chat channel show it."""
    for params in published:
        if params.get("MessageStructure") != "json":
            continue
        rendered = json.loads(params["Message"])
        chat = json.loads(rendered["https"])
        owner = params["MessageAttributes"]["owner"]["StringValue"]
        content, metadata = chat["content"], chat["metadata"]
        report["notice"] = {"owner": owner, "subject": params["Subject"], "email": rendered["email"], "chat": chat}
        console.print(
            Text.assemble(("3b. what the owner reads", "bold"), f" (owner {owner}, one notice, two channels)")
        )
        console.print(
            Panel(
                Text(f"Subject: {params['Subject']}\n\n{rendered['email']}"),
                title="e-mail (SNS 'email': plain text)",
                title_align="left",
            )
        )
        steps = "\n".join(f"- {as_chat_shows(step)}" for step in content["nextSteps"])
        console.print(
            Panel(
                Text.assemble(
                    (as_chat_shows(content["title"]), "bold"),
                    "\n",
                    as_chat_shows(content["description"]),
                    "\n\n",
                    ("Next steps\n", "bold"),
                    steps,
                ),
                title="chat (SNS 'https': Amazon Q Developer custom notification)",
                title_align="left",
            )
        )
        console.print(
            Text(
                f"schema {chat['version']}/{chat['source']}, textType {content['textType']}, "
                f"thread {metadata['threadId']}; queues and functions get JSON (SNS 'default')\n",
                style="dim",
            )
        )
        return True
    console.print(Text("3b. no notice was published by the acting sweep\n", style="red"))
    return False


def report_story(
    console: Console,
    factory: ClientFactory,
    resources: stack_resources.StackResources,
    environ: dict[str, str],
    at: datetime,
    report: dict[str, Any],
) -> bool:
    """`trainctl report` on the sandbox's own ledger: it counts exactly what the enforced sweeps did."""
    settings = CostSettings.from_env(environ).model_copy(
        update={"ledger_table": resources.ledger_table, "price_table": resources.price_table}
    )
    clock = fixed_clock(at)
    # The same chain as `trainctl report` on an emulator: moto has no Price List API, so the file answers.
    book = price_book_for(factory, settings, clock, use_table=True, use_api=False)
    result = build_report(
        factory,
        resources.ledger_table,
        book,
        since=window_start(DEFAULT_SINCE, at),
        until=at,
        window=DEFAULT_SINCE,
    )
    print_report(console, result, f"8. trainctl report --since {DEFAULT_SINCE}")
    console.print()
    said = result.to_json()
    report["report"] = said
    done: dict[str, set[str]] = {"terminate": set(), "delete": set(), "mark": set()}
    for sweep in report.get("sweeps", []):
        for decision in sweep["decisions"]:
            if decision["outcome"] == "done" and decision["action"] in done:
                done[decision["action"]].add(decision["resource_id"])
    total = said["total"]
    return (total["terminated"], total["deleted"], total["marked"]) == (
        len(done["terminate"]),
        len(done["delete"]),
        len(done["mark"]),
    )


def run_sandbox(console: Console, *, as_json: bool = False) -> int:
    """The whole story as tables on `console`, or, with `as_json`, one JSON object on stdout and nothing else."""
    report: dict[str, Any] = {}
    shown = Console(file=io.StringIO(), width=console.width) if as_json else console
    code = _run(shown, report)
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    return code


def _settings_words(settings: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items())


def _run(console: Console, report: dict[str, Any]) -> int:
    started = time.monotonic()
    with moto_server() as endpoint, emulated_agents(SsmAgents()) as agents:
        factory = ClientFactory()
        environ = {**os.environ, **SANDBOX_SETTINGS, "TRAINCTL_REGIONS": ",".join(SANDBOX_REGIONS)}
        base = SweepSettings.from_env(environ)
        resources = stack_resources.ensure_on_emulator(factory, base.regions)
        base = base.model_copy(
            update={
                "ledger_table": resources.ledger_table,
                "topic_arn": resources.topic_arn,
                "training_document": resources.training_document,
            }
        )
        t0 = system_clock() + SANDBOX_CLOCK_OFFSET
        fleet = seed_training_fleet(factory, base.regions, t0)
        seed_agents(factory, agents, fleet, base.regions[0], t0)
        os.environ.update(SANDBOX_SETTINGS)
        os.environ["TRAINCTL_REGIONS"] = ",".join(SANDBOX_REGIONS)
        console.print(
            Panel.fit(
                f"moto server on {endpoint}; regions {', '.join(base.regions)}\n"
                f"seeded {len(fleet.ids)} named resources (GPU instances on demand and spot, volumes attached, "
                "unattached and persistent, snapshots incl. one behind an AMI, some out of scope)\n"
                f"the sandbox clock runs {duration(SANDBOX_CLOCK_OFFSET)} ahead of the fleet's creation; "
                f"grace period {duration(base.grace_period)}, min age {duration(base.min_age)}, blast radius "
                f"{base.max_actions} actions / {base.max_action_share:.0%} of the fleet\n"
                f"sandbox-only settings: {_settings_words(SANDBOX_SETTINGS)}",
                title="trainctl sandbox",
                title_align="left",
            )
        )
        report["sandbox"] = {
            "endpoint": endpoint,
            "regions": list(base.regions),
            "seeded": dict(fleet.ids),
            "settings": SANDBOX_SETTINGS,
        }

        def sweep(title: str, *, dry_run: bool, after: timedelta = timedelta(0), table: bool = True) -> SweepResult:
            settings = base.model_copy(update={"dry_run": dry_run})
            at = t0 + after
            effects = effects_for(factory, settings)
            result = run_sweep(
                factory,
                settings,
                fixed_clock(at),
                ledger=effects.ledger,
                notifier=effects.notifier,
                lease=effects.lease,
            )
            report.setdefault("sweeps", []).append({"title": title, **result.to_json()})
            for decision in result.decisions:
                if decision.action == "stop" and decision.outcome == "done":
                    stopped_on_the_sandbox_clock(decision.resource_id, decision.region, at)
            if table:
                print_sweep(console, result, f"{title} at {format_instant(at)}")
                console.print()
            else:
                console.print(Text(f"{title} at {format_instant(at)}", style="bold"))
                console.print(Text(sweep_summary(result)))
            return result

        fleet.ids.update(replay_creation(console, factory, t0 - timedelta(minutes=2), report))
        alerted_once = cost_checks(console, factory, environ, resources.topic_arn, t0, report)
        sweep("1. dry-run: what would happen (nothing is written)", dry_run=True)
        marked = sweep("2. enforced: candidates are marked with trainctl:cleanup-after", dry_run=False)
        ssm_story(console, agents, fleet, marked, report)
        # The schedule sweeps during the grace too: the marked notebook is asked again, and stays marked.
        during = sweep(
            "2c. enforced, halfway through the grace period", dry_run=False, after=base.grace_period / 2, table=False
        )
        waiting = next(d for d in during.decisions if d.resource_id == fleet["forgotten-notebook"])
        console.print(Text(f"the forgotten notebook: {waiting.action}, {waiting.detail}\n"))
        # Meanwhile someone puts a marked scratch volume back to use: the next sweep must unmark it.
        ec2 = factory.ec2(base.regions[0])
        ec2.attach_volume(VolumeId=fleet["scratch-2"], InstanceId=fleet["llm-pretrain"], Device="/dev/sdh")
        console.print(Text(f"meanwhile: {fleet['scratch-2']} is attached to {fleet['llm-pretrain']}\n", style="dim"))
        # A mark is acted on once its grace ended at least the delivery lag ago: late CloudTrail events are heard.
        after_grace = base.grace_period + base.event_delivery_lag
        published = capture_publishes(factory)
        acted = sweep(
            "3. enforced after the grace period and the events' lag: act, within the blast radius",
            dry_run=False,
            after=after_grace,
        )
        stopped = notebook_story(
            console, fleet["forgotten-notebook"], marked, acted, base.grace_period, base.event_delivery_lag
        )
        told = notice_story(console, list(published), report)
        last = sweep(
            "4. the next sweep continues where the cap stopped", dry_run=False, after=after_grace + timedelta(hours=1)
        )

        spot_saved = spot_story(console, factory, report)
        prewarmed = prewarm_story(console, factory, resources, report)
        last_at = t0 + after_grace + timedelta(hours=1)
        reported = report_story(console, factory, resources, environ, last_at + timedelta(minutes=5), report)
        data_ready = data_story(console, factory, report)
        restored = snapshot_prewarm_story(console, factory, resources, report)
        providers_swept = provider_story(console, factory, last_at + timedelta(hours=1), report)
        persistent = ec2.describe_volumes(VolumeIds=[fleet["experiment-data"], fleet["imagenet-dataset"]])["Volumes"]
        ledger_items = factory.dynamodb().scan(TableName=resources.ledger_table, Select="COUNT")["Count"]
        console.print(
            Panel.fit(
                "\n".join(
                    [
                        f"persistent volumes still there: {', '.join(v['VolumeId'] for v in persistent)}",
                        f"ledger items recorded: {ledger_items}",
                        f"API calls made: {factory.calls.total} ({sum(factory.calls.writes().values())} writes)",
                        f"elapsed: {time.monotonic() - started:.1f}s",
                    ]
                ),
                title="sandbox done",
                title_align="left",
            )
        )
        failed = [d for d in last.decisions if d.outcome == "failed"]
        code = (
            1
            if failed
            or len(persistent) != 2
            or not alerted_once
            or not spot_saved
            or not prewarmed
            or not reported
            or not told
            or not stopped
            or not data_ready
            or not restored
            or not providers_swept
            else 0
        )
        report["done"] = {
            "persistent_volumes": [v["VolumeId"] for v in persistent],
            "ledger_items": ledger_items,
            "api_calls": factory.calls.total,
            "api_writes": sum(factory.calls.writes().values()),
            "elapsed_seconds": round(time.monotonic() - started, 1),
            "exit_code": code,
        }
        return code


def data_story(console: Console, factory: ClientFactory, report: dict[str, Any]) -> bool:
    """9. `data plan` on the pre-warm's dataset bucket, then the path it recommends, run on the emulator."""
    # Cold start: only this step needs the data room and the strategies' S3 fill.
    import tempfile

    # Cold start: the data room loads here, for this step only.
    from trainctl.cli.data import PLAN_COLUMNS, plan_rows, size_text
    from trainctl.cost.prices.price_file import load_price_file
    from trainctl.data.loader import choose, loader_script
    from trainctl.data.rules import plan
    from trainctl.data.run import ebs_prices, fleet_for, measure_dataset, past_prewarms
    from trainctl.data.strategies import local_cache
    from trainctl.data.table import load_data_table

    region, uri = SANDBOX_REGIONS[0], "s3://sandbox-datasets/tokenized/"
    console.print(
        Text.assemble(("9. data plan", "bold"), f": trainctl data plan {uri} --instance-type g5.xlarge --epochs 3")
    )
    table, prices = load_data_table(), load_price_file()
    fleet = fleet_for("g5.xlarge", 1, f"{region}a", table, prices, home_region=region)
    dataset = measure_dataset(factory.client("s3", region), uri)
    past = past_prewarms(factory.ec2(region), scope_tag=SweepSettings.from_env(os.environ).scope_tag)
    result = plan(dataset, fleet, 3, table, ebs_prices(prices, region), past)
    print_table(console, None, PLAN_COLUMNS, plan_rows(result))
    console.print(Text(f"recommended: {result.why}"))
    with tempfile.TemporaryDirectory(prefix="trainctl-sandbox-") as scratch:
        if result.recommended == "local-cache":
            root = local_cache(Path(scratch) / "cache", uri, s3=factory.client("s3", region))
            held = sum(p.stat().st_size for p in root.rglob("*.bin"))
            done = held == dataset.size_bytes
            said = f"the local cache filled from S3: {size_text(held)} in {len(list(root.rglob('*.bin')))} files"
        else:
            facts = table.instances["g5.xlarge"]
            choice = choose(
                "direct-s3", uri, facts=facts, accelerators=fleet.accelerators, region=region, objects=dataset.objects
            )
            script = loader_script(choice)
            done = "from_prefix(" in script
            said = (
                f"the S3 DataLoader script: {choice.style}-style, {choice.workers} workers, prefetch {choice.prefetch}"
            )
    console.print(Text(f"  {said}\n" if done else f"  the chosen path did not run: {said}\n"))
    report["data"] = {**result.to_json(), "path_run": said, "ok": done}
    return done


# 1 GiB at 200 MiB/s takes 5.1 s: the workflow's second poll (2 s, then 4 s later) sees it done, in real time.
SNAPSHOT_STORY_GIB = 1
SNAPSHOT_STORY_RATE = 200


def snapshot_prewarm_story(
    console: Console, factory: ClientFactory, resources: stack_resources.StackResources, report: dict[str, Any]
) -> bool:
    """10. A dataset volume's snapshot restored at a provisioned initialisation rate: no worker, EBS (emulated,
    trainctl.cli.ebs_initialisation) initialises it, and the report measures its time and rate."""
    region = SANDBOX_REGIONS[0]
    ec2 = factory.ec2(region)
    assert resources.prewarm_state_machine and resources.prewarm_instance_profile
    shards = ec2.create_volume(
        Size=SNAPSHOT_STORY_GIB,
        AvailabilityZone=f"{region}a",
        VolumeType="gp3",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "tokenized-shards"}]}],
    )["VolumeId"]
    # The workflow restores only a snapshot in scope and the caller's or nobody's (the pre-warm's claim check).
    snapshot_id = ec2.create_snapshot(
        VolumeId=shards,
        Description="tokenized shards",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}],
    )["SnapshotId"]
    zone = f"{region}b"
    console.print(
        Text.assemble(
            ("10. pre-warm from a snapshot", "bold"),
            f": trainctl prewarm --snapshot {snapshot_id} --zone {zone} --initialization-rate {SNAPSHOT_STORY_RATE}",
        )
    )
    spec = VolumeSpec(zone=zone, snapshot_id=snapshot_id, initialization_rate=SNAPSHOT_STORY_RATE)
    request = PrewarmRequest(volume=spec)
    environment = {"TRAINCTL_PREWARM_INSTANCE_PROFILE_ARN": resources.prewarm_instance_profile}
    instances_before = _instance_count(ec2)
    with lambda_tasks_in_process(environment):
        forget_finished_workers()
        result = follow(factory, start_prewarm(factory, resources.prewarm_state_machine, request), console)
    output = result["output"] if isinstance(result["output"], dict) else {}
    summary = output.get("report", {}).get("summary", {})
    restored = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])["Volumes"]
    rate = summary.get("rate_mibps")
    done = (
        result["status"] == "SUCCEEDED"
        and summary.get("progress") == 100
        and len(restored) == 1
        and _instance_count(ec2) == instances_before  # no worker
        and rate is not None
        and rate <= SNAPSHOT_STORY_RATE
    )
    if done:
        said = (
            f"  {result['status']}: {restored[0]['VolumeId']} initialised by EBS, no worker: "
            f"{summary['bytes']} bytes in {summary['seconds']} s, {rate} MiB/s measured "
            f"(provisioned {summary['provisioned_rate_mibps']} MiB/s; timed from its creation to the poll "
            "that saw 100 %)\n"
        )
    else:
        said = f"  {result['status']}: NOT RESTORED ({result['error'] or 'no report'})\n"
    console.print(Text(said))
    report["prewarm_snapshot"] = {**result, "snapshot_id": snapshot_id, "ok": done}
    return done


def _instance_count(ec2: Any) -> int:
    return sum(len(r["Instances"]) for r in ec2.describe_instances()["Reservations"])


# Step 11's settings beside the sandbox's: scope by name prefix, owners from names, Lyceum's limits; a 30-minute
# idle window sampled by half-hourly sweeps, so that a pod seen idle for the whole window while up for less than an
# hour shows the min-age protection; and an hour's stop before an exited pod is terminated, to fit the story.
PROVIDER_STEP_SETTINGS = {
    "TRAINCTL_RUNPOD_NAME_PREFIX": "train-",
    "TRAINCTL_RUNPOD_OWNER_PATTERN": "^train-(?P<owner>[a-z]+)-",
    "TRAINCTL_LYCEUM_NAME_PREFIX": "team-",
    "TRAINCTL_LYCEUM_OWNER_PATTERN": "^team-(?P<owner>[a-z]+)-",
    "TRAINCTL_LYCEUM_VM_TTL": "72h",
    "TRAINCTL_LYCEUM_RUN_MAX_WALL_CLOCK": "24h",
    "TRAINCTL_IDLE_WINDOW": "30m",
    "TRAINCTL_STOPPED_MAX_AGE": "1h",
}
PROVIDER_SWEEP_EVERY = timedelta(minutes=30)
PROVIDER_SWEEPS = 11  # +0:00 to +5:00: the last act (the orphaned volume's delete) lands on the last sweep
# At this sweep, the team deletes the serverless endpoint that mounts the orphaned volume: it is no longer kept.
NO_ENDPOINTS_FROM = 5
# The emulator's per-minute quota: RunPod publishes the minute, hour and day windows but no figures.
RUNPOD_STEP_QUOTA = 60
# The emulator's minute is moved on to this many seconds before its reset: the 429's wait takes 2 s, not a minute.
QUOTA_LEFT_S = 1.5


class QuotaClock:
    """The RunPod emulator's quota clock: real seconds, moved on once to late in the current minute when asked."""

    def __init__(self) -> None:
        self._skew = 0.0
        self._late_at: float | None = None

    def __call__(self) -> float:
        now = time.monotonic() + self._skew
        if self._late_at is not None:
            self._skew += self._late_at - now
            now, self._late_at = self._late_at, None
        return now

    def late_in_minute_from(self, began: float) -> None:
        """The next reading is `QUOTA_LEFT_S` before the end of the minute that began at `began`."""
        self._late_at = began + 60 - QUOTA_LEFT_S


def provider_story(console: Console, factory: ClientFactory, start: datetime, report: dict[str, Any]) -> bool:
    """11. RunPod and Lyceum under the same sweep, on their emulators: marks in the ledger, acts after the grace,
    protections by name, and a 429 whose Retry-After the sweep honours."""
    # Cold start: the providers' rooms and emulators load for this step only.
    from trainctl.cli.automation import provider_sweep_once
    from trainctl.cli.lyceum_emulator import EMULATOR_KEY as LYCEUM_KEY
    from trainctl.cli.lyceum_emulator import LyceumEmulator, serve
    from trainctl.cli.runpod_emulator import EMULATOR_KEY as RUNPOD_KEY
    from trainctl.cli.runpod_emulator import RunpodEmulator
    from trainctl.runpod.client import connect
    from trainctl.runpod.settings import RunpodSettings

    @dataclass
    class AnsweredRunpod(RunpodEmulator):
        """The RunPod emulator, noting when each answer left and the Retry-After it carried."""

        answers: list[tuple[float, int, str | None]] = field(default_factory=list)

        def handle(self, method: str, path: str, authorization: str, body: bytes) -> tuple[int, dict[str, str], Any]:
            status, headers, answer = super().handle(method, path, authorization, body)
            self.answers.append((time.monotonic(), status, headers.get("Retry-After")))
            return status, headers, answer

    # Whole seconds, as the ledger keeps instants: a sample a window before is then exactly a window before.
    start = start.replace(microsecond=0)
    sweep_at = [start]
    quota_clock = QuotaClock()
    runpod = AnsweredRunpod(per_minute=RUNPOD_STEP_QUOTA, monotonic=quota_clock, now=lambda: sweep_at[0])
    lyceum = LyceumEmulator(clock=lambda: sweep_at[0])
    volumes = {
        "mounted": runpod.seed_volume("train-bo-data", size_gb=500),
        "orphan": runpod.seed_volume("train-gus-scratch", size_gb=200),
    }
    pods = {
        "idle": runpod.seed_pod("train-ana-llama", gpu_util=(0.0, 1.0), age=timedelta(hours=3)),
        "busy": runpod.seed_pod(
            "train-bo-bert", gpu_util=(85.0, 91.0), volume_ids=(volumes["mounted"],), age=timedelta(hours=5)
        ),
        "exited": runpod.seed_pod("train-cy-sweep", status="EXITED", age=timedelta(days=2)),
        "locked": runpod.seed_pod("train-di-eval", gpu_util=(0.0,), locked=True, age=timedelta(hours=6)),
        "young": runpod.seed_pod("train-ed-notebook", gpu_util=(0.0,), age=timedelta(minutes=25)),
        "out-of-scope": runpod.seed_pod("personal-fay", gpu_util=(0.0,), age=timedelta(days=3)),
    }
    serving_endpoint = runpod.seed_endpoint("train-gus-serve", volume_ids=(volumes["orphan"],))
    vms = lyceum.seed_story(prefix="team-")
    names = {**{pid: p.name for pid, p in runpod.pods.items()}, **{v.id: v.name for v in runpod.volumes.values()}}
    names |= {vm_id: str(vm["name"]) for vm_id, vm in lyceum.vms.items()}
    names |= {run_id: str(run["file_name"]) for run_id, run in lyceum.runs.items()}

    sweeps: list[dict[str, Any]] = []
    with runpod.serving() as runpod_url, serve(lyceum) as lyceum_url:
        environ = {
            **os.environ,
            **SANDBOX_SETTINGS,
            **PROVIDER_STEP_SETTINGS,
            "TRAINCTL_RUNPOD_API_URL": runpod_url,
            "TRAINCTL_LYCEUM_API_URL": lyceum_url,
            "RUNPOD_API_KEY": RUNPOD_KEY,
            "LYCEUM_API_KEY": LYCEUM_KEY,
        }
        console.print(
            Text.assemble(
                ("11. RunPod and Lyceum", "bold"),
                ": trainctl sweep --provider runpod --provider lyceum --enforce, every "
                f"{duration(PROVIDER_SWEEP_EVERY)} for {duration(PROVIDER_SWEEP_EVERY * (PROVIDER_SWEEPS - 1))} "
                f"from {format_instant(start)}, against the RunPod emulator on {runpod_url} and the Lyceum "
                f"emulator on {lyceum_url}\n"
                f"step-only settings: {_settings_words(PROVIDER_STEP_SETTINGS)}",
            )
        )
        # Someone's scripts spent RunPod's minute quota just before the first sweep.
        began = quota_clock()
        spender = connect(RunpodSettings(runpod_api_url=runpod_url), RUNPOD_KEY)
        for _ in range(RUNPOD_STEP_QUOTA):
            spender.list_pods()
        quota_clock.late_in_minute_from(began)
        spent_answers = len(runpod.answers)
        for sweep_index in range(PROVIDER_SWEEPS):
            at = start + PROVIDER_SWEEP_EVERY * sweep_index
            sweep_at[0] = at
            if sweep_index == NO_ENDPOINTS_FROM:
                runpod.delete_endpoint(serving_endpoint)
            settings = SweepSettings.from_env(environ, dry_run=False)
            done = {
                name: provider_sweep_once(name, factory, settings, fixed_clock(at), environ)
                for name in ("runpod", "lyceum")
            }
            after = _hours_minutes(PROVIDER_SWEEP_EVERY * sweep_index)
            sweeps.append({"after": after, **{name: r.to_json() for name, r in done.items()}})
        left_pods = {role: runpod.pods[pid].status if pid in runpod.pods else "gone" for role, pid in pods.items()}
        left_volumes = {role: "present" if vid in runpod.volumes else "gone" for role, vid in volumes.items()}

    sweep_answers = runpod.answers[spent_answers:]
    refused = [(i, when, wait) for i, (when, status, wait) in enumerate(sweep_answers) if status == 429]
    waits = [
        {"retry_after_s": int(wait or 0), "waited_s": round(sweep_answers[i + 1][0] - when, 2)}
        for i, when, wait in refused
        if i + 1 < len(sweep_answers)
    ]
    honoured = bool(refused) and len(waits) == len(refused) and all(w["waited_s"] >= w["retry_after_s"] for w in waits)

    def events(provider: str, resource_id: str) -> str:
        said: list[str] = []
        seen_protections: set[tuple[str, ...]] = set()
        for sweep in sweeps:
            when = sweep["after"]
            for d in sweep[provider]["decisions"]:
                if d["resource_id"] != f"{provider}:{resource_id}":
                    continue
                protections = tuple(d["protections"])
                if d["action"] == "mark" and d["outcome"] == "done":
                    said.append(f"{when} marked to {d['announced']} ({', '.join(d['reasons'])})")
                elif d["action"] in ("stop", "terminate", "delete"):
                    said.append(f"{when} {d['action']}: {d['outcome']}")
                elif d["action"] == "unmark":
                    said.append(f"{when} unmarked")
                elif protections and protections not in seen_protections:
                    seen_protections.add(protections)
                    said.append(f"{when} kept: {', '.join(protections)}")
        return "; ".join(said)

    quiet_runpod = {
        "busy": "nothing to do: its GPUs are busy",
        "mounted": "nothing to do: train-bo-bert mounts it",
        "out-of-scope": "never judged: not under the name prefix",
    }
    quiet_lyceum = {
        "idle": "nothing to do: Lyceum reports no use, and no guess is evidence",
        "fresh": "nothing to do: 20 minutes old",
        "out_of_scope": "never judged: not under the name prefix",
        "run_fresh": "nothing to do: 5 minutes old",
    }
    story_columns = (
        Col("resource", ESSENTIAL, whole=True),
        Col("id", 80, whole=True),
        Col("what the sweeps did (+h:mm from the first)", 90, min_width=24),
        Col("now", 85, whole=True),
    )
    runpod_rows = [
        [names[pid], pid, events("runpod", pid) or quiet_runpod.get(role, "-"), left_pods[role]]
        for role, pid in pods.items()
    ] + [
        [names[vid], vid, events("runpod", vid) or quiet_runpod.get(role, "-"), left_volumes[role]]
        for role, vid in volumes.items()
    ]
    print_table(console, "RunPod: pods and network volumes", story_columns, runpod_rows)
    lyceum_left = {rid: str(entry["status"]) for rid, entry in [*lyceum.vms.items(), *lyceum.runs.items()]}
    lyceum_rows = [
        [names[rid], rid, events("lyceum", rid) or quiet_lyceum.get(role, "-"), lyceum_left.get(rid, "gone")]
        for role, rid in vms.items()
    ]
    print_table(console, "Lyceum: VMs and runs", story_columns, lyceum_rows)

    protected = {p for s in sweeps for d in s["runpod"]["decisions"] for p in d["protections"]}
    errors = [f"{name}: {s[name]['error']}" for s in sweeps for name in ("runpod", "lyceum") if s[name]["error"]]
    failed = [
        d["resource_id"]
        for s in sweeps
        for n in ("runpod", "lyceum")
        for d in s[n]["decisions"]
        if d["outcome"] == "failed"
    ]
    checks = {
        "idle pod stopped": left_pods["idle"] in ("EXITED", "gone"),
        "exited pod terminated": left_pods["exited"] == "gone",
        "orphaned volume deleted": left_volumes["orphan"] == "gone",
        "busy, locked and out-of-scope pods and the mounted volume untouched": left_pods["busy"] == "RUNNING"
        and left_pods["locked"] == "RUNNING"
        and left_pods["out-of-scope"] == "RUNNING"
        and left_volumes["mounted"] == "present",
        "protected by name: locked, min-age, endpoint-mounted": {"locked", "min-age", "endpoint-mounted"} <= protected,
        "Lyceum VM past its ttl terminated": vms["past_ttl"] not in lyceum.vms,
        "Lyceum run past its cap aborted": lyceum.runs[vms["run_past_cap"]]["status"] == "aborted",
        "Lyceum VMs in their time and out of scope kept": {vms["idle"], vms["fresh"], vms["out_of_scope"]}
        <= set(lyceum.vms),
        "429 Retry-After honoured": honoured,
        "no provider error, no failed action": not errors and not failed,
    }
    for wait in waits:
        console.print(
            Text(
                f"rate limit: RunPod's minute quota ({RUNPOD_STEP_QUOTA} calls, the emulator's: RunPod publishes "
                f"none) was spent just before the first sweep; its call was answered 429 with Retry-After: "
                f"{wait['retry_after_s']}, and the sweep waited {wait['waited_s']:.1f} s and went on"
            )
        )
    for name, held in checks.items():
        console.print(Text.assemble(("  ok  " if held else "  NOT ", "green" if held else "red"), name))
    for line in [*errors, *(f"failed: {r}" for r in failed)]:
        console.print(Text(f"  {line}", style="red"))
    console.print()
    ok = all(checks.values())
    report["providers"] = {
        "settings": PROVIDER_STEP_SETTINGS,
        "runpod": {
            "pods": pods,
            "volumes": volumes,
            "left": {**left_pods, **left_volumes},
            "rate_limit": {"quota_per_minute": RUNPOD_STEP_QUOTA, "answered_429": len(refused), "waits": waits},
        },
        "lyceum": {"seeded": vms, "left": lyceum_left},
        "sweeps": sweeps,
        "checks": checks,
        "ok": ok,
    }
    return ok


def _hours_minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"+{minutes // 60}:{minutes % 60:02d}"
