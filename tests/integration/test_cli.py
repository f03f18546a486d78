"""The trainctl command line: the contract in ARCHITECTURE.md, against moto in-process and as a server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import forbid_writes
from tests.integration.conftest import run_cli
from tests.integration.fleet import seed_account, volume_exists
from trainctl.aws.clients import ClientFactory
from trainctl.cli import main as cli
from trainctl.cli.sandbox_fleet import moto_server
from trainctl.core import names, tags

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
DECISION_KEYS = {"resource_id", "resource_type", "region", "action", "reasons", "protections"}


@pytest.fixture
def cli_factory(factory: ClientFactory) -> ClientFactory:
    return factory


def test_sweep_json_prints_the_documented_shape(cli_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINCTL_SNAPSHOT_RETENTION", "7d")
    account = seed_account(cli_factory)
    at = account.t0.strftime("%Y-%m-%dT%H:%M:%SZ")
    result = run_cli(cli_factory, ["sweep", "--region", "us-east-1", "--region", "eu-west-1", "--at", at, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"dry_run", "at", "regions", "summary", "decisions"} <= set(report)
    assert report["dry_run"] is True and report["at"] == at and report["regions"] == ["us-east-1", "eu-west-1"]
    assert report["decisions"]
    for decision in report["decisions"]:
        assert set(decision) >= DECISION_KEYS
        assert decision["resource_type"] in {"instance", "volume", "snapshot"}
        assert decision["action"] in {"keep", "mark", "unmark", "delete", "terminate", "stop"}
    protections = {p for d in report["decisions"] for p in d["protections"]}
    assert {
        "persistent",
        "min-age",
        "attached",
        "training-active",
        "ami-backed",
        "backup-managed",
        "out-of-scope",
    } <= protections


def test_sweep_without_enforce_makes_no_write_call(cli_factory: ClientFactory) -> None:
    account = seed_account(cli_factory)
    attempts = forbid_writes(cli_factory)
    at = account.after_grace().strftime("%Y-%m-%dT%H:%M:%SZ")
    result = run_cli(cli_factory, ["sweep", "--region", "us-east-1", "--at", at, "--json"])
    assert result.exit_code == 0, result.output
    assert attempts == []


def test_at_with_enforce_is_refused_as_wrong_usage(cli_factory: ClientFactory) -> None:
    result = run_cli(cli_factory, ["sweep", "--enforce", "--at", "2027-01-01T00:00:00Z"])
    assert result.exit_code == 2
    assert "--at" in result.output and "--enforce" in result.output


def test_a_bad_instant_is_wrong_usage(cli_factory: ClientFactory) -> None:
    result = run_cli(cli_factory, ["sweep", "--at", "next tuesday"])
    assert result.exit_code == 2 and "ISO-8601" in result.output


def test_a_bad_setting_is_a_one_line_error(cli_factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINCTL_MIN_AGE", "soon")
    result = run_cli(cli_factory, ["sweep"])
    assert result.exit_code == 1 and "TRAINCTL_MIN_AGE" in result.output


def test_enforce_against_an_account_without_the_stack_is_refused_and_writes_nothing(
    cli_factory: ClientFactory,
) -> None:
    seed_account(cli_factory)
    attempts = forbid_writes(cli_factory)
    result = run_cli(cli_factory, ["sweep", "--enforce", "--region", "us-east-1"])
    assert result.exit_code == 1
    assert "not deployed" in result.output and "read-only preview" in result.output
    assert attempts == []


def test_invoke_without_the_stack_runs_a_read_only_preview(cli_factory: ClientFactory) -> None:
    seed_account(cli_factory)
    attempts = forbid_writes(cli_factory)
    event = ROOT / "events" / "cleanup_sweep" / "scheduled.json"
    result = run_cli(cli_factory, ["invoke", "cleanup_sweep", "--event", str(event), "--json"])
    assert result.exit_code == 0, result.output
    assert "nothing recorded" in result.output
    assert attempts == []


def test_invoke_refuses_an_unknown_function_and_an_unreadable_event(cli_factory: ClientFactory) -> None:
    event = ROOT / "events" / "cleanup_sweep" / "scheduled.json"
    unknown = run_cli(cli_factory, ["invoke", "../../etc", "--event", str(event)])
    assert unknown.exit_code == 2 and "no function" in unknown.output
    broken = run_cli(
        cli_factory,
        ["invoke", "cleanup_sweep", "--event", str(ROOT / "events" / "cleanup_sweep" / "malformed_not_json.json")],
    )
    assert broken.exit_code == 2 and "cannot read event" in broken.output


def test_against_an_emulator_enforce_creates_the_stacks_resources_and_acts() -> None:
    with moto_server():
        factory = ClientFactory("us-east-1")
        account = seed_account(factory)
        factory.dynamodb().delete_table(TableName=names.LEDGER_TABLE)  # as on a fresh emulator
        env = {"TRAINCTL_REGIONS": "us-east-1", "TRAINCTL_MIN_AGE": "0s"}
        result = runner.invoke(cli.app, ["sweep", "--enforce", "--json"], env=env)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["dry_run"] is False and report["recorded"] is True
        assert factory.dynamodb().describe_table(TableName=names.LEDGER_TABLE)["Table"]["TableName"]
        marked = [d for d in report["decisions"] if d["action"] == "mark"]
        assert marked and all(d["outcome"] == "done" for d in marked)
        assert volume_exists(factory, account.fleet["scratch-1"])
        invoked = runner.invoke(
            cli.app,
            ["invoke", "cleanup_sweep", "--event", str(ROOT / "events/cleanup_sweep/dry_run.json"), "--json"],
            env=env,
        )
        assert invoked.exit_code == 0, invoked.output
        assert json.loads(invoked.stdout)["dry_run"] is True


def test_sandbox_runs_end_to_end_and_exits_zero() -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "COLUMNS": "80"}
    completed = subprocess.run(
        [sys.executable, "-m", "trainctl.cli.main", "sandbox"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    out = completed.stdout
    for word in (
        "mark",
        "delete",
        "terminate",
        "unmark",
        "blast-radius",
        "min-age",
        "persistent",
        "training-active",
        "ami-backed",
        "backup-managed",
        "out-of-scope",
        "attached",
        "dry-run",
    ):
        assert word in out
    assert "persistent volumes still there" in out
    # Issue 18: one owner's notice from the acting sweep, as e-mail and as chat, for the same sweep.
    assert "e-mail (SNS 'email': plain text)" in out and "What you can do:" in out
    assert "chat (SNS 'https': Amazon Q Developer custom notification)" in out and "Next steps" in out
    assert "schema 1.0/custom, textType client-markdown" in out
    # Issue 24: the training check answers from each instance's emulated SSM agent, and the story says so.
    assert "2b. the training check: what each instance's SSM agent answered" in out
    assert "no SSM agent" in out and "not-managed-by-ssm" in out
    assert "not_managed_by_ssm: 1 in the summary" in out
    said = " ".join(out.split())  # the story's lines, as rich wrapped them at 80 columns, read as one
    story = re.search(
        r"the forgotten notebook i-[0-9a-f]+: mark at (\S+); grace 2h, then 15m for late events; stop at (\S+): done",
        said,
    )
    assert story, said
    marked, stopped = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in story.groups())
    assert stopped - marked == timedelta(hours=2, minutes=15)
    assert max(len(line) for line in out.splitlines()) <= 80  # an ordinary terminal, every table in it
    assert completed.stderr.strip() == ""  # nothing else on the terminal: no log line, no traceback


def test_force_overrides_the_minimum_age_and_nothing_else(cli_factory: ClientFactory) -> None:
    ec2 = cli_factory.ec2("us-east-1")
    managed = [{"Key": "trainctl:managed", "Value": "true"}]
    young = ec2.create_volume(
        Size=1, AvailabilityZone="us-east-1a", TagSpecifications=[{"ResourceType": "volume", "Tags": managed}]
    )["VolumeId"]
    kept = ec2.create_volume(
        Size=1,
        AvailabilityZone="us-east-1a",
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [*managed, {"Key": "trainctl:persistent", "Value": "true"}]}
        ],
    )["VolumeId"]
    plain = json.loads(run_cli(cli_factory, ["sweep", "--json"]).stdout)
    before = {d["resource_id"]: d for d in plain["decisions"]}
    assert "min-age" in before[young]["protections"] and before[young]["action"] == "keep"
    for flag in ("--ignore-min-age", "--force"):  # --force: the documented, deprecated name
        forced = run_cli(cli_factory, ["sweep", flag, "--json"])
        after = {d["resource_id"]: d for d in json.loads(forced.stdout)["decisions"]}
        assert after[young]["action"] == "mark" and after[young]["protections"] == []
        assert "persistent" in after[kept]["protections"] and after[kept]["action"] == "keep"
        assert ("deprecated" in forced.stderr) is (flag == "--force")


def test_invoke_a_spot_warning_against_an_emulator_saves_the_data_exactly_once(tmp_path: Path) -> None:
    with moto_server():
        factory = ClientFactory("us-east-1")
        ec2 = factory.ec2("us-east-1")
        instance = ec2.run_instances(
            ImageId="ami-0abcdef1234567890",
            InstanceType="g5.xlarge",
            MinCount=1,
            MaxCount=1,
            InstanceMarketOptions={"MarketType": "spot"},
            BlockDeviceMappings=[
                {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 100, "DeleteOnTermination": True}},
                {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 20, "DeleteOnTermination": True}},
            ],
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "carol"}],
                }
            ],
        )["Instances"][0]
        instance_id = instance["InstanceId"]
        data = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
        ec2.create_tags(Resources=[data["/dev/sdf"]], Tags=[{"Key": tags.PERSISTENT, "Value": "true"}])
        # In scope, like its instance: a volume out of scope would be kept too (DeleteOnTermination cleared).
        # As age_guard stamps what the launch created: in scope, with the launcher as owner; it may go with it.
        ec2.create_tags(
            Resources=[data["/dev/sdg"]],
            Tags=[{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "carol"}],
        )
        warning = json.loads(
            (ROOT / "events/spot_interruption/warning.json").read_text().replace("i-0000000000000000a", instance_id)
        )
        # Sent now: a warning older than its two minutes and the delivery lag is recorded, not acted on.
        warning["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = tmp_path / "warning.json"
        event.write_text(json.dumps(warning))
        env = {"TRAINCTL_REGIONS": "us-east-1", "TRAINCTL_SPOT_CHECKPOINT_WAIT": "0s"}
        results = []
        for _ in range(2):
            invoked = runner.invoke(cli.app, ["invoke", "spot_interruption", "--event", str(event), "--json"], env=env)
            assert invoked.exit_code == 0, invoked.output
            results.append(json.loads(invoked.stdout))
        assert results[0] == results[1] and results[0]["status"] == "handled"
        assert len(factory.ssm("us-east-1").list_commands()["Commands"]) == 1
        snapshots = ec2.describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{tags.SPOT_INSTANCE}", "Values": [instance_id]}]
        )["Snapshots"]
        assert {s["VolumeId"] for s in snapshots} == set(data.values())
        described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        kept = {m["Ebs"]["VolumeId"]: m["Ebs"]["DeleteOnTermination"] for m in described["BlockDeviceMappings"]}
        assert kept[data["/dev/sdf"]] is False and kept[data["/dev/sdg"]] is True
