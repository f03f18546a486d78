"""Acting: failures are reported as failed, the rest continue, persistence comes first, the deadline is kept."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from tests.integration.fleet import ENFORCING, instance_state, seed_account, volume_exists
from trainctl.aws.clients import ClientFactory
from trainctl.aws.notifications import InMemoryNotifier
from trainctl.core.clock import fixed_clock
from trainctl.sweep import run
from trainctl.sweep.record import InMemoryLedger
from trainctl.sweep.run import run_sweep

SETTINGS = ENFORCING


def due_after(t0: datetime) -> datetime:
    """The first moment a mark written at t0 may be acted on: grace and delivery lag over, by a minute."""
    return t0 + SETTINGS.grace_period + SETTINGS.event_delivery_lag + timedelta(minutes=1)


def answer(factory: ClientFactory, operation: str, *, status: int, body: dict[str, Any], only: set[str] | None = None):
    """Short-circuit one EC2 operation with a canned answer, as a failing or lying endpoint would."""

    def handler(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        target = params.get("body", {}).get("VolumeId") or params.get("body", {}).get("InstanceId")
        if only is not None and target not in only:
            return None
        return AWSResponse("https://ec2", status, {}, None), {**body, "ResponseMetadata": {"HTTPStatusCode": status}}

    factory.register(f"before-call.ec2.{operation}", handler)


def sweep_twice(factory: ClientFactory, t0, **kw: Any):
    ledger, notifier = InMemoryLedger(), InMemoryNotifier()
    run_sweep(factory, SETTINGS, fixed_clock(t0), ledger=ledger, notifier=notifier)
    return (
        run_sweep(factory, SETTINGS, fixed_clock(due_after(t0)), ledger=ledger, notifier=notifier, **kw),
        ledger,
        notifier,
    )


def outcome(result, resource_id: str) -> tuple[str, str]:
    decision = next(d for d in result.decisions if d.resource_id == resource_id)
    return decision.outcome, decision.detail


def test_a_failed_action_is_reported_failed_and_the_others_continue(factory: ClientFactory) -> None:
    account = seed_account(factory)
    victim = account.fleet["scratch-1"]
    answer(
        factory, "DeleteVolume", status=400, body={"Error": {"Code": "VolumeInUse", "Message": "in use"}}, only={victim}
    )
    result, ledger, notifier = sweep_twice(factory, account.t0)
    state, detail = outcome(result, victim)
    assert state == "failed" and "VolumeInUse" in detail
    assert volume_exists(factory, victim)
    assert outcome(result, account.fleet["scratch-2"])[0] == "done"
    assert not volume_exists(factory, account.fleet["scratch-2"])
    # The failure reaches the ledger and the message.
    recorded = {d.resource_id: d.outcome for d in ledger.sweeps[-1][3]}
    assert recorded[victim] == "failed"
    assert any(victim in message for _, message in notifier.messages)


def test_an_action_that_did_not_take_effect_is_reported_failed_after_the_re_read(factory: ClientFactory) -> None:
    account = seed_account(factory)
    victim = account.fleet["scratch-1"]
    # The endpoint says yes but does nothing: only the re-read can tell.
    answer(factory, "DeleteVolume", status=200, body={}, only={victim})
    result, _, _ = sweep_twice(factory, account.t0)
    state, detail = outcome(result, victim)
    assert state == "failed" and "still available after delete" in detail


def test_an_instance_is_kept_when_its_persistent_volume_cannot_be_detached_from_its_fate(
    factory: ClientFactory,
) -> None:
    account = seed_account(factory)
    answer(
        factory,
        "ModifyInstanceAttribute",
        status=403,
        body={"Error": {"Code": "UnauthorizedOperation", "Message": "no"}},
    )
    result, _, _ = sweep_twice(factory, account.t0)
    state, detail = outcome(result, account.fleet["stopped-experiment"])
    assert state == "failed" and "instance kept" in detail
    assert instance_state(factory, account.fleet["stopped-experiment"]) == "stopped"
    assert volume_exists(factory, account.fleet["experiment-data"])


def test_the_sweep_stops_before_the_lambda_deadline_and_the_next_one_resumes(factory: ClientFactory) -> None:
    account = seed_account(factory)
    result, ledger, _ = sweep_twice(factory, account.t0, remaining_ms=lambda: 10_000)
    deferred = [d for d in result.decisions if d.outcome == "deferred"]
    assert any(d.destructive for d in deferred)
    assert not [d for d in result.decisions if d.outcome == "done"]  # nothing started past the margin
    assert volume_exists(factory, account.fleet["scratch-1"])
    assert any("next sweep resumes" in note for note in result.notes)
    resumed = run_sweep(
        factory,
        SETTINGS,
        fixed_clock(due_after(account.t0) + timedelta(minutes=1)),
        ledger=ledger,
        notifier=InMemoryNotifier(),
    )
    assert outcome(resumed, account.fleet["scratch-1"])[0] == "done"
    assert not volume_exists(factory, account.fleet["scratch-1"])


def test_marks_go_out_in_one_call_per_region_and_instant(factory: ClientFactory) -> None:
    account = seed_account(factory)
    before = factory.calls.by_operation.copy()
    result = run_sweep(factory, SETTINGS, fixed_clock(account.t0), ledger=InMemoryLedger(), notifier=InMemoryNotifier())
    calls = factory.calls.by_operation - before
    marks = [d for d in result.decisions if d.action == "mark"]
    assert len(marks) > 5
    assert calls["ec2:CreateTags"] == len({(d.region, d.cleanup_after) for d in marks})


def stopped_managed_instances(factory: ClientFactory, count: int) -> list[str]:
    ec2 = factory.ec2("us-east-1")
    launched = ec2.run_instances(
        ImageId="ami-0abcdef1234567890",
        MinCount=count,
        MaxCount=count,
        InstanceType="g5.xlarge",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "trainctl:managed", "Value": "true"}]}],
    )
    ids = [i["InstanceId"] for i in launched["Instances"]]
    ec2.stop_instances(InstanceIds=ids)
    return ids


def test_instances_are_acted_on_in_one_call_and_a_refused_batch_falls_back_to_each(factory: ClientFactory) -> None:
    stopped = stopped_managed_instances(factory, 5)
    before = factory.calls.by_operation["ec2:TerminateInstances"]
    result, _, _ = sweep_twice(factory, datetime.now(UTC) + timedelta(days=8))
    assert factory.calls.by_operation["ec2:TerminateInstances"] - before == 1
    assert all(instance_state(factory, i) == "terminated" for i in stopped)
    assert {d.outcome for d in result.decisions if d.resource_id in stopped} == {"done"}


def test_one_refused_instance_does_not_hold_back_the_batch(factory: ClientFactory) -> None:
    stopped = stopped_managed_instances(factory, 3)
    refused = stopped[0]

    def refuse(params: dict[str, Any], **_: Any):
        ids = [v for k, v in params.get("body", {}).items() if k.startswith("InstanceId")]
        if refused in ids:
            body = {"Error": {"Code": "UnauthorizedOperation", "Message": "denied by IAM"}}
            return AWSResponse("https://ec2", 403, {}, None), {**body, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return None

    factory.register("before-call.ec2.TerminateInstances", refuse)
    result, _, _ = sweep_twice(factory, datetime.now(UTC) + timedelta(days=8))
    outcomes = {d.resource_id: d for d in result.decisions if d.resource_id in stopped}
    assert outcomes[refused].outcome == "failed" and "UnauthorizedOperation" in outcomes[refused].detail
    assert instance_state(factory, refused) == "stopped"
    for other in stopped[1:]:
        assert outcomes[other].outcome == "done" and instance_state(factory, other) == "terminated"


def test_volume_deletes_start_while_later_volumes_are_still_being_vouched_for(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Volumes go a batch at a time: each batch's marks are vouched for and its intent recorded before its own
    deletes, and those deletes do not wait for the histories of the batches after it (they drain EC2's bucket).
    Before, every history was read before the first delete: the last read here would wait for a delete in vain."""
    account = seed_account(factory)
    monkeypatch.setattr(run, "VOUCH_BATCH", 1)
    ledger, notifier = InMemoryLedger(), InMemoryNotifier()
    run_sweep(factory, SETTINGS, fixed_clock(account.t0), ledger=ledger, notifier=notifier)
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    deleted = threading.Event()
    volumes = [d.resource_id for d in ledger.sweeps[-1][3] if d.resource_type == "volume" and d.action == "mark"]
    assert len(volumes) >= 2

    def note(kind: str, resource_id: str) -> None:
        with lock:
            events.append((kind, resource_id))

    def delete_seen(params: dict[str, Any], **_: Any) -> None:
        note("delete", params["VolumeId"])
        deleted.set()

    factory.register("provide-client-params.ec2.DeleteVolume", delete_seen)
    read, intended = ledger.histories, ledger.record_intent

    def histories(resource_ids: Sequence[str]) -> dict[str, Any]:
        if resource_ids and resource_ids[-1] == volumes[-1]:
            deleted.wait(timeout=10)  # the last volume's history: an earlier volume's delete should be under way
        for resource_id in resource_ids:
            note("history", resource_id)
        return read(resource_ids)

    def record_intent(sweep_id: str, at: datetime, decisions: Sequence[Any]) -> None:
        for decision in decisions:
            note("intent", decision.resource_id)
        intended(sweep_id, at, decisions)

    monkeypatch.setattr(ledger, "histories", histories)
    monkeypatch.setattr(ledger, "record_intent", record_intent)
    result = run_sweep(factory, SETTINGS, fixed_clock(due_after(account.t0)), ledger=ledger, notifier=notifier)
    assert {d.resource_id for d in result.decisions if d.outcome == "done"} >= set(volumes)
    first_delete = events.index(next(e for e in events if e[0] == "delete"))
    assert events.index(("history", volumes[-1])) > first_delete
    for volume_id in volumes:
        assert events.index(("history", volume_id)) < events.index(("intent", volume_id))
        assert events.index(("intent", volume_id)) < events.index(("delete", volume_id))


def test_a_crash_while_volumes_are_vouched_for_touches_no_instance_or_snapshot(
    factory: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Volumes are decided in the background while instances and snapshots wait: if deciding the first batch fails
    in a way nobody foresaw, the sweep stops there, before any instance or snapshot is touched."""
    account = seed_account(factory)
    ledger, notifier = InMemoryLedger(), InMemoryNotifier()
    run_sweep(factory, SETTINGS, fixed_clock(account.t0), ledger=ledger, notifier=notifier)
    marked = {d.resource_id: d.resource_type for d in ledger.sweeps[-1][3] if d.action == "mark"}
    assert {"volume", "instance", "snapshot"} <= set(marked.values())
    read = ledger.histories

    def histories(resource_ids: Sequence[str]) -> dict[str, Any]:
        if any(marked.get(r) == "volume" for r in resource_ids):
            raise RuntimeError("a fault nobody foresaw")
        return read(resource_ids)

    monkeypatch.setattr(ledger, "histories", histories)
    destructive: list[str] = []
    for operation in ("TerminateInstances", "StopInstances", "DeleteSnapshot", "DeleteVolume"):
        factory.register(f"provide-client-params.ec2.{operation}", lambda params, **_: destructive.append(str(params)))
    with pytest.raises(RuntimeError, match="nobody foresaw"):
        run_sweep(factory, SETTINGS, fixed_clock(account.after_grace()), ledger=ledger, notifier=notifier)
    assert destructive == []
