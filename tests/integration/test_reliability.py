"""Faults, throttling and concurrency: the sweep keeps working, reports what failed, and converges."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from botocore.config import Config

from tests.integration.faults import Faults
from tests.integration.fleet import ENFORCING, seed_account, volume_exists
from trainctl.aws.clients import ClientFactory
from trainctl.aws.lease import DynamoDbLease
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.cli import stack_resources
from trainctl.cli.sandbox_fleet import moto_server
from trainctl.core import names
from trainctl.core.clock import fixed_clock
from trainctl.core.settings import SweepSettings
from trainctl.sweep.record import DynamoDbLedger
from trainctl.sweep.run import run_sweep

SETTINGS = ENFORCING
# Few attempts and no client-side rate limiter: these tests are about what happens once retries give up.
QUICK_RETRIES = Config(retries={"mode": "standard", "max_attempts": 3}, disable_request_compression=True)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """moto as a server: an injected answer then means nothing reached it, as with a real throttle."""
    with moto_server():
        yield ClientFactory("us-east-1")


@pytest.fixture
def server_quick(server: ClientFactory) -> ClientFactory:
    return ClientFactory("us-east-1", config=QUICK_RETRIES)


def sweep(factory: ClientFactory, at, settings: SweepSettings = SETTINGS, **kw):
    # The stack's own ledger on the emulator: a later sweep acts only on the marks an earlier one recorded there.
    ledger = DynamoDbLedger(factory.dynamodb(), names.LEDGER_TABLE)
    return run_sweep(factory, settings, fixed_clock(at), ledger=ledger, notifier=InMemoryNotifier(), **kw)


def test_a_throttling_burst_is_absorbed_by_adaptive_retries(server: ClientFactory) -> None:
    factory = server
    account = seed_account(factory)
    sweep(factory, account.t0)
    faults = Faults(factory)
    for operation in ("DescribeVolumes", "DescribeInstances", "DeleteVolume"):
        faults.fail(operation, code="RequestLimitExceeded", status=503, times=2)
    result = sweep(factory, account.after_grace())
    assert faults.injected["DescribeVolumes"] == 2 and faults.injected["DeleteVolume"] == 2
    assert not [d for d in result.decisions if d.outcome == "failed"]
    assert not volume_exists(factory, account.fleet["scratch-1"])


@pytest.mark.parametrize(("code", "status"), [("InternalError", 500), ("Unavailable", 503)])
def test_server_errors_are_retried(server: ClientFactory, code: str, status: int) -> None:
    factory = server
    account = seed_account(factory)
    faults = Faults(factory)
    faults.fail("DescribeSnapshots", code=code, status=status, times=2)
    result = sweep(factory, account.t0)
    assert faults.injected["DescribeSnapshots"] == 2
    assert any(d.resource_type == "snapshot" for d in result.decisions)


def test_a_read_timeout_is_retried(server: ClientFactory) -> None:
    factory = server
    account = seed_account(factory)
    faults = Faults(factory)
    faults.fail("DescribeImages", code="", status=0, times=1, kind="timeout")
    result = sweep(factory, account.t0)
    assert faults.injected["DescribeImages"] == 1
    decisions = {d.resource_id: d for d in result.decisions}
    assert decisions[account.fleet["ami-root"]].protections == ("ami-backed",)  # the images were read after all


def test_throttling_that_never_ends_fails_one_action_and_the_rest_continue_then_converge(
    server_quick: ClientFactory,
) -> None:
    factory = server_quick
    account = seed_account(factory)
    sweep(factory, account.t0)
    faults = Faults(factory)
    faults.fail("DeleteSnapshot", code="RequestLimitExceeded", status=503, times=None)
    result = sweep(factory, account.after_grace())
    failed = [d for d in result.decisions if d.outcome == "failed"]
    snapshots = [
        (d.resource_id, d.action, d.outcome, d.detail) for d in result.decisions if d.resource_type == "snapshot"
    ]
    assert failed and all(d.resource_type == "snapshot" for d in failed), snapshots
    assert all("RequestLimitExceeded" in d.detail for d in failed)
    assert not volume_exists(factory, account.fleet["scratch-1"])  # the volumes went ahead
    # The throttling passes; the next sweep finishes the job.
    healthy = ClientFactory("us-east-1")
    again = sweep(healthy, account.after_grace() + timedelta(hours=1))
    retried = {d.resource_id: d for d in again.decisions}
    for decision in failed:
        assert retried[decision.resource_id].outcome == "done"


def test_ssm_unavailable_protects_running_instances(server_quick: ClientFactory) -> None:
    factory = server_quick
    account = seed_account(factory)
    faults = Faults(factory)
    faults.fail("SendCommand", code="ServiceUnavailable", status=503, times=None)
    # Its instance store alone would keep it from a stop; here the training check has to answer.
    result = sweep(factory, account.t0, SETTINGS.model_copy(update={"stop_instance_store": True}))
    notebook = next(d for d in result.decisions if d.resource_id == account.fleet["forgotten-notebook"])
    assert faults.injected["SendCommand"] >= 1
    assert "training-active" in notebook.protections and "ServiceUnavailable" in notebook.detail
    assert notebook.action == "keep"


def test_two_sweeps_at_the_same_moment_act_on_no_resource_twice(factory: ClientFactory) -> None:
    """The overlap is made, not hoped for: sweep A is held inside its lease while sweep B starts.

    (Racing two threads instead would test moto, whose conditional put is not atomic across threads;
    DynamoDB's is, and that atomicity is what the lease stands on.)
    """
    account = seed_account(factory)
    sweep(factory, account.t0)
    results = []
    inside_lease, let_go = threading.Event(), threading.Event()

    def run_one(own: ClientFactory) -> None:
        results.append(
            run_sweep(
                own,
                SETTINGS,
                fixed_clock(account.after_grace()),
                ledger=DynamoDbLedger(own.dynamodb(), names.LEDGER_TABLE),
                notifier=InMemoryNotifier(),
                lease=DynamoDbLease(own.dynamodb(), names.LEDGER_TABLE),
            )
        )

    def hold(**_: object) -> None:
        inside_lease.set()
        let_go.wait(30)

    first = ClientFactory("us-east-1")
    first.register("before-call.ec2.DescribeVolumes", hold)  # A's first read happens after it took the lease
    holder = threading.Thread(target=run_one, args=(first,))
    holder.start()
    assert inside_lease.wait(30)
    run_one(ClientFactory("us-east-1"))  # B, at the same moment
    let_go.set()
    holder.join()
    acted = [r for r in results if r.decisions]
    idle = [r for r in results if not r.decisions]
    assert len(acted) == 1 and len(idle) == 1
    assert "holds the lease" in idle[0].notes[0]
    assert not volume_exists(factory, account.fleet["scratch-1"])
    # The lease was released: the next sweep runs.
    after = run_sweep(
        factory,
        SETTINGS,
        fixed_clock(account.after_grace() + timedelta(hours=1)),
        ledger=DynamoDbLedger(factory.dynamodb(), names.LEDGER_TABLE),
        notifier=InMemoryNotifier(),
        lease=DynamoDbLease(factory.dynamodb(), names.LEDGER_TABLE),
    )
    assert after.decisions


def test_a_lease_left_by_a_dead_sweep_expires(factory: ClientFactory) -> None:
    stack_resources.ensure_on_emulator(factory, ("us-east-1",))
    at = fixed_clock(__import__("datetime").datetime(2026, 11, 28, 12, 0, tzinfo=__import__("datetime").UTC))()
    dead = DynamoDbLease(factory.dynamodb(), names.LEDGER_TABLE, holder="dead")
    assert dead.acquire(at, timedelta(minutes=16))
    live = DynamoDbLease(factory.dynamodb(), names.LEDGER_TABLE, holder="live")
    assert not live.acquire(at + timedelta(minutes=5), timedelta(minutes=16))
    assert live.acquire(at + timedelta(minutes=17), timedelta(minutes=16))
    dead.release()  # a late release by the old holder does not free the new holder's lease
    assert not DynamoDbLease(factory.dynamodb(), names.LEDGER_TABLE).acquire(
        at + timedelta(minutes=18), timedelta(minutes=16)
    )


def test_a_lost_response_to_a_delete_is_not_reported_as_a_failure(factory: ClientFactory) -> None:
    """In-process, the emulator acts before the injected error replaces its answer: a lost response."""
    account = seed_account(factory)
    sweep(factory, account.t0)
    faults = Faults(factory)
    faults.fail("DeleteVolume", code="InternalError", status=500, times=1)
    result = sweep(factory, account.after_grace())
    assert faults.injected["DeleteVolume"] == 1
    gone = [d for d in result.decisions if "already gone" in d.detail]
    assert len(gone) == 1 and gone[0].outcome == "done"
    assert not [d for d in result.decisions if d.outcome == "failed"]
