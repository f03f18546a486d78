"""Pre-warm without a worker (issue 27 item 2), its bookkeeping tags (item 5), and the pre-warm command's rough
edges (issue 26 items 3 and 7b), on the definition the stack synthesises under moto's Step Functions interpreter.

moto has no DescribeVolumeStatus: the emulated EBS initialisation (trainctl.cli.ebs_initialisation) answers it
from moto's volumes, initialising a restore at its provisioned rate from its CreateTime. The workflow's Wait
states move the clock (time-machine) by their duration instead of sleeping, so its backing-off polls see the
progress rise on the clock a deployed workflow would run on. One stub keeps a shape the emulation never gives:
EBS reporting no initialisation yet (it may take up to 5 minutes to report one), then 100 %.
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import time_machine

from tests.integration import test_prewarm as prewarm
from tests.integration.conftest import run_cli
from tests.integration.test_prewarm import REGION, Account, execute, instances, labels
from trainctl.cli import automation
from trainctl.cli.local_lambda import forget_finished_workers
from trainctl.core import tags

# The pre-warm tests' own fixtures, under their names: the stack on moto with Lambda tasks in-process.
account = prewarm.account
on_emulator = prewarm.on_emulator


class VolumeStatusStub:
    """DescribeVolumeStatus as AWS documents it: `answers` in turn (the last one repeated), or an error."""

    def __init__(self, answers: list[dict[str, Any] | None], *, error: str | None = None) -> None:
        self.answers = answers
        self.error = error
        self.calls = 0
        self.volume_ids: list[str] = []

    def asked(self, params: dict[str, Any], **_: Any) -> None:
        self.volume_ids = list(params.get("VolumeIds", []))

    def __call__(self, model: Any, **_: Any) -> Any:
        if model.name != "DescribeVolumeStatus":
            return None
        self.calls += 1
        meta = {"HTTPStatusCode": 200, "RequestId": "stub"}
        if self.error is not None:
            failed = {"Error": {"Code": self.error, "Message": "injected"}, "ResponseMetadata": meta}
            return types.SimpleNamespace(status_code=400, headers={}, raw=None), failed
        details = self.answers[min(self.calls, len(self.answers)) - 1]
        item: dict[str, Any] = {
            "VolumeId": self.volume_ids[0] if self.volume_ids else "vol-0123456789abcdef0",
            "AvailabilityZone": f"{REGION}a",
            "VolumeStatus": {"Status": "ok", "Details": [{"Name": "io-enabled", "Status": "passed"}]},
        }
        if details is not None:
            item["InitializationStatusDetails"] = details
        return types.SimpleNamespace(status_code=200, headers={}, raw=None), {
            "VolumeStatuses": [item],
            "ResponseMetadata": meta,
        }


DONE = {"InitializationType": "provisioned-rate", "Progress": 100, "EstimatedTimeToCompleteInSeconds": 0}


@pytest.fixture
def volume_status() -> Iterator[Any]:
    installed: list[VolumeStatusStub] = []
    events = boto3._get_default_session().events

    def install(answers: list[dict[str, Any] | None], *, error: str | None = None) -> VolumeStatusStub:
        stub = VolumeStatusStub(answers, error=error)
        events.register_first("before-call", stub)
        events.register("provide-client-params.ec2.DescribeVolumeStatus", stub.asked)
        installed.append(stub)
        return stub

    yield install
    for stub in installed:
        events.unregister("before-call", stub)
        events.unregister("provide-client-params.ec2.DescribeVolumeStatus", stub.asked)


@dataclass
class WorkflowClock:
    """The workflow's Wait states travel the clock instead of sleeping; what each status poll saw."""

    waited: list[int] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)

    def saw(self, parsed: dict[str, Any], **_: Any) -> None:
        for status in parsed.get("VolumeStatuses", []):
            self.seen.append(dict(status.get("InitializationStatusDetails", {})))


@pytest.fixture
def workflow_clock(ebs_initialisation: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkflowClock]:
    """EBS initialisation emulated on a clock that the workflow's waits move: a 12-hour wait takes no real time."""
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

    clock = WorkflowClock()
    events = boto3._get_default_session().events
    with time_machine.travel(datetime.now(UTC), tick=True) as traveller:

        def wait_on_the_clock(_self: Any, env: Any, wait_seconds: int) -> None:
            clock.waited.append(wait_seconds)
            traveller.shift(wait_seconds)

        monkeypatch.setattr(WaitFunction, "_wait_interval", wait_on_the_clock)
        events.register("after-call.ec2.DescribeVolumeStatus", clock.saw)
        yield clock
        events.unregister("after-call.ec2.DescribeVolumeStatus", clock.saw)


@pytest.fixture
def created(account: Account) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every CreateVolume the workflow calls."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    events = boto3._get_default_session().events
    events.register("provide-client-params.ec2.CreateVolume", record)
    yield calls
    events.unregister("provide-client-params.ec2.CreateVolume", record)


def snapshot_of(account: Account, size: int = 100, owner: str | None = None) -> str:
    """A snapshot of this account in scope (the pre-warm restores no other), the owner's when one is named."""
    ec2 = account.factory.ec2(REGION)
    source = ec2.create_volume(Size=size, AvailabilityZone=f"{REGION}a")["VolumeId"]
    marks = [{"Key": tags.MANAGED, "Value": "true"}, *([{"Key": tags.OWNER, "Value": owner}] if owner else [])]
    spec = [{"ResourceType": "snapshot", "Tags": marks}]
    return str(ec2.create_snapshot(VolumeId=source, TagSpecifications=spec)["SnapshotId"])


def restore(snapshot_id: str, **spec: Any) -> dict[str, Any]:
    volume = {"snapshot_id": snapshot_id, "zone": f"{REGION}b", "initialization_rate": 300, **spec}
    return {"volume_id": None, "volume": volume, "s3_uri": None}


def volumes_from(account: Account, snapshot_id: str) -> list[dict[str, Any]]:
    found = account.factory.ec2(REGION).describe_volumes(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])
    return list(found["Volumes"])


def test_a_snapshot_is_restored_at_a_rate_and_waited_on_without_a_worker(
    account: Account, workflow_clock: WorkflowClock, created: list[dict[str, Any]]
) -> None:
    snapshot_id = snapshot_of(account, size=100)
    result = execute(account, **restore(snapshot_id), owner="carol")
    assert result["status"] == "SUCCEEDED", result
    # No instance, no SSM: the worker's states are never entered.
    assert instances(account) == [] and account.commands == [] and account.launches == []
    assert not {"LaunchWorker", "Attach", "RunPrewarmDocument", "Detach"} & set(result["entered"])
    assert account.lambdas.invocations == ["prewarm_plan", "prewarm_report"]
    [create] = created
    assert create["SnapshotId"] == snapshot_id and create["VolumeInitializationRate"] == 300
    assert create["Size"] == 100  # the snapshot's own size, none asked
    [volume] = volumes_from(account, snapshot_id)
    assert volume["VolumeInitializationRate"] == 300  # as EBS describes it
    # 102,400 MiB at 300 MiB/s is 341.3 s: the polls back off 2, 4, ... 32 s, then every 60 s, and the tenth, 362 s
    # after the restore, sees 100 %; every one before it saw the progress rise, and EBS's estimate fall.
    assert workflow_clock.waited == [2, 4, 8, 16, 32, 60, 60, 60, 60, 60]
    assert result["entered"].count("CheckInitialisation") == 10
    progress = [seen["Progress"] for seen in workflow_clock.seen]
    assert progress[0] <= 1 and progress[-1] == 100 and len(progress) == 10
    assert progress == sorted(set(progress))  # rising at every poll
    estimates = [seen["EstimatedTimeToCompleteInSeconds"] for seen in workflow_clock.seen]
    assert estimates[0] >= 339 and estimates[-1] == 0 and estimates == sorted(estimates, reverse=True)
    marks = labels(volume)
    # In scope from its creation, as trainctl's own, for the person who asked: the sweep sees it like any other.
    assert marks[tags.MANAGED] == "true" and marks[tags.ROLE] == tags.PREWARMED_VOLUME_ROLE
    # The owner is age_guard's to stamp from CloudTrail, never the request's word.
    assert tags.OWNER not in marks and marks[tags.PREWARMED_FROM] == snapshot_id
    # Bookkeeping: the snapshot's bytes (moto gives no FullSnapshotSizeInBytes: its volume size), the seconds
    # from the volume's CreateTime to the poll that saw 100 % (so up to one poll interval over the 341 s the rate
    # takes), and the rate of those seconds, never above the provisioned one.
    assert marks[tags.PREWARMED_BYTES] == str(100 * 2**30)
    seconds = int(marks[tags.PREWARMED_SECONDS])
    assert 362 <= seconds < 362 + 30  # the waits, and the test's own real time
    rate = float(marks[tags.PREWARMED_RATE])
    assert 102_400 / (seconds + 0.5) <= rate <= 102_400 / (seconds - 0.5) and rate < 300
    assert f"; {100 * 2**30} bytes in {seconds} s" in marks[tags.PREWARMED_AT]
    assert "(provisioned 300 MiB/s)" in marks[tags.PREWARMED_AT]
    output = json.loads(result["output"])
    summary = output["report"]["summary"]
    assert summary["initialization_type"] == "provisioned-rate" and summary["progress"] == 100
    assert summary["provisioned_rate_mibps"] == 300
    assert output["plan"]["estimated_seconds"] == 342  # 102,400 MiB at 300 MiB/s, rounded up


def test_a_status_without_initialisation_details_is_polled_again(
    account: Account, volume_status: Any, created: list[dict[str, Any]]
) -> None:
    """EBS may take minutes to report any initialisation: the emulation always reports one, so a stub in the
    documented shape answers first without InitializationStatusDetails, then complete."""
    snapshot_id = snapshot_of(account, size=100)
    stub = volume_status([None, DONE])
    result = execute(account, **restore(snapshot_id))
    assert result["status"] == "SUCCEEDED", result
    assert result["entered"].count("CheckInitialisation") == 2 and stub.calls == 2
    assert result["entered"].count("InitialiseBackOff") == 1  # the status without details was not an error
    [volume] = volumes_from(account, snapshot_id)
    assert stub.volume_ids == [volume["VolumeId"]]
    summary = json.loads(result["output"])["report"]["summary"]
    assert summary["initialization_type"] == "provisioned-rate" and summary["progress"] == 100


def test_a_failed_initialisation_leaves_its_volume_in_scope_for_the_sweep_and_nothing_else(
    account: Account, ebs_initialisation: None, workflow_fault: Any
) -> None:
    snapshot_id = snapshot_of(account)
    workflow_fault("DescribeVolumeStatus")
    result = execute(account, **restore(snapshot_id))
    assert result["status"] == "FAILED" and result["error"] == "PrewarmFailed", result
    # No orphan: the volume is in scope as trainctl's own, an unattached volume the sweep marks and cleans.
    [volume] = volumes_from(account, snapshot_id)
    assert labels(volume)[tags.MANAGED] == "true" and labels(volume)[tags.ROLE] == tags.PREWARMED_VOLUME_ROLE
    assert tags.PREWARMED_AT not in labels(volume) and not volume.get("Attachments")
    assert account.factory.ec2(REGION).describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]  # the data
    assert instances(account) == []
    assert account.factory.ec2(REGION).describe_volumes(VolumeIds=[account.volume_id])["Volumes"]  # untouched


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"instance_id": "i-0123456789abcdef0"}, "instance_id is for copying from S3"),
        ({"snapshot": True}, "snapshot (after) is for copying from S3"),
        ({"volume": {"snapshot_id": "snap-0123456789abcdef0", "zone": "us-east-1a"}}, "needs an initialization_rate"),
        ({"size_gib": 50}, "holds 100 GiB: a 50 GiB volume is too small"),
        ({"snapshot_id": "snap-0123456789abcdef0"}, "does not exist"),
        ({"zone": "eu-west-1a"}, "not in this region"),
        ({"initialization_rate": 100, "big": True}, "longer than the workflow waits"),
    ],
)
def test_a_restore_the_workflow_cannot_finish_is_refused_before_anything_is_created(
    account: Account, ebs_initialisation: None, created: list[dict[str, Any]], change: dict[str, Any], reason: str
) -> None:
    change = dict(change)
    snapshot_id = snapshot_of(account, size=8000 if change.pop("big", False) else 100)
    request = restore(snapshot_id)
    if "volume" in change:
        request["volume"] = change.pop("volume")
    for key in ("size_gib", "snapshot_id", "zone", "initialization_rate"):
        if key in change:
            request["volume"][key] = change.pop(key)
    result = execute(account, **request, **change)
    assert result["status"] == "FAILED" and result["error"] == "InvalidRequest", result
    assert reason in result["cause"]
    assert result["entered"] == ["Plan", "Refused"] and created == []


def test_the_s3_path_ends_with_a_snapshot_that_records_its_source_size_and_rate(
    account: Account, workflow_fault: Any, on_emulator: None
) -> None:
    line = json.dumps({"bytes": 8 * 2**30, "seconds": 64, "tool": "s5cmd"})
    workflow_fault("GetCommandInvocation", response={"Status": "Success", "StandardOutputContent": f"copied\n{line}\n"})
    shown = run_cli(account.factory, ["prewarm", account.volume_id, "s3://datasets/imagenet/", "--snapshot-after"])
    assert shown.exit_code == 0, shown.output
    assert "8589934592 bytes in 64 s" in " ".join(shown.stdout.split())
    expected = {
        tags.PREWARMED_FROM: "s3://datasets/imagenet/",
        tags.PREWARMED_BYTES: str(8 * 2**30),
        tags.PREWARMED_SECONDS: "64",
        tags.PREWARMED_RATE: "128.0",  # 8,192 MiB in 64 s
    }
    volume = account.factory.ec2(REGION).describe_volumes(VolumeIds=[account.volume_id])["Volumes"][0]
    [snapshot] = account.factory.ec2(REGION).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [account.volume_id]}]
    )["Snapshots"]
    for resource in (volume, snapshot):
        assert expected.items() <= labels(resource).items()
    # In scope, so that the next pre-warm may restore it (one of this account out of scope is refused).
    assert labels(snapshot)[tags.MANAGED] == "true"


def test_the_command_line_restores_from_a_snapshot(
    account: Account, workflow_clock: WorkflowClock, on_emulator: None
) -> None:
    snapshot_id = snapshot_of(account)
    usage = run_cli(account.factory, ["prewarm", "--snapshot", snapshot_id])
    assert usage.exit_code == 2 and "--snapshot needs --zone" in usage.stderr
    both = run_cli(account.factory, ["prewarm", account.volume_id, "s3://datasets/x/", "--snapshot", snapshot_id])
    assert both.exit_code == 2 and "give no VOLUME_ID or S3_URI" in both.stderr
    rate = run_cli(account.factory, ["prewarm", "--snapshot", snapshot_id, "--zone", "us-east-1a", "--snapshot-after"])
    assert rate.exit_code == 2 and "--snapshot-after is for copying from S3" in rate.stderr
    shown = run_cli(
        account.factory, ["prewarm", "--snapshot", snapshot_id, "--zone", f"{REGION}a", "--initialization-rate", "200"]
    )
    assert shown.exit_code == 0, shown.output
    said = " ".join(shown.stdout.split())
    assert "initialising the volume from its snapshot (no worker)" in said and "SUCCEEDED" in said
    [volume] = volumes_from(account, snapshot_id)
    # 102,400 MiB at 200 MiB/s is 512 s: the poll 542 s after the restore (2 to 32 s, then every 60 s) sees 100 %.
    assert workflow_clock.seen[-1]["Progress"] == 100 and sum(workflow_clock.waited) == 542
    seconds = int(labels(volumes_from(account, snapshot_id)[0])[tags.PREWARMED_SECONDS])
    assert 542 <= seconds < 542 + 30
    assert f"{volume['VolumeId']}: {100 * 2**30} bytes in {seconds} s" in said and "(provisioned 200 MiB/s)" in said


def test_the_emulator_recipe_names_the_flag_and_then_works(account: Account, on_emulator: None) -> None:
    """Issue 26 item 3: a persistent volume's refusal came back as raw JSON naming the workflow field `force`."""
    made = run_cli(account.factory, ["ebs", "create", "--size", "100", "--persistent", "--json"])
    assert made.exit_code == 0, made.output
    volume_id = json.loads(made.stdout)["volume_id"]
    refused = run_cli(account.factory, ["prewarm", volume_id, "s3://datasets/imagenet/"])
    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: pre-warm refused: ") and "--allow-persistent" in line, line
    assert "{" not in line and "force" not in line and "errorMessage" not in line
    forget_finished_workers()
    filled = run_cli(account.factory, ["prewarm", volume_id, "s3://datasets/imagenet/", "--allow-persistent"])
    assert filled.exit_code == 0, filled.output


def test_ctrl_c_says_the_execution_goes_on_and_how_to_follow_or_stop_it(
    account: Account, on_emulator: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26 item 7b: the state machine execution continues in AWS after Ctrl-C."""

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(automation, "follow", interrupted)
    shown = run_cli(account.factory, ["prewarm", account.volume_id, "s3://datasets/imagenet/"])
    assert shown.exit_code == 130
    [line] = shown.stderr.splitlines()
    sfn = account.factory.client("stepfunctions", REGION)
    [execution] = sfn.list_executions(stateMachineArn=account.state_machine)["executions"]
    assert f"goes on in AWS as execution {execution['name']}" in line
    assert f"aws stepfunctions describe-execution --execution-arn {execution['executionArn']}" in line
    assert f"aws stepfunctions stop-execution --execution-arn {execution['executionArn']}" in line
