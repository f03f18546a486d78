"""A volume the pre-warm workflow restored from a snapshot waits unattached while EBS initialises it, for up to the
workflow's longest wait. Swept on the hourly cadence with a grace shorter than that wait (a user's setting; the
sandbox's is two hours), it was marked at the first sweep and deleted mid-initialisation while the workflow still
waited on it. Now it is protected as `pre-warming` until the workflow has reported (trainctl:prewarmed-at) or its
longest wait since EC2's own creation time has passed: a forged role tag buys at most that bound.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.test_sweep_adversary import SETTINGS, Account
from trainctl.aws.clients import ClientFactory
from trainctl.cli import stack_resources
from trainctl.core import tags
from trainctl.core.clock import format_instant
from trainctl.core.protections import PREWARM_LONGEST_WAIT, Protection

REGION = "us-east-1"
HOUR = timedelta(hours=1)
SHORT_GRACE = SETTINGS.model_copy(update={"grace_period": HOUR})


@pytest.fixture
def account(factory: ClientFactory) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


def restored(account: Account, **extra: str) -> str:
    """What the workflow creates: in scope, its role, its source; no trainctl:prewarmed-at until it reports."""
    return account.volume(
        **{tags.ROLE: tags.PREWARMED_VOLUME_ROLE, tags.PREWARMED_FROM: "snap-0123456789abcdef0", **extra}
    )


def test_a_volume_still_initialising_is_never_marked_or_deleted_however_short_the_grace(account: Account) -> None:
    volume_id = restored(account)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    hours = int(PREWARM_LONGEST_WAIT / HOUR) - 1
    for hour in range(hours):
        result = account.sweep(start + hour * HOUR, SHORT_GRACE)
        decision = next(d for d in result.decisions if d.resource_id == volume_id)
        assert decision.action == "keep", f"hour {hour}: {decision.action}"
        assert Protection.PREWARMING in decision.protections
    assert account.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    tags_now = account.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0].get("Tags", [])
    assert tags.CLEANUP_AFTER not in {t["Key"] for t in tags_now}


def test_past_the_longest_wait_a_forgotten_restore_is_swept_like_any_volume(account: Account) -> None:
    # A failed run leaves its volume without trainctl:prewarmed-at: kept only for the workflow's longest wait.
    volume_id = restored(account)
    after = datetime.now(UTC).replace(microsecond=0) + PREWARM_LONGEST_WAIT + timedelta(minutes=10)
    result = account.sweep(after, SHORT_GRACE)
    decision = next(d for d in result.decisions if d.resource_id == volume_id)
    assert decision.action == "mark"
    assert Protection.PREWARMING not in decision.protections


def test_a_reported_restore_is_swept_like_any_volume(account: Account) -> None:
    # The workflow reported: the volume is ready, and an unattached one gets the usual mark and grace.
    volume_id = restored(account, **{tags.PREWARMED_AT: format_instant(datetime.now(UTC))})
    result = account.sweep(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10), SHORT_GRACE)
    decision = next(d for d in result.decisions if d.resource_id == volume_id)
    assert decision.action == "mark"
    assert Protection.PREWARMING not in decision.protections
