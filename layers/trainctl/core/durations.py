"""Human durations such as `0s`, `5m`, `24h`, `3d`, `1w`, used by settings and the ttl tag."""

from __future__ import annotations

import re
from datetime import timedelta

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*([0-9]{1,7})\s*([smhdw])\s*$", re.IGNORECASE | re.ASCII)


# Longer than any lifetime a person means, short enough that no instant plus it leaves the calendar.
MAX_DURATION = timedelta(weeks=521)  # about 10 years


class InvalidDuration(ValueError):
    """A duration string that does not read as <number><unit>, or is longer than MAX_DURATION."""


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if match is None:
        raise InvalidDuration(
            f"{text!r} is not a duration; use a whole number and one unit of s, m, h, d or w (e.g. 5m, 24h)"
        )
    amount, unit = int(match.group(1)), match.group(2).lower()
    seconds = amount * _UNIT_SECONDS[unit]
    if seconds > MAX_DURATION.total_seconds():
        limit = format_duration(MAX_DURATION)
        raise InvalidDuration(f"{text.strip()!r} is longer than the limit of {limit} (about 10 years)")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit in ("w", "d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
