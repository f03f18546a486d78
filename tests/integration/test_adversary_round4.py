"""Adversary round 4: attacks on this round's new paths (the pre-warm workflow's snapshot path, the local cache,
ebs restore's new options, the data plan's learned rates), each written as the promise that should hold.

A test that fails here is a break of a promise in the architecture's safety model; each says which, and how.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import time_machine

from tests.integration import test_prewarm as prewarm
from tests.integration.conftest import run_cli
from tests.integration.test_local_cache import CACHE, datasets, instance_tags
from tests.integration.test_prewarm import REGION, Account, execute, instances, labels
from tests.integration.test_prewarm_snapshot import WorkflowClock, restore, snapshot_of, volumes_from
from tests.integration.test_prewarm_snapshot import workflow_clock as snapshot_workflow_clock
from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.cli.ssm_agent import SsmAgents
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock
from trainctl.core.settings import SweepSettings
from trainctl.sweep.record import DynamoDbLedger
from trainctl.sweep.run import run_sweep

# The pre-warm tests' own fixtures, under their names: the stack on moto with the Lambda tasks in-process.
account = prewarm.account
on_emulator = prewarm.on_emulator
workflow_clock = snapshot_workflow_clock


@pytest.fixture
def created_volumes() -> Any:
    """The parameters of every CreateVolume made through boto3's default session (the workflow's calls)."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    events = boto3._get_default_session().events
    events.register("provide-client-params.ec2.CreateVolume", record)
    yield calls
    events.unregister("provide-client-params.ec2.CreateVolume", record)


# ------------------------------------------------------------------ 1. the pre-warm workflow's snapshot path


def test_the_hourly_sweep_leaves_a_restore_alone_while_the_workflow_still_waits_on_its_initialisation(
    account: Account, ebs_initialisation: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promises 2-3 and 14, an unlucky user: grace 1 h (shorter than the workflow's 12-hour wait; the sandbox uses
    2 h), the sweep enforcing every hour. 2,000 GiB at 100 MiB/s take 5.7 h. The restored volume is in scope,
    unattached and trainctl's own from its first second: the sweep must not mark and delete it while the
    execution that created it still polls its initialisation."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    settings = SweepSettings(
        regions=(REGION,),
        dry_run=False,
        grace_period=timedelta(hours=1),
        max_action_share=1.0,
        training_check_timeout=timedelta(seconds=1),
        training_document=names.TRAINING_DOCUMENT,
    )
    ledger = DynamoDbLedger(account.factory.dynamodb(), names.LEDGER_TABLE)
    notifier = InMemoryNotifier()
    snapshot_id = snapshot_of(account, size=2000)
    seen: list[tuple[str, str, str]] = []
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:
        next_sweep = [datetime.now(UTC) + timedelta(hours=1)]

        def wait_and_sweep_hourly(_self: Any, env: Any, wait_seconds: int) -> None:
            traveller.shift(wait_seconds)
            now = datetime.now(UTC)
            while now >= next_sweep[0]:
                swept = run_sweep(account.factory, settings, fixed_clock(now), ledger=ledger, notifier=notifier)
                seen.extend((d.resource_id, d.action, d.outcome) for d in swept.decisions)
                next_sweep[0] += timedelta(hours=1)

        monkeypatch.setattr(WaitFunction, "_wait_interval", wait_and_sweep_hourly)
        result = execute(account, **restore(snapshot_id, initialization_rate=100))
    restored = [v["VolumeId"] for v in volumes_from(account, snapshot_id)]
    acted = [(r, a, o) for r, a, o in seen if a == "delete" and r not in (account.volume_id,)]
    ended = {key: result.get(key) for key in ("status", "error", "cause")}
    assert acted == [], f"the sweep deleted the volume the workflow was waiting on: {acted}; the execution: {ended}"
    assert result["status"] == "SUCCEEDED", ended
    assert len(restored) == 1


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"volume_type": "gp2", "iops": 5000}, "gp2 takes no provisioned IOPS"),
        ({"volume_type": "gp3", "throughput_mibps": 1000}, "gp3 at 3,000 IOPS allows at most 750 MiB/s"),
        ({"volume_type": "io2", "size_gib": 2}, "io2 needs --iops, and is 4 GiB at least"),
        ({"volume_type": "st1", "size_gib": 10}, "st1 volumes are 125 GiB at least"),
        ({"volume_type": "gp3", "iops": 80000, "size_gib": 10}, "gp3 allows 500 IOPS per GiB"),
    ],
    ids=["gp2-with-iops", "gp3-throughput-beyond-its-iops", "io2-without-iops", "st1-too-small", "iops-per-gib"],
)
def test_the_workflow_refuses_a_volume_spec_ebs_would_refuse_before_calling_create_volume(
    account: Account, created_volumes: list[dict[str, Any]], spec: dict[str, Any], why: str
) -> None:
    """Brief item 3: `ebs create` and `ebs restore` check type, size, IOPS and throughput (core/volume_spec.py)
    before asking AWS; the pre-warm workflow's VolumeSpec (prewarm/rules.py) checks each only against the
    widest range of any type, so a spec EBS refuses reaches CreateVolume after the plan said yes."""
    volume = {"size_gib": 100, "zone": f"{REGION}a", **spec}
    result = execute(account, volume_id=None, volume=volume)
    assert result["status"] == "FAILED" and result["error"] == "InvalidRequest", (why, result)
    assert result["entered"] == ["Plan", "Refused"] and created_volumes == [], (why, created_volumes)


def test_a_volume_the_s3_path_creates_is_never_left_where_no_sweep_may_delete_it(
    account: Account, workflow_fault: Any
) -> None:
    """Promises 5 and 14 (no orphans): the S3 path creates a volume from a spec with only trainctl:prewarmed-from
    (prewarm/rules.py creation_tags), no scope tag and no owner. When the execution then fails (here its worker
    cannot launch; a lost response or a stopped execution does the same), compensation never deletes a volume,
    so the volume the workflow made stays out of scope: no sweep may ever delete it and nobody is told."""
    workflow_fault("RunInstances")
    result = execute(account, volume_id=None, volume={"size_gib": 10, "zone": f"{REGION}a"})
    assert result["status"] == "FAILED", result
    assert "CreateVolume" in result["entered"]
    made = [
        v
        for v in account.factory.ec2(REGION).describe_volumes()["Volumes"]
        if labels(v).get(tags.PREWARMED_FROM) == "s3://datasets/imagenet/"
    ]
    assert len(made) == 1
    left = labels(made[0])
    assert left.get(tags.MANAGED) == "true", f"the workflow's own volume is out of every sweep's scope: {left}"


def test_a_restore_refuses_this_accounts_snapshot_that_trainctl_may_not_touch(
    account: Account, workflow_clock: WorkflowClock, created_volumes: list[dict[str, Any]]
) -> None:
    """Promise 14 and the pre-warm's own rule for volumes (only what carries the scope tag): a snapshot of this
    account with neither trainctl:managed nor an owner (another team's, made by hand) is copied into a new
    volume for whoever asks. check_snapshot_claim checks the owner tag only, and only when it is there."""
    ec2 = account.factory.ec2(REGION)
    theirs = ec2.create_volume(Size=100, AvailabilityZone=f"{REGION}a")["VolumeId"]
    snapshot_id = ec2.create_snapshot(
        VolumeId=theirs,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": tags.MANAGED, "Value": "false"}]}],
    )["SnapshotId"]
    result = execute(account, **restore(snapshot_id), owner="mallory")
    assert result["status"] == "FAILED" and result["error"] == "InvalidRequest", result
    assert created_volumes == [] and volumes_from(account, snapshot_id) == []


# -------------------------------------------------------------------------------------- 2. the local cache


def test_a_cache_fill_on_someone_elses_out_of_scope_instance_asks_first_and_changes_nothing(
    factory: ClientFactory, ssm_agents: SsmAgents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ownership (handwork/ownership.py): every hand command that changes a resource outside the scope or of
    another owner asks for --allow-out-of-scope / --allow-other-owner. `transfer --to-cache` runs a root shell
    script through SSM on bob's out-of-scope instance, writes into its disks, and tags it, for mallory, asking
    nothing (handwork/transfer.py fill_cache, cli/commands.py transfer_command)."""
    monkeypatch.setenv("TRAINCTL_OWNER", "mallory")
    datasets(factory)
    bobs = factory.ec2(REGION).run_instances(
        ImageId="ami-0abcdef1234567890",
        MinCount=1,
        MaxCount=1,
        InstanceType="g5.xlarge",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": tags.OWNER, "Value": "bob"}]}],
    )["Instances"][0]["InstanceId"]
    sent: list[dict[str, Any]] = []
    factory.register("provide-client-params.ssm.SendCommand", lambda params, **_: sent.append(dict(params)))
    shown = run_cli(factory, ["transfer", "s3://datasets/run-1/", f"instance:{bobs}:{CACHE}", "--to-cache"])
    changed = {k for k in instance_tags(factory, bobs) if k.startswith("trainctl:cache")}
    assert shown.exit_code != 0, f"filled bob's instance: {sent} {changed}"
    assert "--allow-out-of-scope" in shown.stderr or "--allow-other-owner" in shown.stderr
    assert sent == [] and changed == set() and ssm_agents.cached(bobs, CACHE) == {}


@pytest.mark.parametrize(
    "path",
    [
        "/mnt/../etc/",
        "/mnt/./x/",
        "/mnt//etc/",
        "/mnt/x\n/",
        "/mnt/$(reboot)/",
        "/mnt/`id`/",
        "/mnt/caf\u00e9/",
        "/mnt/x;rm -rf /",
        "/mnt/" + "a" * 1100 + "/",
        "/mnt",
        "/mnt/",
        "/opt/dlami/nvme",
        "/opt/dlami/nvme-evil/x/",
        "/mntx/a/",
        "/etc/cron.d/",
    ],
)
def test_a_cache_path_outside_the_instance_store_roots_or_with_shell_text_is_refused_before_any_call(
    factory: ClientFactory, ssm_agents: SsmAgents, path: str
) -> None:
    """Rule 10: a path reaches no shell, and is refused in one line with nothing sent."""
    datasets(factory)
    instance_id = factory.ec2(REGION).run_instances(
        ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1, InstanceType="g5.xlarge"
    )["Instances"][0]["InstanceId"]
    sent: list[dict[str, Any]] = []
    factory.register("provide-client-params.ssm.SendCommand", lambda params, **_: sent.append(dict(params)))
    shown = run_cli(factory, ["transfer", "s3://datasets/run-1/", f"instance:{instance_id}:{path}", "--to-cache"])
    assert shown.exit_code == 2 and sent == [], shown.output
    assert len(shown.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "key",
    ["run-1/../../etc/cron.d/x", "run-1/a/../../../root/.ssh/authorized_keys", "run-1/./x", "run-1/..", "run-1//.."],
)
def test_an_s3_key_that_climbs_out_of_the_cache_folder_stops_the_fill(
    factory: ClientFactory, ssm_agents: SsmAgents, key: str
) -> None:
    s3 = datasets(factory)
    s3.put_object(Bucket="datasets", Key=key, Body=b"evil")
    instance_id = factory.ec2(REGION).run_instances(
        ImageId="ami-0abcdef1234567890", MinCount=1, MaxCount=1, InstanceType="g5.xlarge"
    )["Instances"][0]["InstanceId"]
    sent: list[dict[str, Any]] = []
    factory.register("provide-client-params.ssm.SendCommand", lambda params, **_: sent.append(dict(params)))
    shown = run_cli(factory, ["transfer", "s3://datasets/run-1/", f"instance:{instance_id}:{CACHE}", "--to-cache"])
    assert shown.exit_code != 0 and sent == [], shown.output
    assert "outside the cache folder" in " ".join(shown.stderr.split())
    assert not any(k.startswith("trainctl:cache") for k in instance_tags(factory, instance_id))


# ------------------------------------------------------------------------------------------ 3. ebs restore


def test_ebs_restore_of_someone_elses_snapshot_asks_first(
    factory: ClientFactory, ebs_initialisation: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workflow refuses to restore bob's snapshot for mallory ("would copy bob's data to her"); by hand,
    `ebs restore` restores it, stamps the copy trainctl:owner=mallory, and asks nothing (cli/commands.py
    ebs_restore reads only the snapshot's size: handwork/volumes.py snapshot_size)."""
    monkeypatch.setenv("TRAINCTL_OWNER", "mallory")
    ec2 = factory.ec2(REGION)
    source = ec2.create_volume(Size=10, AvailabilityZone=f"{REGION}a")["VolumeId"]
    bobs = ec2.create_snapshot(
        VolumeId=source,
        TagSpecifications=[
            {
                "ResourceType": "snapshot",
                "Tags": [{"Key": tags.OWNER, "Value": "bob"}, {"Key": tags.MANAGED, "Value": "true"}],
            }
        ],
    )["SnapshotId"]
    shown = run_cli(factory, ["ebs", "restore", bobs, "--zone", f"{REGION}a", "--initialization-rate", "200", "--json"])
    made = ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [bobs]}])["Volumes"]
    assert shown.exit_code != 0 and made == [], f"restored bob's snapshot for mallory: {[labels(v) for v in made]}"
    assert "bob" in shown.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--initialization-rate", "0"],
        ["--initialization-rate", "99"],
        ["--initialization-rate", "301"],
        ["--initialization-rate", "-5"],
        ["--type", "gp2", "--iops", "3000"],
        ["--type", "gp3", "--throughput", "1000"],
        ["--type", "io1"],
        ["--type", "io2", "--iops", "64000"],  # a 10 GiB io2 takes at most 10,000
        ["--zone", "us-west-2a"],
        ["--zone", "us-east-1z"],
        ["--zone", "us-east-1a\n"],
        ["--zone", "us-east-1\u0430"],  # a Cyrillic a
    ],
)
def test_ebs_restore_refuses_what_ebs_would_refuse_and_creates_nothing(
    factory: ClientFactory, ebs_initialisation: None, args: list[str]
) -> None:
    ec2 = factory.ec2(REGION)
    source = ec2.create_volume(Size=10, AvailabilityZone=f"{REGION}a")["VolumeId"]
    snapshot_id = ec2.create_snapshot(VolumeId=source)["SnapshotId"]
    calls: list[str] = []
    factory.register("before-call.ec2.CreateVolume", lambda **_: calls.append("CreateVolume"))
    zone = [] if "--zone" in args else ["--zone", f"{REGION}a"]
    shown = run_cli(factory, ["ebs", "restore", snapshot_id, *zone, *args])
    assert shown.exit_code != 0 and calls == [], shown.output
    assert ec2.describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])["Volumes"] == []
    assert len(shown.stderr.strip().splitlines()) == 1


# -------------------------------------------------------------------------------------------- 4. data plan


def _plan(factory: ClientFactory, size: str = "200GB") -> dict[str, Any]:
    done = run_cli(
        factory,
        ["data", "plan", "--size", size, "--objects", "1000", "--instance-type", "g5.xlarge", "--json"],
    )
    assert done.exit_code == 0, done.output

    def refuse(constant: str) -> Any:
        raise AssertionError(f"the plan printed {constant}, which is not JSON")

    parsed: dict[str, Any] = json.loads(done.stdout, parse_constant=refuse)
    return parsed


def _strategy(plan: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in plan["strategies"] if s["strategy"] == name)
    return found


def test_a_forged_cache_rate_cannot_fill_a_cache_faster_than_the_instances_network(factory: ClientFactory) -> None:
    """Brief item 4: trainctl:cache-rate is a tag anyone may write, on any instance of any type, in scope or not.
    One forged 99,999 MiB/s (below the 100,000 cap in data/run.py _rate_of) and the plan says a g5.xlarge (up
    to 10 Gbps, about 1,192 MiB/s) fills 200 GB in two seconds, and recommends it."""
    ec2 = factory.ec2(REGION)
    ec2.run_instances(
        ImageId="ami-12345678",
        InstanceType="t3.micro",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": tags.CACHE_RATE, "Value": "99999"}]}],
    )
    plan = _plan(factory)
    cache = _strategy(plan, "local-cache")
    fastest_possible = 200e9 / (10e9 / 8)  # the whole of 10 Gbps, every second: 160 s
    assert cache["first_epoch_seconds"] >= fastest_possible, (cache["first_epoch_seconds"], plan["recommended"])


def test_a_forged_prewarm_rate_cannot_fill_a_volume_faster_than_gp3_can_be_written(factory: ClientFactory) -> None:
    """Likewise trainctl:prewarmed-rate on any volume: a gp3 takes at most 2,000 MiB/s (volume_spec LIMITS)."""
    ec2 = factory.ec2(REGION)
    ec2.create_volume(
        AvailabilityZone=f"{REGION}a",
        Size=1,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": tags.PREWARMED_RATE, "Value": "99999"}]}],
    )
    plan = _plan(factory)
    ebs = _strategy(plan, "prewarmed-ebs")
    fastest_possible = 200e9 / (2000 * 2**20)
    assert ebs["first_epoch_seconds"] >= fastest_possible, (ebs["first_epoch_seconds"], plan["recommended"])


@pytest.mark.parametrize("key", [tags.CACHE_RATE, tags.PREWARMED_RATE])
@pytest.mark.parametrize("value", ["1e-320", "5e-324", "1e-300", "0.0001"])
def test_a_forged_tiny_rate_gives_numbers_and_words_that_mean_something(
    factory: ClientFactory, key: str, value: str
) -> None:
    """A rate that is positive but absurd (denormal, 1e-300) passes `0 < rate`: the estimate divides by it."""
    ec2 = factory.ec2(REGION)
    marks = [{"Key": key, "Value": value}]
    if key == tags.CACHE_RATE:
        ec2.run_instances(
            ImageId="ami-12345678",
            InstanceType="t3.micro",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": marks}],
        )
    else:
        ec2.create_volume(
            AvailabilityZone=f"{REGION}a", Size=1, TagSpecifications=[{"ResourceType": "volume", "Tags": marks}]
        )
    plan = _plan(factory)  # strict JSON: no Infinity, no NaN
    strategy = _strategy(plan, "local-cache" if key == tags.CACHE_RATE else "prewarmed-ebs")
    said = strategy["assumptions"][0]
    assert " 0 MiB/s" not in said, said  # a learned rate printed as nothing
    # A week for 200 GB is beyond any plan worth printing as a learned figure.
    assert strategy["first_epoch_seconds"] is None or strategy["first_epoch_seconds"] < 7 * 86400, strategy


def test_a_forged_rate_value_never_reaches_a_message_line(factory: ClientFactory) -> None:
    ec2 = factory.ec2(REGION)
    for value in ("1_000", "\u0661\u0662\u0660", " 120 ", "120\n[bold red]x", "nan", "inf", "-0"):
        ec2.create_volume(
            AvailabilityZone=f"{REGION}a",
            Size=1,
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": tags.PREWARMED_RATE, "Value": value}]}],
        )
    done = run_cli(factory, ["data", "plan", "--size", "500GB", "--objects", "1000", "--instance-type", "g5.xlarge"])
    assert done.exit_code == 0, done.output
    assert "[bold red]" not in done.output and "\u0661" not in done.output and "nan" not in done.output.lower()


def test_the_snapshot_path_writes_only_trainctls_keys_and_no_owner(
    account: Account, ebs_initialisation: None, created_volumes: list[dict[str, Any]]
) -> None:
    """Rule 9: tag writes limited to trainctl's own keys; the creator is age_guard's to stamp, never the request."""
    snapshot_id = snapshot_of(account, size=1)
    result = execute(account, **restore(snapshot_id), owner="mallory")
    assert result["status"] == "SUCCEEDED", result
    [create] = created_volumes
    keys = {t["Key"] for spec in create["TagSpecifications"] for t in spec["Tags"]}
    assert all(k.startswith("trainctl:") for k in keys) and tags.OWNER not in keys
    [volume] = volumes_from(account, snapshot_id)
    assert all(k.startswith("trainctl:") for k in labels(volume)) and tags.OWNER not in labels(volume)
    assert instances(account) == []
