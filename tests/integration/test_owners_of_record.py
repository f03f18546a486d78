"""Issue 25: owners who are told, whatever the tags say now, and no tag that makes a resource immortal unnoticed.

A colleague who can write tags writes `trainctl:ttl=0s` and `trainctl:owner=mallory` on Alice's resources. Before,
Mallory received every notice, Alice's owner-filtered subscription (the README's recipe) heard nothing, and a
grace period later her resources were gone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.integration.test_sweep_adversary import GRACE, REGION, SETTINGS, T0, Account, decision
from trainctl.aws.clients import ClientFactory
from trainctl.aws.owners import OwnersOfRecord
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names, tags

DUE = T0 + GRACE + SETTINGS.event_delivery_lag + timedelta(minutes=1)


@pytest.fixture
def account(factory: ClientFactory) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


def owners_told(account: Account, resource_id: str) -> set[str]:
    """Whose owner-filtered subscription received a notice naming the resource."""
    return {
        attributes["owner"]
        for (_, text), attributes in zip(account.notifier.messages, account.notifier.attributes, strict=True)
        if resource_id in text
    }


def recorded_as(account: Account, resource_id: str, owner: str) -> None:
    """What age_guard records when it hears the resource created (tested through its handler below)."""
    OwnersOfRecord(account.factory.dynamodb(), names.LEDGER_TABLE).claim({resource_id: owner}, T0, "age_guard")


def test_a_rewritten_owner_and_ttl_still_tell_the_owner_of_record_at_the_mark_and_at_the_end(
    account: Account,
) -> None:
    volume_id = account.volume()  # Alice's, in scope, attached to nothing
    recorded_as(account, volume_id, "alice")
    account.set_tags(volume_id, **{tags.OWNER: "mallory", tags.TTL: "0s"})
    marked = decision(account.sweep(T0), volume_id)
    assert marked.action == "mark" and marked.also_tell == ("alice",)
    assert "trainctl recorded alice" in marked.detail
    assert owners_told(account, volume_id) == {"alice", "mallory"}
    told_before = len(account.notifier.messages)
    acted = decision(account.sweep(DUE), volume_id)
    assert acted.action == "delete"
    assert {a["owner"] for a in account.notifier.attributes[told_before:]} >= {"alice", "mallory"}


def test_an_owner_changed_since_the_mark_earns_a_fresh_mark_even_when_age_guard_never_heard(
    account: Account,
) -> None:
    """The CreateTags event was lost: the ledger's mark names Alice, the tag now names Mallory."""
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    account.set_tags(volume_id, **{tags.OWNER: "mallory"})
    again = decision(account.sweep(DUE), volume_id)
    assert again.action == "mark" and "its owner changed since it was marked" in again.detail
    assert again.also_tell == ("alice",)  # the owner its first mark was announced to
    assert account.exists(volume_id)


@pytest.mark.parametrize("key", [tags.OWNER, tags.TTL])
def test_age_guard_withdraws_a_mark_when_the_owner_or_ttl_tag_changes(
    account: Account, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    volume_id = account.volume()
    assert decision(account.sweep(T0), volume_id).action == "mark"
    value = "mallory" if key == tags.OWNER else "10d"
    account.set_tags(volume_id, **{key: value})
    request = {
        "resourcesSet": {"items": [{"resourceId": volume_id}]},
        "tagSet": {"items": [{"key": key, "value": value}]},
    }
    told = account.tell_age_guard(monkeypatch, "CreateTags", request, T0 + timedelta(hours=2))
    assert told["status"] == "unmarked"
    assert tags.CLEANUP_AFTER not in {
        t["Key"] for t in account.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0].get("Tags", [])
    }
    after = decision(account.sweep(DUE), volume_id)
    assert after.action != "delete" and account.exists(volume_id)


def test_age_guard_records_the_owner_of_record_once_when_it_hears_a_creation(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume_id = account.ec2.create_volume(Size=10, AvailabilityZone="us-east-1a")["VolumeId"]
    event: dict[str, Any] = load_event("age_guard", "create_volume_iam_user")
    event["detail"]["responseElements"]["volumeId"] = volume_id
    monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
    monkeypatch.setenv("TRAINCTL_ACCOUNT_ID", event["account"])
    handler = load_handler("age_guard")
    monkeypatch.setattr(handler, "client_factory", lambda: account.factory)
    handler.lambda_handler(event, LocalContext(function_name="trainctl-age_guard"))
    owners = OwnersOfRecord(account.factory.dynamodb(), names.LEDGER_TABLE)
    assert owners.read([volume_id]) == {volume_id: "bob"}
    # Another's later claim never overwrites the first.
    owners.claim({volume_id: "mallory"}, T0, "age_guard")
    assert owners.read([volume_id]) == {volume_id: "bob"}


def test_an_unreadable_value_warns_its_owner_once_and_keeps_the_resource(account: Account) -> None:
    """`ttl=forever` (or a created-at from the future) kept a resource silently, forever."""
    volume_id = account.volume(**{tags.TTL: "forever"})
    first = decision(account.sweep(T0), volume_id)
    assert first.action == "keep" and "unreadable" in first.protections and first.outcome == "warned"
    assert owners_told(account, volume_id) == {"alice"}
    told = len(account.notifier.messages)
    for hour in range(1, 4):
        later = decision(account.sweep(T0 + timedelta(hours=hour)), volume_id)
        assert later.action == "keep" and later.outcome == "kept"
    assert len(account.notifier.messages) == told, "told again on a later sweep"
    assert account.exists(volume_id)


def test_a_forged_far_future_mark_is_replaced_by_trainctls_own(account: Account) -> None:
    volume_id = account.volume(**{tags.CLEANUP_AFTER: "8999-01-01T00:00:00Z"})
    replaced = decision(account.sweep(T0), volume_id)
    assert replaced.action == "mark" and replaced.cleanup_after == T0 + GRACE
    assert decision(account.sweep(DUE), volume_id).action == "delete"
