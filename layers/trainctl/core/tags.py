"""The tag vocabulary: the only language shared by trainctl and the people it serves."""

from __future__ import annotations

from collections.abc import Mapping

MANAGED = "trainctl:managed"
PERSISTENT = "trainctl:persistent"
OWNER = "trainctl:owner"
CREATED_BY = "trainctl:created-by"
CREATED_AT = "trainctl:created-at"
TTL = "trainctl:ttl"
CLEANUP_AFTER = "trainctl:cleanup-after"
ROLE = "trainctl:role"
PREWARMED_FROM = "trainctl:prewarmed-from"
PREWARMED_AT = "trainctl:prewarmed-at"
# What a pre-warm measured, so that later plans can learn from past runs: bytes, whole seconds, MiB/s.
PREWARMED_BYTES = "trainctl:prewarmed-bytes"
PREWARMED_SECONDS = "trainctl:prewarmed-seconds"
PREWARMED_RATE = "trainctl:prewarmed-rate"
# The last fill of an instance's local cache (`trainctl transfer --to-cache`), on the instance: where from, into
# which folder, when, and what it measured (bytes copied, whole seconds, MiB/s), for later plans to learn from.
CACHE_FROM = "trainctl:cache-from"
CACHE_PATH = "trainctl:cache-path"
CACHE_AT = "trainctl:cache-at"
CACHE_BYTES = "trainctl:cache-bytes"
CACHE_SECONDS = "trainctl:cache-seconds"
CACHE_RATE = "trainctl:cache-rate"
# Spot: ask for recovery, choose a checkpoint hook (by name, from the configured set), and mark what was saved.
RECOVER = "trainctl:recover"
CHECKPOINT_HOOK = "trainctl:checkpoint-hook"
SPOT_INSTANCE = "trainctl:spot-instance"
INTERRUPTION = "trainctl:interruption"
RECOVERED_FROM = "trainctl:recovered-from"

PREWARM_WORKER_ROLE = "prewarm-worker"
# A volume the pre-warm workflow restores from a snapshot: in scope from its creation, for the sweep to see.
PREWARMED_VOLUME_ROLE = "prewarmed-volume"

# AWS Backup stamps the snapshots it owns with this tag.
BACKUP_SOURCE = "aws:backup:source-resource"

_EXPLICIT_FALSE = frozenset({"false", "no", "0"})
_EXPLICIT_TRUE = frozenset({"true", "yes", "1"})


def protects(value: str | None) -> bool:
    """A protection tag protects unless it says false outright (fail-safe)."""
    if value is None:
        return False
    return value.strip().lower() not in _EXPLICIT_FALSE


def _distance(a: str, b: str, limit: int) -> int:
    """Edit distance, given up past `limit`: enough to tell a typo of a key from another key."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, left in enumerate(a, 1):
        current = [i]
        for j, right in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def persistent_keys(labels: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """Keys that say persistent: (the key in any case, near misses such as trainctl:persistant).

    Both protect, for a person who wrote either meant to keep the resource; a near miss is also reported so
    that it gets fixed.
    """
    exact: list[str] = []
    near: list[str] = []
    for key in labels:
        folded = key.strip().lower()
        if folded == PERSISTENT:
            exact.append(key)
        elif folded.startswith(("trainctl", "traincl", "trianctl")) and _distance(folded, PERSISTENT, 2) <= 2:
            near.append(key)
    return exact, near


def opts_in(value: str | None) -> bool:
    """A scope tag brings a resource into scope only when it says true outright.

    The opposite default of `protects`: an ambiguous scope value keeps automation away.
    """
    if value is None:
        return False
    return value.strip().lower() in _EXPLICIT_TRUE


def tag_map(raw: object) -> dict[str, str]:
    """Turn EC2's [{'Key': .., 'Value': ..}] into a dict, tolerating a missing list."""
    if not isinstance(raw, list):
        return {}
    out: dict[str, str] = {}
    for item in raw:
        if isinstance(item, Mapping) and "Key" in item:
            out[str(item["Key"])] = str(item.get("Value", ""))
    return out
