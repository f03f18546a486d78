"""Time as an injected dependency: decisions never read the wall clock themselves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def fixed_clock(at: datetime) -> Clock:
    instant = ensure_utc(at)
    return lambda: instant


def ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# Instants trainctl reads from tags and events: anything outside is a typo or a trap, never a real date.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def parse_instant(text: str) -> datetime:
    """Parse an ISO-8601 instant; a naive one is taken as UTC. Out of range or unreadable: ValueError."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        instant = ensure_utc(datetime.fromisoformat(cleaned))
    except OverflowError as exc:  # a valid-looking date whose offset leaves the calendar
        raise ValueError(f"{text.strip()!r} is outside the calendar") from exc
    if not EARLIEST <= instant < LATEST:
        raise ValueError(f"{text.strip()!r} is not between 1970 and 9000")
    return instant


def format_instant(value: datetime) -> str:
    return ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")
