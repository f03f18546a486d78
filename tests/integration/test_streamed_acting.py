"""The acting sweep decides and deletes volumes a batch at a time, while instances and snapshots wait for EC2's
guards. A fresh adversary broke the first version of this in four ways; each is a regression test here.

- A ledger timeout in a later batch, or while deciding on instances and snapshots, crashed the sweep after
  volumes were deleted: nothing recorded, nobody told.
- Inside the deadline margin the sweep went on reading the ledger and writing intent rows.
- Every batch was re-read as soon as it was decided, up to minutes before its deletes under EC2's throttling.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from tests.integration.fleet import ENFORCING, seed_account, volume_exists
from tests.integration.test_sweep_adversary import GRACE, REGION, SETTINGS, T0, Account, in_another_thread
from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.cli import stack_resources
from trainctl.core import tags
from trainctl.core.clock import fixed_clock
from trainctl.sweep import run
from trainctl.sweep.record import InMemoryLedger
from trainctl.sweep.run import run_sweep

DYNAMODB = "https://dynamodb.us-east-1.amazonaws.com/"


@pytest.fixture
def account(factory: ClientFactory) -> Account:
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


@pytest.fixture
def impatient(aws: None) -> Account:
    """The sweep's calls are tried once: a timeout is final, as it is once botocore's retries are spent."""
    factory = ClientFactory(REGION, config=Config(retries={"total_max_attempts": 1}, max_pool_connections=32))
    stack_resources.ensure_on_emulator(factory, (REGION,))
    return Account(factory, ClientFactory(REGION))


def marked_volumes(account: Account, count: int) -> list[str]:
    volumes = [account.volume() for _ in range(count)]
    account.sweep(T0)
    account.sweep(T0 + timedelta(hours=6))
    return volumes


@pytest.mark.parametrize("operation", ["Query", "BatchWriteItem"])
def test_a_ledger_timeout_in_a_later_batch_leaves_every_deletion_told_and_recorded(
    impatient: Account, monkeypatch: pytest.MonkeyPatch, operation: str
) -> None:
    """The second batch's history read (or intent row) times out after the first batch's volume is deleted."""
    account = impatient
    volumes = marked_volumes(account, 3)
    before = len(account.notifier.messages)
    monkeypatch.setattr(run, "VOUCH_BATCH", 1)
    seen: list[str] = []

    def time_out(request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        if not (target.decode() if isinstance(target, bytes) else str(target)).endswith("." + operation):
            return
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        if operation == "Query" and "resource#vol-" in body:
            key = json.loads(body)["ExpressionAttributeValues"][":pk"]["S"]
        elif operation == "BatchWriteItem" and '"intended"' in body:
            key = body
        else:
            return
        if key not in seen:
            seen.append(key)
        if seen.index(key) >= 1:
            raise ReadTimeoutError(endpoint_url=DYNAMODB)

    account.factory.register("before-send", time_out, first=True)
    result = account.sweep(T0 + GRACE + timedelta(hours=1))
    gone = [v for v in volumes if not account.exists(v)]
    assert gone, "the first batch went ahead"
    assert len(gone) < len(volumes)
    for volume_id in gone:
        assert account.told(volume_id, since=before)
    kept = {d.resource_id: d for d in result.decisions if d.resource_id in volumes and d.resource_id not in gone}
    assert all(d.action != "delete" or d.outcome != "done" for d in kept.values())
    assert all(any(word in d.detail for word in ("could not", "ReadTimeoutError")) for d in kept.values())


def test_a_ledger_timeout_while_deciding_on_instances_and_snapshots_still_tells_of_the_volumes_deleted(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = seed_account(factory)
    ledger, notifier = InMemoryLedger(), InMemoryNotifier()
    run_sweep(factory, ENFORCING, fixed_clock(account.t0), ledger=ledger, notifier=notifier)
    marked = {d.resource_id: d.resource_type for d in ledger.sweeps[-1][3] if d.action == "mark"}
    assert {"volume", "instance", "snapshot"} <= set(marked.values())
    read = ledger.histories

    def histories(resource_ids: Sequence[str]) -> dict[str, Any]:
        if any(marked.get(r) in ("instance", "snapshot") for r in resource_ids):
            raise ReadTimeoutError(endpoint_url=DYNAMODB)
        return read(resource_ids)

    monkeypatch.setattr(ledger, "histories", histories)
    sweeps, told = len(ledger.sweeps), len(notifier.messages)
    # InMemoryLedger raises what it is given, as no real ledger does: the sweep records, tells, then fails.
    with pytest.raises(ReadTimeoutError):
        run_sweep(factory, ENFORCING, fixed_clock(account.after_grace()), ledger=ledger, notifier=notifier)
    gone = [r for r, kind in marked.items() if kind == "volume" and not volume_exists(factory, r)]
    assert gone
    assert len(ledger.sweeps) == sweeps + 1 and len(notifier.messages) > told
    recorded = {d.resource_id: d for d in ledger.sweeps[-1][3]}
    assert all(recorded[r].outcome == "done" for r in gone)
    untouched = [r for r, kind in marked.items() if kind != "volume"]
    assert all(recorded[r].outcome == "failed" and "nothing done" in recorded[r].detail for r in untouched)


def test_inside_the_deadline_margin_the_sweep_reads_no_more_histories(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The margin is reached while the first batch's intent is written: no later batch is read or recorded."""
    volumes = marked_volumes(account, 5)
    monkeypatch.setattr(run, "VOUCH_BATCH", 1)
    late = threading.Event()
    after: list[str] = []
    lock = threading.Lock()

    def intent(params: dict[str, Any], **_: Any) -> None:
        if "intended" in json.dumps(params):
            late.set()

    def ledger_call(model: Any, **_: Any) -> None:
        if late.is_set() and model.name in ("Query", "BatchWriteItem"):
            with lock:
                after.append(model.name)

    account.factory.register("provide-client-params.dynamodb.BatchWriteItem", intent)
    account.factory.register("before-call.dynamodb", ledger_call)
    result = run_sweep(
        account.factory,
        SETTINGS,
        fixed_clock(T0 + GRACE + timedelta(hours=1)),
        ledger=account.ledger,
        notifier=account.notifier,
        remaining_ms=lambda: 0 if late.is_set() else 10**9,
    )
    assert sorted(d.outcome for d in result.decisions if d.resource_id in volumes) == ["deferred"] * 5
    assert all(account.exists(v) for v in volumes)
    # The first batch's intent, then the sweep's record: no history read after the margin.
    assert after == ["BatchWriteItem", "BatchWriteItem"]


def test_a_mark_taken_away_while_earlier_deletes_run_is_seen_by_the_re_read(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob takes his volume back while the batch before it is being deleted: it is re-read after, and kept."""
    volumes = marked_volumes(account, 2)
    monkeypatch.setattr(run, "VOUCH_BATCH", 1)
    re_read = {v: threading.Event() for v in volumes}
    deleted: list[str] = []

    def reading(params: dict[str, Any], **_: Any) -> None:
        for name_values in params.get("Filters", []):
            for value in name_values["Values"] if name_values["Name"] == "volume-id" else ():
                if value in re_read:
                    re_read[value].set()

    def deleting(params: dict[str, Any], **_: Any) -> None:
        deleted.append(params["VolumeId"])
        if len(deleted) == 1:
            other = next(v for v in volumes if v != params["VolumeId"])
            re_read[other].wait(timeout=2)  # before, the other was re-read at once; now only after this delete
            in_another_thread(lambda: account.ec2.delete_tags(Resources=[other], Tags=[{"Key": tags.CLEANUP_AFTER}]))()

    account.factory.register("provide-client-params.ec2.DescribeVolumes", reading)
    account.factory.register("provide-client-params.ec2.DeleteVolume", deleting)
    result = account.sweep(T0 + GRACE + timedelta(hours=1), SETTINGS.model_copy(update={"action_concurrency": 1}))
    bob = next(v for v in volumes if v != deleted[0])
    assert account.exists(bob)
    assert next(d for d in result.decisions if d.resource_id == bob).outcome == "skipped"
