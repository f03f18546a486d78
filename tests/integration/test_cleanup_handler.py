"""The cleanup_sweep handler end to end under moto, stepping an injected clock through mark and act."""

from __future__ import annotations

import json
import types
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import WriteForbidden, forbid_writes, load_event
from tests.integration.fleet import (
    REGIONS,
    SeededAccount,
    instance_state,
    messages,
    seed_account,
    tags_of,
    volume_exists,
)
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock
from trainctl.core.errors import SettingsError
from trainctl.core.events import InvalidEvent


@pytest.fixture
def handler(factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    monkeypatch.setenv("TRAINCTL_REGIONS", ",".join(REGIONS))
    monkeypatch.setenv("TRAINCTL_LEDGER_TABLE", names.LEDGER_TABLE)
    monkeypatch.setenv("TRAINCTL_TRAINING_DOCUMENT", names.TRAINING_DOCUMENT)
    monkeypatch.setenv("TRAINCTL_SNAPSHOT_RETENTION", "7d")
    monkeypatch.setenv("TRAINCTL_TRAINING_CHECK_TIMEOUT", "1s")
    module = load_handler("cleanup_sweep")
    monkeypatch.setattr(module, "client_factory", lambda: factory)
    return module


def run(handler: types.ModuleType, event: Any, at: datetime) -> dict[str, Any]:
    handler.deployed_settings.cache_clear()
    handler.clock = fixed_clock(at)
    result: dict[str, Any] = handler.lambda_handler(event, LocalContext(function_name="trainctl-cleanup_sweep"))
    return result


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["resource_id"]: d for d in result["decisions"]}


@pytest.fixture
def enforcing(handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch) -> SeededAccount:
    account = seed_account(factory)
    monkeypatch.setenv("TRAINCTL_DRY_RUN", "false")
    monkeypatch.setenv("TRAINCTL_TOPIC_ARN", account.topic_arn)
    monkeypatch.setenv("TRAINCTL_MAX_ACTION_SHARE", "1")
    return account


def test_enforced_sweep_marks_then_acts_after_the_grace_period(
    handler: types.ModuleType, factory: ClientFactory, enforcing: SeededAccount
) -> None:
    fleet = enforcing.fleet
    first = run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.t0)
    decisions = by_id(first)
    assert first["dry_run"] is False
    assert decisions[fleet["scratch-1"]]["action"] == "mark"
    assert tags.CLEANUP_AFTER in tags_of(factory, fleet["scratch-1"])
    assert volume_exists(factory, fleet["scratch-1"])  # marking destroys nothing

    halfway = run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.t0 + timedelta(hours=12))
    assert by_id(halfway)[fleet["scratch-1"]]["action"] == "keep"
    assert volume_exists(factory, fleet["scratch-1"])

    after = run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.after_grace())
    decisions = by_id(after)
    assert decisions[fleet["scratch-1"]]["action"] == "delete"
    assert decisions[fleet["scratch-1"]]["outcome"] == "done"
    assert not volume_exists(factory, fleet["scratch-1"])
    assert decisions[fleet["old-checkpoint"]]["outcome"] == "done"
    assert decisions[fleet["eu-stopped"]]["action"] == "terminate"
    assert instance_state(factory, fleet["eu-stopped"], "eu-west-1") == "terminated"
    assert decisions[fleet["prewarm-worker"]]["action"] == "terminate"
    # Every protection held.
    assert volume_exists(factory, fleet["imagenet-dataset"])
    assert volume_exists(factory, fleet["someone-elses-disk"])
    assert volume_exists(factory, fleet["checkpoints-attached"])
    assert instance_state(factory, fleet["forgotten-notebook"]) == "running"  # SSM gave no verdict
    assert "training-active" in decisions[fleet["forgotten-notebook"]]["protections"]
    assert decisions[fleet["ami-root"]]["protections"] == ["ami-backed"]
    assert decisions[fleet["backup-copy"]]["protections"] == ["backup-managed"]
    assert decisions[fleet["stopped-baseline"]]["protections"] == ["persistent"]


def test_a_persistent_volume_never_dies_with_its_instance(
    handler: types.ModuleType, factory: ClientFactory, enforcing: SeededAccount
) -> None:
    fleet = enforcing.fleet
    run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.t0)
    after = run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.after_grace())
    decision = by_id(after)[fleet["stopped-experiment"]]
    assert decision["action"] == "terminate" and decision["outcome"] == "done"
    assert decision["keep_volumes"] == [fleet["experiment-data"]]
    assert instance_state(factory, fleet["stopped-experiment"]) == "terminated"
    assert volume_exists(factory, fleet["experiment-data"])


def test_a_resource_that_stops_being_a_candidate_is_unmarked(
    handler: types.ModuleType, factory: ClientFactory, enforcing: SeededAccount
) -> None:
    fleet = enforcing.fleet
    run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.t0)
    factory.ec2("us-east-1").attach_volume(
        VolumeId=fleet["scratch-2"], InstanceId=fleet["forgotten-notebook"], Device="/dev/sdh"
    )
    after = run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.after_grace())
    assert by_id(after)[fleet["scratch-2"]]["action"] == "unmark"
    assert tags.CLEANUP_AFTER not in tags_of(factory, fleet["scratch-2"])
    assert volume_exists(factory, fleet["scratch-2"])


def test_every_decision_is_in_the_ledger_and_one_message_per_changing_sweep(
    handler: types.ModuleType, factory: ClientFactory, enforcing: SeededAccount
) -> None:
    first = run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.t0)
    table = factory.dynamodb()
    for decision in first["decisions"]:
        items = table.query(
            TableName=names.LEDGER_TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"resource#{decision['resource_id']}"}},
        )["Items"]
        assert [json.loads(i["decision"]["S"])["action"] for i in items] == [decision["action"]]
    sweeps = table.query(
        TableName=names.LEDGER_TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "sweep"}},
    )["Items"]
    assert len(sweeps) == 1
    sent = messages(factory, enforcing.queue_url)
    # One message per owner with news, each naming only that owner's resources.
    # News: an action, a failure, or a value trainctl cannot read shown for the first time.
    owners = {d["owner"] for d in first["decisions"] if d["action"] != "keep" or d["outcome"] in ("failed", "warned")}
    assert len(sent) == len(owners) > 1
    scratch = next(m for m in sent if enforcing.fleet["scratch-1"] in m["Message"])
    assert "mark" in scratch["Subject"]
    assert sum(enforcing.fleet["scratch-1"] in m["Message"] for m in sent) == 1

    # A sweep that changes nothing says nothing (one minute on, the fresh volume is still under min-age).
    quiet = run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.t0 + timedelta(minutes=1))
    assert {d["action"] for d in quiet["decisions"]} == {"keep"}
    assert messages(factory, enforcing.queue_url) == []


def test_dry_run_makes_no_write_call_at_all(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = seed_account(factory)
    monkeypatch.setenv("TRAINCTL_DRY_RUN", "true")
    monkeypatch.setenv("TRAINCTL_TOPIC_ARN", account.topic_arn)
    attempts = forbid_writes(factory)
    result = run(handler, load_event("cleanup_sweep", "scheduled"), account.after_grace())
    assert attempts == []
    assert result["dry_run"] is True and result["recorded"] is False
    assert {d["outcome"] for d in result["decisions"]} == {"dry-run"}
    assert any(d["action"] == "mark" for d in result["decisions"])  # it did decide
    assert volume_exists(factory, account.fleet["scratch-1"])


def test_the_write_guard_itself_catches_a_write_on_clients_built_before_and_after(factory: ClientFactory) -> None:
    existing = factory.ec2("us-east-1")
    forbid_writes(factory)
    with pytest.raises(WriteForbidden):
        existing.create_volume(Size=1, AvailabilityZone="us-east-1a")
    with pytest.raises(WriteForbidden):
        factory.ec2("eu-west-1").create_volume(Size=1, AvailabilityZone="eu-west-1a")
    existing.describe_volumes()  # reads pass


def test_an_event_can_ask_for_a_dry_run_of_an_enforcing_deployment(
    handler: types.ModuleType, factory: ClientFactory, enforcing: SeededAccount
) -> None:
    attempts = forbid_writes(factory)
    result = run(handler, load_event("cleanup_sweep", "dry_run"), enforcing.t0)
    assert result["dry_run"] is True and attempts == []


def test_an_event_can_narrow_the_regions(
    handler: types.ModuleType, factory: ClientFactory, enforcing: SeededAccount
) -> None:
    result = run(handler, load_event("cleanup_sweep", "one_region"), enforcing.t0)
    assert result["regions"] == ["us-east-1"]
    assert {d["region"] for d in result["decisions"]} == {"us-east-1"}


def test_the_eventbridge_rule_envelope_is_accepted(
    handler: types.ModuleType, factory: ClientFactory, enforcing: SeededAccount
) -> None:
    result = run(handler, load_event("cleanup_sweep", "eventbridge_rule"), enforcing.t0)
    assert result["summary"]["scanned"] > 0


@pytest.mark.parametrize(
    "event",
    [
        load_event("cleanup_sweep", "malformed_unknown_task"),
        load_event("cleanup_sweep", "malformed_bad_region"),
        {"task": "cleanup_sweep", "regions": []},
        {"task": "cleanup_sweep", "surprise": True},
        {"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2"},
        [],
        "cleanup_sweep",
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch, event: Any
) -> None:
    account = seed_account(factory)
    monkeypatch.setenv("TRAINCTL_DRY_RUN", "false")
    attempts = forbid_writes(factory)
    reads_before = factory.calls.total
    with pytest.raises(InvalidEvent):
        run(handler, event, account.t0)
    assert attempts == []
    assert factory.calls.total == reads_before  # refused before the first call


def test_malformed_json_event_file_is_refused() -> None:
    with pytest.raises(json.JSONDecodeError):
        load_event("cleanup_sweep", "malformed_not_json")


def test_an_event_cannot_turn_on_enforcement(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = seed_account(factory)
    monkeypatch.setenv("TRAINCTL_DRY_RUN", "true")
    attempts = forbid_writes(factory)
    with pytest.raises(InvalidEvent, match="cannot turn enforcement on"):
        run(handler, load_event("cleanup_sweep", "enforce_request"), account.t0)
    assert attempts == []


def test_an_event_cannot_widen_the_regions(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_REGIONS", "us-east-1")
    with pytest.raises(InvalidEvent, match="eu-west-1"):
        run(handler, {"task": "cleanup_sweep", "regions": ["eu-west-1"]}, datetime(2026, 11, 28))


def test_a_bad_setting_fails_the_invocation_naming_it(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAINCTL_GRACE_PERIOD", "a while")
    attempts = forbid_writes(factory)
    with pytest.raises(SettingsError, match="TRAINCTL_GRACE_PERIOD"):
        run(handler, load_event("cleanup_sweep", "scheduled"), datetime(2026, 11, 28))
    assert attempts == []


def test_ttl_expiry_is_announced_ahead_then_acted_on_and_min_age_still_rules(
    handler: types.ModuleType, factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = stack_resources.ensure_on_emulator(factory, ("us-east-1",))
    monkeypatch.setenv("TRAINCTL_REGIONS", "us-east-1")
    monkeypatch.setenv("TRAINCTL_DRY_RUN", "false")
    monkeypatch.setenv("TRAINCTL_TOPIC_ARN", resources.topic_arn)
    monkeypatch.setenv("TRAINCTL_MAX_ACTION_SHARE", "1")
    ec2 = factory.ec2("us-east-1")
    volume_id = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]

    def snapshot_with(ttl: str) -> tuple[str, datetime]:
        snap = ec2.create_snapshot(
            VolumeId=volume_id,
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [
                        {"Key": tags.MANAGED, "Value": "true"},
                        {"Key": tags.TTL, "Value": ttl},
                        {"Key": tags.OWNER, "Value": "erin"},
                    ],
                }
            ],
        )
        return snap["SnapshotId"], snap["StartTime"]

    eight_hours, created = snapshot_with("8h")
    one_minute, _ = snapshot_with("1m")

    def decision(result: dict[str, Any], resource_id: str) -> dict[str, Any] | None:
        return by_id(result).get(resource_id)

    early = run(handler, load_event("cleanup_sweep", "scheduled"), created + timedelta(hours=6))
    assert decision(early, eight_hours) is None
    young = decision(run(handler, load_event("cleanup_sweep", "scheduled"), created + timedelta(minutes=2)), one_minute)
    assert young is not None and young["reasons"] == ["ttl-expired"] and young["protections"] == ["min-age"]

    warned_at = created + timedelta(hours=7, minutes=30)
    warning = decision(run(handler, load_event("cleanup_sweep", "scheduled"), warned_at), eight_hours)
    assert warning is not None and warning["action"] == "mark" and warning["reasons"] == ["ttl-expiring"]
    # The expiry, but never sooner than a full grace period after the warning: a ttl anyone wrote cannot rush it.
    due = max(created + timedelta(hours=8), warned_at + timedelta(hours=24))
    assert warning["cleanup_after"] == due.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tags_of(factory, eight_hours)[tags.CLEANUP_AFTER] == warning["cleanup_after"]
    expired_early = run(handler, load_event("cleanup_sweep", "scheduled"), created + timedelta(hours=8, minutes=1))
    assert decision(expired_early, eight_hours)["action"] == "keep"  # type: ignore[index]

    heard_late = run(handler, load_event("cleanup_sweep", "scheduled"), due + timedelta(minutes=1))
    assert "late events" in decision(heard_late, eight_hours)["detail"]  # type: ignore[index]
    expired = run(handler, load_event("cleanup_sweep", "scheduled"), due + timedelta(minutes=16))
    acted = decision(expired, eight_hours)
    assert acted is not None and acted["action"] == "delete" and acted["outcome"] == "done"


def test_metrics_carry_one_count_per_action_and_protection(
    handler: types.ModuleType, factory: ClientFactory, enforcing: SeededAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    result = run(handler, load_event("cleanup_sweep", "scheduled"), enforcing.t0)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert len(emf) == 1
    summary = result["summary"]
    for action, count in summary["actions"].items():
        assert emf[0][f"Action_{action}"] == [count]  # one value, not one entry per decision
    for protection, count in summary["protections"].items():
        assert emf[0][f"Protection_{protection}"] == [count]
