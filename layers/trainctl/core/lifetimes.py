"""Age rules shared by every destructive path: the minimum age and the time-to-live."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from trainctl.core import tags
from trainctl.core.clock import parse_instant
from trainctl.core.durations import InvalidDuration, parse_duration

if TYPE_CHECKING:  # only named: age_guard reads LAUNCH_ATTACH_SLACK from here without loading the resource model
    from trainctl.core.resources import Resource

# A launch attaches its own volumes as it starts the instance: EC2 dates both within a second or so.
LAUNCH_ATTACH_SLACK = timedelta(seconds=2)


def creation_signals(resource: Resource) -> list[datetime]:
    """Every instant that says when a resource came to be: the API's and the stamped tag."""
    signals = [resource.created]
    stamped = resource.tags.get(tags.CREATED_AT)
    if stamped and stamp_after_creation(resource) is None:
        # A hand-edited stamp that does not parse, or that postdates EC2's own time, is no evidence either way.
        with contextlib.suppress(ValueError):
            signals.append(parse_instant(stamped))
    return signals


# age_guard stamps the call's own time, seconds from EC2's; a tag later than EC2's time by more is not a stamp.
STAMP_SLACK = timedelta(minutes=15)


def stamp_after_creation(resource: Resource) -> str | None:
    """Why trainctl:created-at cannot be believed: it is later than EC2's own creation time (which would keep
    the resource young, and so protected by the minimum age, forever). None when it can be, or is absent."""
    stamped = resource.tags.get(tags.CREATED_AT)
    if not stamped:
        return None
    try:
        at = parse_instant(stamped)
    except ValueError:
        return None  # unreadable on its own account
    if at > resource.created + STAMP_SLACK:
        ec2_time = f"{resource.created:%Y-%m-%dT%H:%M:%SZ}"
        return f"{tags.CREATED_AT}: {stamped.strip()[:40]!r} is later than EC2's own creation time {ec2_time}"
    return None


def born_at(resource: Resource) -> datetime:
    # The newest signal makes the resource look youngest: the safe reading for every age rule.
    return max(creation_signals(resource))


class InvalidTtl(ValueError):
    """A trainctl:ttl value that does not read as a duration."""


def ttl_expiry(resource: Resource, default_max_age: timedelta | None = None) -> datetime | None:
    """When the resource's trainctl:ttl (else the class's default maximum age) runs out; None for never."""
    raw = resource.tags.get(tags.TTL)
    if raw is None or raw.strip() == "":
        return born_at(resource) + default_max_age if default_max_age else None
    try:
        lifetime = parse_duration(raw)
        return born_at(resource) + lifetime
    except InvalidDuration as exc:
        raise InvalidTtl(f"{tags.TTL}: {exc}") from exc
    except OverflowError as exc:  # a lifetime that ends past the calendar
        raise InvalidTtl(f"{tags.TTL}: {raw.strip()!r} ends past the calendar") from exc
