"""Adversarial review of 938fa6c (round three, third reviewer): pending marks, owners of record, unwarned values.

Each test is a sequence of people's tag writes, CloudTrail events and sweeps after which a promise of the change
(or of the safety model in ARCHITECTURE.md, points 3, 11 and 13) does not hold. Its docstring gives the sequence,
the promise it breaks, the code at fault and a fix. People act through their own clients (`people`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import load_event
from tests.integration.test_adversary_round3b import DownNotifier, owners_told
from tests.integration.test_sweep_adversary import REGION, SETTINGS, T0, ZONE, Account, decision
from trainctl.aws.clients import ClientFactory
from trainctl.aws.owners import OwnersOfRecord
from trainctl.cli import stack_resources
from trainctl.cli.local_run import LocalContext, load_handler
from trainctl.core import names, tags
from trainctl.core.clock import fixed_clock, format_instant
from trainctl.core.errors import TrainctlError
from trainctl.sweep.run import run_sweep

SPOT_ROLE = "arn:aws:iam::123456789012:role/trainctl-spot-interruption-role"


@pytest.fixture
def account(factory: ClientFactory) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


# ------------------------------------------------------------------------------------------ (d) warned once


def test_hole_an_unreadable_value_whose_unmark_notice_failed_is_never_warned_of(account: Account) -> None:
    """Sequence: Alice's orphaned in-scope volume carries a `trainctl:cleanup-after` (any: trainctl's or a hand's)
    and `trainctl:ttl=forever`. The sweep finds the ttl unreadable: the protection takes the mark off (action
    "unmark", protections unreadable) and the owner's notice, the only word she would get about the value, is
    published while SNS throttles: it fails. `_tell_owners` records failed notices only for marks ("unannounced")
    and warnings ("unwarned"), so the ledger line reads unmark / done / unreadable. Every later sweep keeps the volume
    as unreadable; `_warn_newly_unreadable` reads that newest line, finds `unreadable` in it with an outcome that is
    not "unwarned", and stays silent. The volume is kept forever and Alice never hears why.

    Promise broken (938fa6c, d): "an unreadable value warns its owner once, again only if that warning could not be
    sent". Code at fault: sweep/run.py `_tell_owners` (only `warned` becomes `unwarned`; an unmark carrying the
    unreadable protection whose notice failed stays `done`) and `_warn_newly_unreadable` (any line with
    `unreadable` counts as warned). Fix: a changed decision carrying `unreadable` whose notice failed is recorded
    `unwarned` too (or `_warn_newly_unreadable` treats only a sent `warned`/unreadable-unmark line as the warning).
    """
    volume_id = account.volume(**{tags.TTL: "forever", tags.CLEANUP_AFTER: format_instant(T0 + timedelta(hours=20))})
    with pytest.raises(TrainctlError):
        run_sweep(account.factory, SETTINGS, fixed_clock(T0), ledger=account.ledger, notifier=DownNotifier())
    first = account.ledger.newest([volume_id])[volume_id]
    assert first.action == "unmark" and "unreadable" in first.protections, first
    told_before = len(account.notifier.messages)
    for hour in range(1, 4):
        later = decision(account.sweep(T0 + timedelta(hours=hour)), volume_id)
        assert later.action == "keep" and "unreadable" in later.protections
    assert account.told(volume_id, since=told_before), (
        "the notice naming the unreadable value failed, and no sweep ever warns of it again"
    )


# ------------------------------------------------------------------------------------------ (b) owner of record


def age_guard_hears(
    account: Account,
    monkeypatch: pytest.MonkeyPatch,
    identity: dict[str, Any],
    request: dict[str, Any],
    response: dict[str, Any],
    at: datetime,
) -> dict[str, Any]:
    event: dict[str, Any] = load_event("age_guard", "create_volume_iam_user")
    event["detail"]["userIdentity"] = identity
    event["detail"]["requestParameters"] = request
    event["detail"]["responseElements"] = response
    event["detail"]["eventTime"] = format_instant(at)
    monkeypatch.setenv("TRAINCTL_REGIONS", REGION)
    monkeypatch.setenv("TRAINCTL_ACCOUNT_ID", event["account"])
    module = load_handler("age_guard")
    monkeypatch.setattr(module, "client_factory", lambda: account.factory)
    module.deployed_settings.cache_clear()
    told: dict[str, Any] = module.lambda_handler(event, LocalContext(function_name="trainctl-age_guard"))
    return told


def test_hole_a_resource_trainctl_makes_for_its_owner_has_trainctl_as_owner_of_record(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence: Carol's spot trainer is interrupted; trainctl's spot function saves her data, creating a volume
    (likewise its snapshots, a recovery relaunch, a pre-warm volume) with `trainctl:owner=carol` in the create call's
    own TagSpecifications. CloudTrail hands age_guard that CreateVolume: its principal is trainctl's own role, whose
    Lambda session is the function name, so `_stamp` records `maker_of(principal)` =
    "trainctl-spot_interruption" as owner of record, ignoring the owner the very same signed call wrote. (The same
    happens to every resource a shared CI/automation role makes for someone: the record names the session.)
    Mallory rewrites `trainctl:owner=mallory`, `trainctl:ttl=0s`; the sweep marks the volume and tells Mallory and
    "trainctl-spot_interruption" (a subscription nobody has): Carol never hears her saved data is to be deleted.

    Promise broken (938fa6c, b; safety model 13): "The owner of record is told": the record is meant to be the
    person who made it. Code at fault: age_guard/run.py `_stamp` (`creators = maker_of(principal)` for every
    principal). Fix: the owner tag carried in the create call's own requestParameters (tagSpecificationSet) is the
    creator's word and cannot be a late rewrite: record it first; fall back to maker_of only without one. Before
    938fa6c, the tag as found (carol here) was recorded.
    """
    spec = [
        {
            "ResourceType": "volume",
            "Tags": [{"Key": tags.MANAGED, "Value": "true"}, {"Key": tags.OWNER, "Value": "carol"}],
        }
    ]
    created = datetime.now(UTC).replace(microsecond=0)
    volume_id = account.ec2.create_volume(Size=10, AvailabilityZone=ZONE, TagSpecifications=spec)["VolumeId"]
    identity = {
        "type": "AssumedRole",
        "principalId": "AROAEXAMPLE:trainctl-spot_interruption",
        "arn": "arn:aws:sts::123456789012:assumed-role/trainctl-spot-interruption-role/trainctl-spot_interruption",
        "accountId": "123456789012",
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": SPOT_ROLE, "userName": "trainctl-spot-role"}},
    }
    request = {
        "size": 10,
        "zone": ZONE,
        "tagSpecificationSet": {
            "items": [
                {
                    "resourceType": "volume",
                    "tags": [{"key": tags.MANAGED, "value": "true"}, {"key": tags.OWNER, "value": "carol"}],
                }
            ]
        },
    }
    age_guard_hears(account, monkeypatch, identity, request, {"volumeId": volume_id}, created)
    recorded = OwnersOfRecord(account.factory.dynamodb(), names.LEDGER_TABLE).read([volume_id])
    account.set_tags(volume_id, **{tags.OWNER: "mallory", tags.TTL: "0s", tags.CREATED_AT: format_instant(created)})
    marked = decision(account.sweep(T0), volume_id)
    assert marked.action == "mark"
    assert "carol" in owners_told(account, volume_id), (
        f"owner of record {recorded}: the person whose data it is never hears it is to be deleted"
    )


# ------------------------------------------------------------------------------------------ (a) every pending mark


def test_hole_a_hand_written_mark_at_or_past_expiry_silences_the_ttl_warning(account: Account) -> None:
    """Sequence: Alice's in-scope running instance has a `trainctl:ttl` expiring at T0+30m (inside the warning lead).
    Before trainctl warns, Mallory writes `trainctl:cleanup-after` = expiry + 1h. The sweep at T0 sees a ttl-
    expiring candidate with a pending mark at or after its expiry: `decide` keeps it with "owner warned" (nobody
    was), and `confirm_pending_marks` skips every {ttl-expiring} decision, so the foreign mark is never checked
    against `mark#`: no mark of trainctl's, no notice. Alice's promised warning before expiry never goes out.

    Promise broken (938fa6c, a): "every pending mark on a candidate is checked against the mark trainctl last wrote;
    a foreign one earns trainctl's own fresh mark and a notice" (and safety model 3: a mark is not a tag anyone may
    write). Code at fault: sweep/rules.py `decide` (`mark.at >= expiry` trusts any mark as the warning) and
    `confirm_pending_marks` (exempts ttl-expiring). Fix: check ttl-expiring marks against `mark#` too; a foreign one
    earns the warning mark. (Held: at expiry the foreign mark is distrusted and a full grace follows, so nothing is
    destroyed early; the harm is the lost warning and a detail saying "owner warned".)
    """
    # A running instance CloudWatch says nothing of (moto): not idle, so ttl-expiring is its only reason.
    instance_id = account.instance()
    launched = account.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "LaunchTime"
    ]
    expiry = T0 + timedelta(minutes=30)
    minutes = int((expiry - launched).total_seconds() // 60)
    account.set_tags(instance_id, **{tags.TTL: f"{minutes}m"})
    expiry = launched + timedelta(minutes=minutes)
    account.set_tags(instance_id, **{tags.CLEANUP_AFTER: format_instant(expiry + timedelta(hours=1))})
    seen = decision(account.sweep(T0), instance_id)
    assert "ttl-expiring" in seen.reasons, seen
    assert seen.action == "mark" or account.told(instance_id), (
        f"a foreign mark keeps the ttl warning from ever going out: {seen.action} / {seen.detail}"
    )
