"""The ledger table's one key scheme: every record trainctl keeps, and the key it keeps it under.

One DynamoDB table holds the sweeps, the spot interruptions, the instances' running history, the cost
alerts, the sweep lease and Powertools' idempotency records. Each writer asks here for its keys, so no two
kinds of record can collide and a reader finds any of them from this page alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from trainctl.core.clock import format_instant

PARTITION_KEY = "pk"
SORT_KEY = "sk"
EXPIRES_AT = "expires_at"  # the table's time-to-live attribute, in epoch seconds

RETENTION = timedelta(days=180)
# Running intervals matter for the accumulated cost of long-lived instances: kept a good while longer.
HISTORY_RETENTION = timedelta(days=400)

SWEEP_PARTITION = "sweep"
COST_ALERT_PARTITION = "cost-alert"
# Powertools' idempotency records share the table under PARTITION_KEY and SORT_KEY; its keys start with the
# function's name, never one of the prefixes below.

Item = dict[str, Any]


def key(partition: str, sort: str) -> Item:
    return {PARTITION_KEY: {"S": partition}, SORT_KEY: {"S": sort}}


def expires(at: datetime, retention: timedelta = RETENTION) -> Item:
    return {EXPIRES_AT: {"N": str(int((at + retention).timestamp()))}}


def sweep_run(at: datetime, sweep_id: str) -> Item:
    """A sweep's summary: one partition, sorted by time, so the newest sweeps are one query away."""
    return key(SWEEP_PARTITION, f"{format_instant(at)}#{sweep_id}")


def resource_partition(resource_id: str) -> str:
    return f"resource#{resource_id}"


def sweep_decision(resource_id: str, at: datetime, sweep_id: str) -> Item:
    """What a sweep decided for one resource: the resource's history is one query on its partition."""
    return key(resource_partition(resource_id), f"{format_instant(at)}#{sweep_id}")


def owner_of_record(resource_id: str) -> Item:
    """Who owned a resource when trainctl first heard of it: written once, never overwritten."""
    return key(f"owner#{resource_id}", "of-record")


def current_mark(resource_id: str) -> Item:
    """The mark trainctl last wrote on a resource: every sweep checks a pending mark's tag against it."""
    return key(f"mark#{resource_id}", "current")


def spot_partition(instance_id: str) -> str:
    return f"spot#{instance_id}"


def spot_interruption(instance_id: str, at: datetime, kind: str) -> Item:
    return key(spot_partition(instance_id), f"{format_instant(at)}#{kind}")


def runtime_partition(region: str) -> str:
    # One partition per region: a whole region's history is one paginated Query, not one per instance.
    return f"runtime#{region}"


def runtime_transition(region: str, instance_id: str, at: datetime, state: str) -> Item:
    # Time and state in the key: a repeated event writes the same item again, harmlessly.
    return key(runtime_partition(region), f"{instance_id}#{format_instant(at)}#{state}")


def cost_alert(alert_key: str) -> Item:
    return key(COST_ALERT_PARTITION, alert_key)


def lease(holder_kind: str) -> Item:
    return key(f"lease#{holder_kind}", "lease")
