"""Carrying out a sweep plan: marks in batches, destructive actions concurrently, then a re-read of each."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import zip_longest
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws.clients import ClientFactory, error_code
from trainctl.aws.keep_volumes import keep_volumes
from trainctl.aws.utilisation import volumes_attached_since
from trainctl.core import tags
from trainctl.core.clock import Clock, format_instant, system_clock
from trainctl.core.errors import TrainctlError
from trainctl.core.permissions import needs
from trainctl.sweep.rules import Decision

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

# Mark, unmark, act, and read back what was done.
PERMISSIONS = needs(
    "ec2:CreateTags",
    "ec2:DeleteTags",
    "ec2:DeleteSnapshot",
    "ec2:DeleteVolume",
    "ec2:StopInstances",
    "ec2:TerminateInstances",
    "ec2:DescribeInstances",
    "ec2:DescribeVolumes",
    "ec2:DescribeSnapshots",
)

TAG_BATCH = 500
INSTANCE_BATCH = 100
READ_BATCH = 200
# Remaining milliseconds of the Lambda invocation, or None outside Lambda.
RemainingTime = Callable[[], int] | None

_GONE_CODES = {"InvalidVolume.NotFound", "InvalidSnapshot.NotFound", "InvalidInstanceID.NotFound"}
_EXPECTED_INSTANCE_STATES = {"terminate": {"shutting-down", "terminated"}, "stop": {"stopping", "stopped"}}


def _why(exc: Exception) -> str:
    return error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


DEFERRED = "stopped before the Lambda deadline"


def deferred(decision: Decision) -> Decision:
    """Left for the next sweep, untouched: its mark is in its tags."""
    return replace(decision, outcome="deferred", detail=f"{decision.detail}; {DEFERRED}")


def interleaved(decisions: Sequence[Decision]) -> list[Decision]:
    """One of each (region, type) in turn: EC2 throttles per region and API, so DeleteVolume and DeleteSnapshot
    calls, or two regions' calls, drain separate buckets at once instead of queueing behind each other."""
    groups: dict[tuple[str, str], list[Decision]] = defaultdict(list)
    for decision in decisions:
        groups[(decision.region, decision.resource_type)].append(decision)
    rounds = zip_longest(*groups.values())
    return [decision for turn in rounds for decision in turn if decision is not None]


class SweepExecutor:
    def __init__(
        self,
        factory: ClientFactory,
        *,
        concurrency: int,
        remaining_ms: RemainingTime = None,
        deadline_margin_ms: int = 30_000,
        grace_period: timedelta = timedelta(hours=24),
        clock: Clock = system_clock,
    ) -> None:
        self._factory = factory
        self._concurrency = concurrency
        self._remaining_ms = remaining_ms
        self._margin_ms = deadline_margin_ms
        # Where the ledger did not say when a mark was written, it was written a grace period before it falls due.
        self._grace_period = grace_period
        # Read when the metrics are: a sweep takes minutes, and EBS keeps publishing meanwhile.
        self._clock = clock

    def out_of_time(self) -> bool:
        """Inside the deadline margin: what is left is deferred to the next sweep, untouched."""
        return self._remaining_ms is not None and self._remaining_ms() < self._margin_ms

    def execute(self, decisions: Sequence[Decision]) -> list[Decision]:
        return self.execute_batches([decisions])

    def execute_batches(self, batches: Iterable[Sequence[Decision]]) -> list[Decision]:
        """Act on each batch as it comes: its storage deletes start while later batches are still being decided.

        A batch is re-read only once the deletes before it are nearly done, so what a person changed meanwhile is
        seen: the re-read comes at most one batch's deletes before the resource's own, however EC2 paces them.
        """
        by_id: dict[str, Decision] = {}
        given: list[Decision] = []
        destructive: list[Decision] = []
        waiting: deque[list[Decision]] = deque()  # decided and recorded, not yet re-read
        in_flight: set[Future[Decision]] = set()

        def settle(done: Iterable[Future[Decision]]) -> None:
            for future in done:
                in_flight.discard(future)
                result = future.result()
                by_id[result.resource_id] = result

        def start_ready(pool: ThreadPoolExecutor, *, until_all_started: bool) -> None:
            settle([future for future in in_flight if future.done()])
            while waiting:
                if len(in_flight) >= self._concurrency:
                    if not until_all_started:
                        return
                    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    settle(finished)
                    continue
                # EBS has no batch delete: one call per volume or snapshot, in parallel.
                storage = interleaved(self._recheck(waiting.popleft(), by_id))
                in_flight.update(pool.submit(self._act, d) for d in storage)

        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            for batch in batches:
                by_id.update((d.resource_id, d) for d in batch)
                given.extend(batch)
                self._tag_phase(by_id, [d for d in batch if d.action == "mark"], mark=True)
                self._tag_phase(by_id, [d for d in batch if d.action == "unmark"], mark=False)
                # Deferred before it came (the deadline): passed through, nothing read or done.
                mine = [d for d in batch if d.destructive and d.outcome == "planned"]
                destructive.extend(mine)
                waiting.append([d for d in mine if d.resource_type != "instance"])
                start_ready(pool, until_all_started=False)
            start_ready(pool, until_all_started=True)
            settle(list(in_flight))
            # Re-read after the storage deletes, which take minutes on a big fleet: just before the instances.
            instances = self._recheck([d for d in destructive if d.resource_type == "instance"], by_id)
            # Persistent volumes are kept out of their instance's fate first, instance by instance.
            ready = []
            for result in pool.map(self._prepare_instance, instances):
                by_id[result.resource_id] = result
                if result.outcome == "planned":
                    ready.append(result)
        for result in self._act_on_instances(ready):
            by_id[result.resource_id] = result
        self._verify([by_id[d.resource_id] for d in destructive if by_id[d.resource_id].outcome == "requested"], by_id)
        for decision in given:
            if decision.action == "keep" and by_id[decision.resource_id].outcome == "planned":
                by_id[decision.resource_id] = replace(decision, outcome="kept")
        return [by_id[d.resource_id] for d in given]

    def _tag_phase(self, by_id: dict[str, Decision], decisions: Sequence[Decision], *, mark: bool) -> None:
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for decision in decisions:
            value = format_instant(decision.cleanup_after) if mark and decision.cleanup_after else ""
            groups[(decision.region, value)].append(decision.resource_id)
        for (region, value), ids in groups.items():
            ec2 = self._factory.ec2(region)
            for chunk in _chunks(ids, TAG_BATCH):
                if self.out_of_time():
                    self._set(by_id, chunk, "deferred", DEFERRED)
                    continue
                try:
                    self._write_mark(ec2, list(chunk), value, mark=mark)
                    self._set(by_id, chunk, "done")
                except (ClientError, BotoCoreError):
                    # One resource gone or refused fails the whole batch: the others are tried one by one.
                    for resource_id in chunk:
                        try:
                            self._write_mark(ec2, [resource_id], value, mark=mark)
                            self._set(by_id, [resource_id], "done")
                        except (ClientError, BotoCoreError) as exc:
                            call = "CreateTags" if mark else "DeleteTags"
                            self._set(by_id, [resource_id], "failed", f"{call}: {_why(exc)}")

    @staticmethod
    def _write_mark(ec2: EC2Client, resource_ids: list[str], value: str, *, mark: bool) -> None:
        if mark:
            ec2.create_tags(Resources=resource_ids, Tags=[{"Key": tags.CLEANUP_AFTER, "Value": value}])
        else:
            ec2.delete_tags(Resources=resource_ids, Tags=[{"Key": tags.CLEANUP_AFTER}])

    @staticmethod
    def _set(by_id: dict[str, Decision], ids: Iterable[str], outcome: str, note: str = "") -> None:
        for resource_id in ids:
            decision = by_id[resource_id]
            detail = f"{decision.detail}; {note}" if note else decision.detail
            by_id[resource_id] = replace(decision, outcome=outcome, detail=detail)

    def _prepare_instance(self, decision: Decision) -> Decision:
        if self.out_of_time():
            return deferred(decision)
        if decision.action == "terminate" and decision.keep_volumes:
            ec2 = self._factory.ec2(decision.region)
            if not self._keep_persistent_volumes(ec2, decision):
                return replace(
                    decision,
                    outcome="failed",
                    detail=decision.detail + "; could not clear DeleteOnTermination on a persistent volume, "
                    "instance kept",
                )
        return decision

    def _act_on_instances(self, decisions: Sequence[Decision]) -> list[Decision]:
        """One TerminateInstances/StopInstances call per region, action and batch; if EC2 refuses a
        batch (one bad instance fails them all), each instance is tried alone so the rest go ahead."""
        groups: dict[tuple[str, str, bool], list[Decision]] = defaultdict(list)
        for decision in decisions:
            groups[(decision.region, decision.action, decision.hibernate)].append(decision)
        results: list[Decision] = []
        for (region, action, hibernate), members in groups.items():
            ec2 = self._factory.ec2(region)
            for start in range(0, len(members), INSTANCE_BATCH):
                batch = members[start : start + INSTANCE_BATCH]
                if self.out_of_time():
                    results.extend(deferred(d) for d in batch)
                    continue
                try:
                    ids = [d.resource_id for d in batch]
                    if action == "terminate":
                        ec2.terminate_instances(InstanceIds=ids)
                    else:
                        ec2.stop_instances(InstanceIds=ids, Hibernate=hibernate)
                    results.extend(replace(d, outcome="requested") for d in batch)
                except (ClientError, BotoCoreError):
                    results.extend(self._act(d) for d in batch)
        return results

    def _act(self, decision: Decision) -> Decision:
        if self.out_of_time():
            return deferred(decision)
        # A client per API: EC2 throttles each API apart, and adaptive retries slow a whole client once throttled.
        ec2 = self._factory.ec2(decision.region, lane=f"{decision.action}-{decision.resource_type}")
        try:
            if decision.action == "delete" and decision.resource_type == "volume":
                ec2.delete_volume(VolumeId=decision.resource_id)
            elif decision.action == "delete" and decision.resource_type == "snapshot":
                ec2.delete_snapshot(SnapshotId=decision.resource_id)
            elif decision.action == "stop":
                ec2.stop_instances(InstanceIds=[decision.resource_id], Hibernate=decision.hibernate)
            elif decision.action == "terminate":
                # Persistent volumes were already kept out of its fate by _prepare_instance.
                ec2.terminate_instances(InstanceIds=[decision.resource_id])
            else:
                raise ValueError(f"no executor for {decision.action} on {decision.resource_type}")
        except ClientError as exc:
            if error_code(exc) in _GONE_CODES:
                # A retry after a lost response finds the work already done: that is success.
                return replace(decision, outcome="done", detail=f"{decision.detail}; already gone")
            return replace(decision, outcome="failed", detail=f"{decision.detail}; {error_code(exc)}")
        except BotoCoreError as exc:
            # A timeout once the retries are spent: the call may or may not have taken; the re-read will tell.
            return replace(decision, outcome="requested", detail=f"{decision.detail}; {_why(exc)}")
        return replace(decision, outcome="requested")

    @staticmethod
    def _keep_persistent_volumes(ec2: EC2Client, decision: Decision) -> bool:
        return keep_volumes(ec2, decision.resource_id, decision.keep_volumes)

    def _verify(self, requested: Sequence[Decision], by_id: dict[str, Decision]) -> None:
        """Re-read what was acted on: a request that did not take effect is reported as failed."""
        groups: dict[tuple[str, str], list[Decision]] = defaultdict(list)
        for decision in requested:
            groups[(decision.region, decision.resource_type)].append(decision)
        for (region, resource_type), decisions in groups.items():
            ec2 = self._factory.ec2(region, lane=f"read-{resource_type}")
            ids = [d.resource_id for d in decisions]
            try:
                states = self._read_states(ec2, resource_type, ids)
            except (ClientError, BotoCoreError) as exc:
                for decision in decisions:
                    by_id[decision.resource_id] = replace(
                        decision, outcome="unverified", detail=f"{decision.detail}; re-read failed: {_why(exc)}"
                    )
                self._close_marks(region, decisions, by_id)
                continue
            for decision in decisions:
                state = states[decision.resource_id][0] if decision.resource_id in states else None
                if resource_type == "instance":
                    ok = state is None or state in _EXPECTED_INSTANCE_STATES[decision.action]
                else:
                    ok = state is None or state in ("deleting", "deleted")
                by_id[decision.resource_id] = replace(
                    decision,
                    outcome="done" if ok else "failed",
                    detail=decision.detail if ok else f"{decision.detail}; still {state} after {decision.action}",
                )
            self._close_marks(region, decisions, by_id)

    def _close_marks(self, region: str, decisions: Sequence[Decision], by_id: dict[str, Decision]) -> None:
        """A stopped instance lives on: its kept promise is taken off it, or the next sweep would announce the mark's
        withdrawal as news. A new reason (stopped too long) earns a new mark and a new notice. An unverified stop
        too: if it did not take, the next sweep sees the instance running and marks it afresh."""
        stopped = [
            d.resource_id
            for d in decisions
            if d.action == "stop" and by_id[d.resource_id].outcome in ("done", "unverified")
        ]
        ec2 = self._factory.ec2(region)
        for chunk in _chunks(stopped, TAG_BATCH):
            try:
                self._write_mark(ec2, list(chunk), "", mark=False)
            except (ClientError, BotoCoreError):
                # One instance refused fails the whole call: the others are tried one by one.
                for resource_id in chunk:
                    try:
                        self._write_mark(ec2, [resource_id], "", mark=False)
                    except (ClientError, BotoCoreError) as exc:
                        outcome = by_id[resource_id].outcome
                        self._set(by_id, [resource_id], outcome, f"its mark could not be removed ({_why(exc)})")

    def _recheck(self, destructive: Sequence[Decision], by_id: dict[str, Decision]) -> list[Decision]:
        """Re-read state and mark just before acting: a resource started, attached or unmarked since the sweep
        read it (a person, or age_guard hearing them) is left alone."""
        groups: dict[tuple[str, str], list[Decision]] = defaultdict(list)
        for decision in destructive:
            groups[(decision.region, decision.resource_type)].append(decision)
        still: list[Decision] = []
        for (region, resource_type), members in groups.items():
            try:
                ec2 = self._factory.ec2(region, lane=f"read-{resource_type}")  # not behind a throttled delete
                now_seen = self._read_states(ec2, resource_type, [d.resource_id for d in members])
            except (ClientError, BotoCoreError) as exc:
                now_seen = {}
                why = f"could not be re-read before acting ({_why(exc)})"
            else:
                why = ""
            for decision in members:
                state, mark = now_seen.get(decision.resource_id, ("", None))
                expected = format_instant(decision.cleanup_after) if decision.cleanup_after else None
                if why or (decision.seen_state and state != decision.seen_state) or mark != expected:
                    change = why or ("now " + (state or "gone") if state != decision.seen_state else "its mark changed")
                    by_id[decision.resource_id] = replace(
                        decision,
                        action="keep",
                        keep_volumes=(),
                        outcome="skipped",
                        detail=f"{decision.detail}; {change} since the sweep read it: nothing done",
                    )
                else:
                    still.append(decision)
        return self._withdraw_used_volumes(still, by_id)

    def _withdraw_used_volumes(self, destructive: Sequence[Decision], by_id: dict[str, Decision]) -> list[Decision]:
        """A volume EBS reported metrics for since its mark was attached meanwhile, whether or not CloudTrail has
        told trainctl yet: its mark is withdrawn. Metrics that cannot be read keep the volume, as a failure does."""
        volumes = [d for d in destructive if d.resource_type == "volume" and d.action == "delete"]
        if not volumes:
            return list(destructive)
        now = self._clock()
        changed: dict[str, Decision] = {}
        by_region: dict[str, list[Decision]] = defaultdict(list)
        for decision in volumes:
            by_region[decision.region].append(decision)
        for region, members in by_region.items():
            since = {d.resource_id: self._marked_at(d) for d in members}
            try:
                attached = volumes_attached_since(self._factory.cloudwatch(region), since, now)
            except (TrainctlError, BotoCoreError) as exc:
                for decision in members:
                    changed[decision.resource_id] = replace(
                        decision,
                        action="keep",
                        outcome="skipped",
                        detail=f"{decision.detail}; its EBS metrics since the mark could not be read ({exc}): "
                        "nothing done",
                    )
                continue
            withdrawn = {
                d.resource_id: replace(
                    d,
                    action="unmark",
                    detail=f"attached since its mark (EBS reported it at {format_instant(attached[d.resource_id])}"
                    "): mark withdrawn",
                )
                for d in members
                if d.resource_id in attached
            }
            changed.update(withdrawn)
            self._tag_phase(changed, list(withdrawn.values()), mark=False)
        by_id.update(changed)
        return [d for d in destructive if d.resource_id not in changed]

    def _marked_at(self, decision: Decision) -> datetime:
        if decision.marked_at is not None:
            return decision.marked_at
        assert decision.cleanup_after is not None  # every destructive decision stands on a mark
        return decision.cleanup_after - self._grace_period

    @staticmethod
    def _read_states(ec2: EC2Client, resource_type: str, ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """(state, mark tag) of each resource still there. Filters, not ids: one gone must not fail the read."""
        states: dict[str, tuple[str, str | None]] = {}

        def mark_of(raw: Any) -> str | None:
            return tags.tag_map(raw.get("Tags")).get(tags.CLEANUP_AFTER)

        for chunk in _chunks(ids, READ_BATCH):
            if resource_type == "instance":
                for page in ec2.get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "instance-id", "Values": list(chunk)}]
                ):
                    for reservation in page["Reservations"]:
                        for instance in reservation["Instances"]:
                            states[instance["InstanceId"]] = (instance["State"]["Name"], mark_of(instance))
            elif resource_type == "volume":
                for volume_page in ec2.get_paginator("describe_volumes").paginate(
                    Filters=[{"Name": "volume-id", "Values": list(chunk)}]
                ):
                    for volume in volume_page["Volumes"]:
                        states[volume["VolumeId"]] = (volume["State"], mark_of(volume))
            else:
                for snapshot_page in ec2.get_paginator("describe_snapshots").paginate(
                    Filters=[{"Name": "snapshot-id", "Values": list(chunk)}], OwnerIds=["self"]
                ):
                    for snapshot in snapshot_page["Snapshots"]:
                        states[snapshot["SnapshotId"]] = (snapshot["State"], mark_of(snapshot))
        return states
