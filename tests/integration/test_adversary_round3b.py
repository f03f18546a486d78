# ruff: noqa: F811 - the spot fixtures are test_spot_interruption's, imported by name
"""Adversarial review of issue 25 (round three, second reviewer): owners of record, no immortal tags, spot.

Each test is a sequence of people's tag writes, CloudTrail events and sweeps after which a promise of issue 25 (or
the safety model in ARCHITECTURE.md) does not hold. Its docstring gives the sequence and the promise it breaks.
People act through their own clients (`people`), never through the sweep's factory.
"""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.integration.fleet import messages
from tests.integration.test_spot_interruption import (  # noqa: F401 - fixtures
    SentCommands,
    SpotFleet,
    factory,
    fleet,
    handler,
    invoke,
    sent,
    spot_event,
)
from tests.integration.test_sweep_adversary import GRACE, REGION, SETTINGS, T0, ZONE, Account, decision
from trainctl.aws.clients import ClientFactory
from trainctl.aws.owners import OwnersOfRecord
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock, format_instant
from trainctl.core.errors import AwsAccessError, TrainctlError
from trainctl.sweep.run import run_sweep

LAG = SETTINGS.event_delivery_lag
BOB_ARN = "arn:aws:iam::123456789012:user/bob"


@pytest.fixture
def account(factory: ClientFactory) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


def owners_told(account: Account, resource_id: str, since: int = 0) -> set[str]:
    """Whose owner-filtered subscription received a notice naming the resource (from message `since` on)."""
    pairs = list(zip(account.notifier.messages, account.notifier.attributes, strict=True))[since:]
    return {attributes["owner"] for (_, text), attributes in pairs if resource_id in text}


def age_guard_hears_creation(
    account: Account, monkeypatch: pytest.MonkeyPatch, event_name: str, response: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """CloudTrail's record of Bob's create call (an IAM user), handed late to the deployed age_guard handler."""
    event: dict[str, Any] = load_event("age_guard", "create_volume_iam_user")
    event["detail"]["eventName"] = event_name
    event["detail"]["responseElements"] = response
    event["detail"]["eventTime"] = format_instant(at)
    monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
    monkeypatch.setenv("TRAINCTL_ACCOUNT_ID", event["account"])
    module = load_handler("age_guard")
    monkeypatch.setattr(module, "client_factory", lambda: account.factory)
    module.deployed_settings.cache_clear()
    told: dict[str, Any] = module.lambda_handler(event, LocalContext(function_name="trainctl-age_guard"))
    return told


# ------------------------------------------------------------------------------------------ owners of record


def test_hole_an_owner_tag_written_before_cloudtrail_arrives_becomes_the_owner_of_record(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence: Bob creates an in-scope volume (no owner tag yet: age_guard stamps it). CloudTrail delivers his
    CreateVolume 5-15 minutes late; within that window Mallory, who may tag, writes `trainctl:owner=mallory` and
    `trainctl:ttl=0s` on it. age_guard then hears Bob's call, stamps created-by=bob, leaves the owner tag alone, and
    records as owner of record the *tag it found* (mallory), not the creator its own event names (bob). The sweep
    marks the volume and tells only Mallory; a grace period later it is deleted and Bob never heard.

    Promise broken (issue 25, safety model 13): "The owner a notice goes to is the owner trainctl recorded: ... the
    creator age_guard stamped." Code at fault: age_guard/run.py `_stamp`, `recorded = current owner tag or planned`.
    """
    spec = [{"ResourceType": "volume", "Tags": [{"Key": tags.MANAGED, "Value": "true"}]}]
    created = datetime.now(UTC).replace(microsecond=0)
    volume_id = account.ec2.create_volume(Size=10, AvailabilityZone=ZONE, TagSpecifications=spec)["VolumeId"]
    account.set_tags(volume_id, **{tags.OWNER: "mallory", tags.TTL: "0s"})  # before CloudTrail delivers
    heard = age_guard_hears_creation(account, monkeypatch, "CreateVolume", {"volumeId": volume_id}, created)
    assert heard["status"] == "stamped"
    assert OwnersOfRecord(account.factory.dynamodb(), names.LEDGER_TABLE).read([volume_id]) == {volume_id: "bob"}
    marked = decision(account.sweep(T0), volume_id)
    assert marked.action == "mark"
    assert "bob" in owners_told(account, volume_id), "the creator never hears his volume is to be deleted"


def test_hole_a_resource_created_with_its_stamp_tags_copied_has_no_owner_of_record(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence: Bob snapshots his volume copying its tags (CopyTagsFromSource, or a backup script passing the
    volume's tags in TagSpecifications): owner=bob, created-by, created-at, managed. age_guard hears CreateSnapshot;
    every stamp key is already there, so nothing is planned and `_stamp` claims an owner only for what it planned:
    no owner of record. Mallory writes owner=mallory and ttl=0s; the sweep marks the snapshot and tells Mallory only.

    Promise broken (issue 25): "the owner in the ledger when the resource was first seen", every notice also to the
    owner of record. Code at fault: age_guard/run.py `_stamp` (`recorded = {... for i in planned}`): a resource
    heard but not stamped gets no record. Fix: claim for every id heard (the tag found, else the principal's owner).
    """
    volume_id = account.volume(**{tags.OWNER: "bob"})
    copied = {
        tags.MANAGED: "true",
        tags.OWNER: "bob",
        tags.CREATED_BY: BOB_ARN,
        tags.CREATED_AT: format_instant(T0 - timedelta(days=3)),
    }
    created = datetime.now(UTC).replace(microsecond=0)
    snapshot_id = account.ec2.create_snapshot(
        VolumeId=volume_id,
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in copied.items()]}],
    )["SnapshotId"]
    age_guard_hears_creation(account, monkeypatch, "CreateSnapshot", {"snapshotId": snapshot_id}, created)
    assert OwnersOfRecord(account.factory.dynamodb(), names.LEDGER_TABLE).read([snapshot_id]) == {snapshot_id: "bob"}, (
        "age_guard heard the snapshot created and recorded no owner"
    )
    account.set_tags(snapshot_id, **{tags.OWNER: "mallory", tags.TTL: "0s"})
    marked = decision(account.sweep(T0), snapshot_id)
    assert marked.action == "mark"
    assert "bob" in owners_told(account, snapshot_id)


def test_hole_the_owner_first_told_of_a_mark_never_hears_of_the_action_after_a_withdrawn_mark(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence (no owner of record: a volume from before the deploy, or see the two tests above): the sweep marks
    Alice's volume and tells Alice. Mallory writes owner=mallory; age_guard hears the CreateTags and withdraws the
    mark (tag and ledger). The next sweep marks it afresh: `_told_before` reads the announced owner only for
    destructive decisions, so the fresh mark goes to Mallory alone; at its end the volume is deleted and the
    ledger's newest mark names Mallory: Alice, the one owner trainctl ever announced a mark on it to, hears nothing
    more. Repeatable on every resource Mallory can tag.

    Promise broken (safety model 13, issue 25): notices go to "the owner in the ledger when the resource was first
    seen or marked" and "to the owner its mark was announced to". Code at fault: sweep/run.py `vouch_for_marks`
    (told = the newest mark's owner only, and only for destructive decisions) and `_told_before`. Fix: every owner
    any mark in the history was announced to (its `owner` and its `also_tell`, which the ledger should record),
    for marks and outcomes alike.
    """
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    assert owners_told(account, volume_id) == {"alice"}
    first = len(account.notifier.messages)
    account.set_tags(volume_id, **{tags.OWNER: "mallory"})
    request = {
        "resourcesSet": {"items": [{"resourceId": volume_id}]},
        "tagSet": {"items": [{"key": tags.OWNER, "value": "mallory"}]},
    }
    assert account.tell_age_guard(monkeypatch, "CreateTags", request, T0 + timedelta(hours=1))["status"] == "unmarked"
    again = T0 + timedelta(hours=2)
    assert decision(account.sweep(again), volume_id).action == "mark"
    acted = decision(account.sweep(again + GRACE + LAG + timedelta(minutes=1)), volume_id)
    assert acted.action == "delete"
    assert "alice" in owners_told(account, volume_id, since=first), "Alice was told of the mark, not of its end"


def test_hole_a_remark_announced_to_both_owners_ends_with_a_notice_to_the_new_tag_owner_only(
    account: Account,
) -> None:
    """Sequence: the sweep marks Alice's volume (Alice told). Mallory writes owner=mallory; the CreateTags event is
    lost. At the due time the ledger's mark names Alice, so the sweep marks afresh and tells both (also_tell=alice).
    A grace period later the sweep deletes: the ledger recorded that fresh mark under owner=mallory only (also_tell
    is not kept), so the deletion notice goes to Mallory alone, though its mark was announced to Alice too.

    Promise broken (issue 25): "every sweep notice also goes to ... the owner its mark was announced to". Code at
    fault: sweep/run.py `vouch_for_marks` (told from `newest_mark.owner`) and sweep/record.py (also_tell is not
    read back into LedgerEntry). Fix: record and read back every owner a mark was announced to.
    """
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    account.set_tags(volume_id, **{tags.OWNER: "mallory"})
    due = T0 + GRACE + LAG + timedelta(minutes=1)
    remarked = decision(account.sweep(due), volume_id)
    assert remarked.action == "mark" and remarked.also_tell == ("alice",)
    before_end = len(account.notifier.messages)
    acted = decision(account.sweep(due + GRACE + LAG + timedelta(minutes=1)), volume_id)
    assert acted.action == "delete"
    assert owners_told(account, volume_id, since=before_end) >= {"alice", "mallory"}


# ------------------------------------------------------------------------------------------ no immortal tags


def test_hole_a_hand_written_mark_kept_just_ahead_makes_a_resource_immortal_and_nobody_is_told(
    account: Account,
) -> None:
    """Sequence: Mallory writes `trainctl:cleanup-after` = now + 23h on an orphaned in-scope volume (within the
    grace period, so not "further ahead than trainctl writes"), and rewrites it every 20 hours. Every sweep reads a
    future mark and keeps the volume ("grace period until ..."): a future mark is never checked against the ledger,
    so the hand-written one is never replaced by trainctl's own. The volume lives forever; no mark of trainctl's is
    ever announced, no warning goes out, and it is not `unreadable` or `min-age`, so `trainctl report` never lists it.

    Promise broken (issue 25, "No tag makes a resource immortal without anyone knowing"): "A future mark the ledger
    does not know is replaced by trainctl's own fresh mark." Code at fault: sweep/rules.py `decide` checks only a
    mark further ahead than max(grace, lead) + 1 minute; the ledger is asked only once a mark is due
    (sweep/run.py `vouch_for_marks` takes destructive decisions only). Fix: vouch for every present future mark (the
    ledger knows the instant it wrote) and mark afresh when it does not.
    """
    volume_id = account.volume()
    at = T0
    seen = []
    for _ in range(6):  # five days: many grace periods
        account.set_tags(volume_id, **{tags.CLEANUP_AFTER: format_instant(at + timedelta(hours=23))})
        seen.append(decision(account.sweep(at), volume_id))
        at += timedelta(hours=20)
    assert account.exists(volume_id)
    assert any(d.action == "mark" for d in seen), [d.detail for d in seen]
    assert account.told(volume_id), "kept for five days on a mark trainctl never wrote, and nobody was told"


# ------------------------------------------------------------------------------------------ spot


def test_hole_a_spot_interruption_notice_goes_to_the_tag_owner_not_the_owner_of_record(
    handler: types.ModuleType, factory: ClientFactory, fleet: SpotFleet, sent: SentCommands
) -> None:
    """Sequence: Carol's spot trainer is recorded as hers by age_guard (owner of record: carol). Mallory rewrites its
    `trainctl:owner` to mallory. EC2 sends the two-minute warning: the spot handler checkpoints, snapshots and keeps
    Carol's data and tells... the tag's owner only; its record names mallory, so the recovery workflow (which reads
    the owner from that record) relaunches Carol's job with her restored data tagged as Mallory's.

    Promise broken (safety model 13): "Notices go to the owner trainctl recorded (ledger, creator stamp) as well as
    the one the tag names now." Code at fault: spot/run.py `handle_interruption` (`outcome.owner` = the tag) and
    `interruption_notice` (one owner). Fix: read OwnersOfRecord there too; tell both, and record the owner of
    record for the recovery.
    """
    OwnersOfRecord(factory.dynamodb(), names.LEDGER_TABLE).claim({fleet.trainer: "carol"}, T0, "age_guard")
    factory.ec2(REGION).create_tags(Resources=[fleet.trainer], Tags=[{"Key": tags.OWNER, "Value": "mallory"}])
    assert invoke(handler, spot_event("warning", fleet.trainer))["status"] == "handled"
    told = {m["MessageAttributes"]["owner"]["Value"] for m in messages(factory, fleet.queue_url)}
    assert "carol" in told, told


# ------------------------------------------------------------------------------------------ told once, not never


class DownNotifier:
    """SNS throttling or down for one sweep: every Publish fails."""

    def publish(self, notice: Any) -> None:
        raise AwsAccessError("Publish", "Throttling", "Rate exceeded")


def test_hole_an_unreadable_value_whose_warning_could_not_be_sent_is_never_warned_of(account: Account) -> None:
    """Sequence: `trainctl:ttl=forever` on Alice's orphaned volume. The sweep that first sees it keeps it as
    `unreadable`, sets the outcome "warned", and publishes; SNS throttles that Publish. The sweep records the
    decision (outcome "warned", protections unreadable) and raises. Every later sweep reads that newest line,
    finds `unreadable` already in it, and stays silent: the one warning the owner was promised was never sent, and
    the volume is kept forever without anyone knowing.

    Promise broken (issue 25): "an unreadable value is protected by name and the owner is warned" (once), and safety
    model 11's "one notice per mark and one for its outcome" handled for marks only (a mark whose notice failed is
    recorded `unannounced` and announced again). Code at fault: sweep/run.py `_tell_owners` turns only marks into
    "unannounced"; `_warn_newly_unreadable` trusts the recorded protections. Fix: a warning whose notice failed is
    recorded as not sent (e.g. outcome "unannounced"), and `_warn_newly_unreadable` warns again until one was.
    """
    volume_id = account.volume(**{tags.TTL: "forever"})
    with pytest.raises(TrainctlError):
        run_sweep(account.factory, SETTINGS, fixed_clock(T0), ledger=account.ledger, notifier=DownNotifier())
    for hour in range(1, 4):
        later = decision(account.sweep(T0 + timedelta(hours=hour)), volume_id)
        assert later.action == "keep" and "unreadable" in later.protections
    assert account.told(volume_id), "the owner was never warned of the value that keeps the volume forever"


def test_hole_an_unreadable_value_is_warned_of_again_after_every_use_age_guard_hears(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence: `trainctl:ttl=forever` on Alice's data volume; the first sweep warns her (once, as promised). Each
    day she attaches it for a job and detaches it in the evening: age_guard hears each AttachVolume and writes its
    use line (action unmark, no protections) in the resource's history. The next night's sweep reads that line as
    the newest, finds no `unreadable` in it, and warns again: one warning per day of use for a value that never
    changed, forever.

    Promise broken (issue 25 as reviewed: "an unreadable value warns the owner once"; safety model 11: "never one
    per sweep"). Code at fault: sweep/run.py `_warn_newly_unreadable` reads only the newest ledger line, which an
    age_guard line (or any other writer's) hides. Fix: look for the newest *sweep* line of the resource, or record
    the warned value and warn only when it differs.
    """
    volume_id = account.volume(**{tags.TTL: "forever"})
    assert decision(account.sweep(T0), volume_id).outcome == "warned"
    told = len(account.notifier.messages)
    for day in range(1, 4):
        morning = T0 + timedelta(days=day, hours=-12)
        attach = {"volumeId": volume_id, "instanceId": "i-0123456789abcdef0"}
        account.tell_age_guard(monkeypatch, "AttachVolume", attach, morning)
        decision(account.sweep(T0 + timedelta(days=day)), volume_id)
    assert len(account.notifier.messages) == told, [s for s, _ in account.notifier.messages[told:]]
