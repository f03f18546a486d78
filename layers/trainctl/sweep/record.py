"""The sweep's record in the ledger: every decision and outcome of every enforced sweep (or memory, for tests)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from trainctl.aws import ledger
from trainctl.aws.batch_get import get_items
from trainctl.aws.clients import access_error
from trainctl.aws.owners import OwnersOfRecord
from trainctl.core.clock import format_instant, parse_instant
from trainctl.core.errors import AwsAccessError, TrainctlError
from trainctl.core.marks import AGE_GUARD, LedgerEntry, RecordedSweep
from trainctl.core.permissions import needs
from trainctl.core.protections import Protection
from trainctl.sweep.rules import Decision

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.paginator import QueryPaginator

# Written in batches; a resource's history and the recorded sweeps are read back to trust a mark.
PERMISSIONS = needs("dynamodb:BatchWriteItem", "dynamodb:Query")

_BATCH = 25
_WRITERS = 16
# One Query per resource, each on its own partition: 32 at once, the client's connection pool.
HISTORY_READERS = 32


class Ledger(Protocol):
    def record(
        self, sweep_id: str, at: datetime, summary: dict[str, object], decisions: Sequence[Decision]
    ) -> None: ...

    def record_intent(self, sweep_id: str, at: datetime, decisions: Sequence[Decision]) -> None: ...

    def history(self, resource_id: str) -> list[LedgerEntry]: ...

    def histories(self, resource_ids: Sequence[str]) -> dict[str, list[LedgerEntry]]: ...

    def sweeps_since(self, at: datetime) -> list[RecordedSweep]: ...

    def owners_of_record(self, resource_ids: Sequence[str]) -> dict[str, str]: ...

    def newest(self, resource_ids: Sequence[str]) -> dict[str, LedgerEntry]: ...

    def claim_owners(self, owners: Mapping[str, str], at: datetime) -> None: ...

    def marks_written(self, resource_ids: Sequence[str]) -> dict[str, datetime]: ...


def decision_items(sweep_id: str, at: datetime, decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """One item per decision, under the key its outcome will overwrite: an intent row becomes the record."""
    until = ledger.expires(at)
    items: list[dict[str, Any]] = []
    for decision in decisions:
        items.append(
            {
                **ledger.sweep_decision(decision.resource_id, at, sweep_id),
                "sweep_id": {"S": sweep_id},
                "resource_type": {"S": decision.resource_type},
                "region": {"S": decision.region},
                "action": {"S": decision.action},
                "outcome": {"S": decision.outcome},
                "decision": {"S": _json({**decision.to_json(), "at": format_instant(at), "recorded_by": sweep_id})},
                **until,
            }
        )
    return items


def ledger_items(
    sweep_id: str,
    at: datetime,
    summary: dict[str, object],
    decisions: Sequence[Decision],
    *,
    sweep_partition: str = ledger.SWEEP_PARTITION,
) -> list[dict[str, Any]]:
    run_key = ledger.key(sweep_partition, f"{format_instant(at)}#{sweep_id}")
    run = {**run_key, "summary": {"S": _json(summary)}, **ledger.expires(at)}
    # The tag each mark wrote: a pending mark whose tag says otherwise is not trainctl's (anyone may write it).
    written = [
        {
            **ledger.current_mark(d.resource_id),
            "cleanup_after": {"S": format_instant(d.cleanup_after)},
            "at": {"S": format_instant(at)},
            **ledger.expires(at),
        }
        for d in decisions
        if d.action == "mark" and d.outcome in ("done", "unannounced") and d.cleanup_after is not None
    ]
    return [run, *decision_items(sweep_id, at, decisions), *written]


def entry_from(recorded_by: str, raw: Mapping[str, Any]) -> LedgerEntry:
    """A decision as recorded (Decision.to_json) read back as a line of the resource's history."""
    protections = set(raw.get("protections") or ())
    cleanup_after = raw.get("cleanup_after")
    return LedgerEntry(
        at=parse_instant(str(raw["at"])) if raw.get("at") else datetime.min.replace(tzinfo=UTC),
        recorded_by=recorded_by,
        action=str(raw.get("action", "")),
        outcome=str(raw.get("outcome", "")),
        # Over the per-sweep cap is still a candidate: it waits its turn, marked.
        candidate=bool(raw.get("reasons")) and protections <= {str(Protection.BLAST_RADIUS)},
        cleanup_after=parse_instant(str(cleanup_after)) if cleanup_after else None,
        announced=raw.get("announced"),
        detail=str(raw.get("detail", "")),
        owner=str(raw["owner"]) if raw.get("owner") else None,
        protections=tuple(sorted(protections)),
    )


def _ledger_error(operation: str, exc: ClientError | BotoCoreError) -> AwsAccessError:
    # A timeout once retries are spent is the ledger failing too: it protects, as a refusal does, never crashes.
    if isinstance(exc, ClientError):
        return access_error(operation, exc)
    return AwsAccessError(operation, type(exc).__name__, str(exc))


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


class DynamoDbLedger:
    # Where this ledger's sweeps are recorded and read back: a provider's or an account's are in their own.
    sweep_partition = ledger.SWEEP_PARTITION

    def __init__(self, dynamodb: DynamoDBClient, table_name: str) -> None:
        self._dynamodb = dynamodb
        self._table = table_name

    def record(self, sweep_id: str, at: datetime, summary: dict[str, object], decisions: Sequence[Decision]) -> None:
        self._write_all(ledger_items(sweep_id, at, summary, decisions, sweep_partition=self.sweep_partition))

    def record_intent(self, sweep_id: str, at: datetime, decisions: Sequence[Decision]) -> None:
        self._write_all(decision_items(sweep_id, at, [replace(d, outcome="intended") for d in decisions]))

    def history(self, resource_id: str) -> list[LedgerEntry]:
        """Newest first, down to the newest mark trainctl wrote and its second (nothing older can matter)."""
        return self._history(self._dynamodb.get_paginator("query"), resource_id)

    def histories(self, resource_ids: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        """Each resource's history, read concurrently."""
        if not resource_ids:
            return {}
        # One paginator for all: built per thread, 32 threads at once load its model 32 times over.
        paginator = self._dynamodb.get_paginator("query")
        with ThreadPoolExecutor(max_workers=min(HISTORY_READERS, len(resource_ids))) as pool:
            read = pool.map(lambda resource_id: self._history(paginator, resource_id), resource_ids)
            return dict(zip(resource_ids, read, strict=True))

    def _history(self, paginator: QueryPaginator, resource_id: str) -> list[LedgerEntry]:
        entries: list[LedgerEntry] = []
        marked_at: datetime | None = None
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression=f"{ledger.PARTITION_KEY} = :pk",
            ExpressionAttributeValues={":pk": {"S": ledger.resource_partition(resource_id)}},
            ScanIndexForward=False,
        )
        try:
            for page in pages:
                for item in page.get("Items", []):
                    raw = json.loads(item["decision"]["S"])
                    entry = entry_from(str(raw.get("recorded_by", "")), raw)
                    if marked_at is not None and entry.at.replace(microsecond=0) != marked_at:
                        return entries
                    entries.append(entry)
                    if marked_at is None and entry.action == "mark" and entry.outcome == "done":
                        # Read on through the mark's own second: a use there may sort below it.
                        marked_at = entry.at.replace(microsecond=0)
        except (ClientError, BotoCoreError) as exc:
            raise _ledger_error("Query", exc) from exc
        return entries

    def owners_of_record(self, resource_ids: Sequence[str]) -> dict[str, str]:
        return OwnersOfRecord(self._dynamodb, self._table).read(resource_ids)

    def claim_owners(self, owners: Mapping[str, str], at: datetime) -> None:
        OwnersOfRecord(self._dynamodb, self._table).claim(owners, at, "sweep")

    def marks_written(self, resource_ids: Sequence[str]) -> dict[str, datetime]:
        """The mark trainctl last wrote on each resource, where it wrote one."""
        keys = [ledger.current_mark(r) for r in dict.fromkeys(resource_ids)]
        return {
            str(item[ledger.PARTITION_KEY]["S"]).removeprefix("mark#"): parse_instant(str(item["cleanup_after"]["S"]))
            for item in get_items(self._dynamodb, self._table, keys)
        }

    def newest(self, resource_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        """Each resource's newest line a sweep wrote, where it has one: a page read, however long its history."""

        paginator = self._dynamodb.get_paginator("query")

        def read(resource_id: str) -> LedgerEntry | None:
            pages = paginator.paginate(
                TableName=self._table,
                KeyConditionExpression=f"{ledger.PARTITION_KEY} = :pk",
                ExpressionAttributeValues={":pk": {"S": ledger.resource_partition(resource_id)}},
                ScanIndexForward=False,
                PaginationConfig={"PageSize": 8},
            )
            try:
                for page in pages:
                    for item in page.get("Items", []):
                        raw = json.loads(item["decision"]["S"])
                        if raw.get("recorded_by") != AGE_GUARD:  # a sweep's line, not a use age_guard heard
                            return entry_from(str(raw.get("recorded_by", "")), raw)
            except (ClientError, BotoCoreError) as exc:
                raise _ledger_error("Query", exc) from exc
            return None

        if not resource_ids:
            return {}
        with ThreadPoolExecutor(max_workers=min(HISTORY_READERS, len(resource_ids))) as pool:
            found = dict(zip(resource_ids, pool.map(read, resource_ids), strict=True))
        return {r: e for r, e in found.items() if e is not None}

    def sweeps_since(self, at: datetime) -> list[RecordedSweep]:
        found: list[RecordedSweep] = []
        pages = self._dynamodb.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression=f"{ledger.PARTITION_KEY} = :pk AND {ledger.SORT_KEY} >= :from",
            ExpressionAttributeValues={
                ":pk": {"S": self.sweep_partition},
                ":from": {"S": ledger.sweep_run(at, "")[ledger.SORT_KEY]["S"]},
            },
        )
        try:
            for page in pages:
                for item in page.get("Items", []):
                    stamp, _, sweep_id = item[ledger.SORT_KEY]["S"].partition("#")
                    found.append(RecordedSweep(parse_instant(stamp), sweep_id))
        except (ClientError, BotoCoreError) as exc:
            raise self._sweeps_unreadable(exc) from exc
        return found

    def _sweeps_unreadable(self, exc: ClientError | BotoCoreError) -> TrainctlError:
        return _ledger_error("Query", exc)

    def _write_all(self, items: list[dict[str, Any]]) -> None:
        batches = [items[start : start + _BATCH] for start in range(0, len(items), _BATCH)]
        # A big sweep writes a hundred batches, each a round trip: 16 at once, inside the client's 32 connections.
        with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
            for _ in pool.map(self._write, batches):
                pass

    def _write(self, batch: list[dict[str, Any]]) -> None:
        requests: dict[str, Any] = {self._table: [{"PutRequest": {"Item": item}} for item in batch]}
        try:
            # Unprocessed items come back under throttling; botocore's retries cover the call, not these.
            for _ in range(8):
                response = self._dynamodb.batch_write_item(RequestItems=requests)
                requests = dict(response.get("UnprocessedItems") or {})
                if not requests:
                    return
        except (ClientError, BotoCoreError) as exc:
            raise _ledger_error("BatchWriteItem", exc) from exc
        # A throttled table that never takes the rest is the ledger failing: the sweep's error, not a crash.
        raise AwsAccessError("BatchWriteItem", "UnprocessedItems", f"{len(requests[self._table])} items left")


class InMemoryLedger:
    """The same record in memory: what a sweep wrote, and the same reads back."""

    def __init__(self) -> None:
        self.sweeps: list[tuple[str, datetime, dict[str, object], list[Decision]]] = []
        self.intents: list[tuple[str, datetime, list[Decision]]] = []
        self.entries: dict[str, list[tuple[datetime, str, dict[str, Any]]]] = {}
        self.owners: dict[str, str] = {}  # owners of record, as age_guard would have recorded them

    def record(self, sweep_id: str, at: datetime, summary: dict[str, object], decisions: Sequence[Decision]) -> None:
        self.sweeps.append((sweep_id, at, summary, list(decisions)))
        self._keep(sweep_id, at, decisions)

    def record_intent(self, sweep_id: str, at: datetime, decisions: Sequence[Decision]) -> None:
        self.intents.append((sweep_id, at, list(decisions)))
        self._keep(sweep_id, at, [replace(d, outcome="intended") for d in decisions])

    def _keep(self, sweep_id: str, at: datetime, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            rows = self.entries.setdefault(decision.resource_id, [])
            rows[:] = [row for row in rows if (row[0], row[1]) != (at, sweep_id)]  # the record overwrites intent
            rows.append((at, sweep_id, json.loads(_json(decision.to_json()))))

    def history(self, resource_id: str) -> list[LedgerEntry]:
        entries: list[LedgerEntry] = []
        marked_at: datetime | None = None
        for at, sweep_id, raw in sorted(self.entries.get(resource_id, []), key=lambda row: row[0], reverse=True):
            entry = entry_from(sweep_id, {"at": format_instant(at), **raw})
            if marked_at is not None and entry.at != marked_at:
                break
            entries.append(entry)
            if marked_at is None and entry.action == "mark" and entry.outcome == "done":
                marked_at = entry.at
        return entries

    def histories(self, resource_ids: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        return {resource_id: self.history(resource_id) for resource_id in resource_ids}

    def sweeps_since(self, at: datetime) -> list[RecordedSweep]:
        return [RecordedSweep(when, sweep_id) for sweep_id, when, _, _ in self.sweeps if when >= at]

    def owners_of_record(self, resource_ids: Sequence[str]) -> dict[str, str]:
        return {r: self.owners[r] for r in resource_ids if r in self.owners}

    def newest(self, resource_ids: Sequence[str]) -> dict[str, LedgerEntry]:
        found = {r: [e for e in self.history(r) if e.recorded_by != AGE_GUARD] for r in resource_ids}
        return {r: history[0] for r, history in found.items() if history}

    def claim_owners(self, owners: Mapping[str, str], at: datetime) -> None:
        for resource_id, owner in owners.items():
            self.owners.setdefault(resource_id, owner)

    def marks_written(self, resource_ids: Sequence[str]) -> dict[str, datetime]:
        written: dict[str, datetime] = {}
        for _, _, _, decisions in self.sweeps:
            for d in decisions:
                if d.action == "mark" and d.outcome in ("done", "unannounced") and d.cleanup_after is not None:
                    written[d.resource_id] = d.cleanup_after
        return {r: written[r] for r in resource_ids if r in written}
