"""The command line's "now": the laptop's clock, unless AWS's disagrees by more than a minute.

A sweep enforced from a laptop whose clock runs an hour fast would act on marks an hour early. Every AWS response
carries a Date header; where it and the laptop differ by more than a minute, the command takes AWS's time (the
laptop's clock plus the difference, measured once) and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import ClientError

from trainctl.aws.clients import ClientFactory
from trainctl.core.clock import Clock, ensure_utc
from trainctl.core.durations import format_duration

TOLERANCE = timedelta(minutes=1)


@dataclass(frozen=True)
class ServerTime:
    clock: Clock
    offset: timedelta  # AWS's time minus the laptop's; zero when within the tolerance
    measured: timedelta  # the difference as measured, whether or not it was used
    source: str  # what the Date header came from

    def message(self) -> str | None:
        if not self.offset:
            return None
        ahead = self.offset > timedelta(0)
        size = _words(abs(self.offset))
        return (
            f"this computer's clock is {size} {'behind' if ahead else 'ahead of'} AWS's (the Date of the "
            f"{self.source} response): using AWS's time"
        )


def _words(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600 and seconds % 3600 >= 60:
        return f"{seconds // 3600}h{(seconds % 3600) // 60}m"
    if seconds >= 60 and seconds < 3600 and seconds % 60:
        return f"{seconds // 60}m{seconds % 60}s"
    return format_duration(timedelta(seconds=seconds))


def response_date(response: dict[str, Any]) -> datetime | None:
    header = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not header:
        return None
    try:
        return ensure_utc(parsedate_to_datetime(str(header)))
    except (TypeError, ValueError):
        return None


def server_time(factory: ClientFactory, local: Clock, region: str | None = None) -> ServerTime:
    """One GetCallerIdentity (allowed to every principal, and a check of the credentials before anything
    else) gives AWS's Date; the difference is measured against the laptop's clock at the midpoint of the call."""
    sts = factory.client("sts", region)
    before = local()
    try:
        response = sts.get_caller_identity()
    except ClientError:
        return ServerTime(local, timedelta(0), timedelta(0), "GetCallerIdentity")
    after = local()
    said = response_date(response)
    if said is None:
        return ServerTime(local, timedelta(0), timedelta(0), "GetCallerIdentity")
    midpoint = before + (after - before) / 2
    # The header has whole seconds: half a second of it is rounding, not disagreement.
    measured = said + timedelta(milliseconds=500) - midpoint
    if abs(measured) <= TOLERANCE:
        return ServerTime(local, timedelta(0), measured, "GetCallerIdentity")
    offset = timedelta(seconds=round(measured.total_seconds()))
    return ServerTime(lambda: local() + offset, offset, measured, "GetCallerIdentity")
