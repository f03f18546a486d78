"""The standard AWS environment for a person at a terminal: regions, profile, and calls that do not wait in silence.

The Lambdas retry patiently (adaptive, ten attempts, botocore's 60-second connect timeout); a person waiting at a
terminal gets short connection timeouts, three attempts, and a line on stderr for every attempt that could not
reach its endpoint.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import botocore.session
import typer
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ProfileNotFound, ReadTimeoutError

from trainctl.aws.clients import RETRY_CONFIG, ClientFactory
from trainctl.cli.output import EXIT_USAGE, err_console, fail, state_of, warn

CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 30
ATTEMPTS = 3
INTERACTIVE_CONFIG = RETRY_CONFIG.merge(
    Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"mode": "adaptive", "max_attempts": ATTEMPTS},
    )
)

REGION_NAME = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class WaitNotices:
    """botocore's needs-retry hook: an attempt that could not reach its endpoint is said, with what comes next."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.said: list[str] = []

    def __call__(
        self, attempts: int = 0, caught_exception: Exception | None = None, operation: Any = None, **kwargs: Any
    ) -> None:
        if caught_exception is None or attempts >= ATTEMPTS:
            return  # an answer, or the last attempt: the error itself says the rest
        endpoint = kwargs.get("endpoint")
        where = getattr(endpoint, "host", None) or "the endpoint"
        what = getattr(operation, "name", "a call")
        line = (
            f"waiting for {where} ({what}): {_how(caught_exception)}; "
            f"trying again, attempt {attempts + 1} of {ATTEMPTS}"
        )
        self.said.append(line)
        if not self.quiet:
            err_console.print(line, style="dim", soft_wrap=True, highlight=False, markup=False)


def _how(exc: Exception) -> str:
    if isinstance(exc, ConnectTimeoutError):
        return f"no connection within {CONNECT_TIMEOUT_SECONDS}s"
    if isinstance(exc, ReadTimeoutError):
        return f"no answer within {READ_TIMEOUT_SECONDS}s"
    if isinstance(exc, EndpointConnectionError):
        return "cannot connect"
    return f"the connection failed ({type(exc).__name__})"


def adopt_aws_region(environ: dict[str, str] | os._Environ[str]) -> None:
    """AWS_REGION wins over AWS_DEFAULT_REGION, as in the AWS CLI v2; botocore reads only the latter, and the
    handlers `trainctl invoke` runs build their own clients, so the process environment says it once."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = environ.get(name, "")
        # Checked as --region is: a malformed name would otherwise surface as an endpoint nobody can reach.
        if value and not REGION_NAME.match(value):
            near = difflib.get_close_matches(value.lower(), sorted(known_regions()), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise fail(f"{name}={value}: not a region name such as us-east-1{hint}", EXIT_USAGE)
    region = environ.get("AWS_REGION")
    if region:
        environ["AWS_DEFAULT_REGION"] = region


def check_profile(profile: str) -> None:
    """An unknown profile is one line naming the known ones, before any client is built."""
    known = botocore.session.Session().available_profiles
    if profile not in known:
        raise ProfileNotFound(profile=profile)


def interactive_factory(region: str | None = None, *, quiet: bool = False) -> ClientFactory:
    profile = os.environ.get("AWS_PROFILE") or os.environ.get("AWS_DEFAULT_PROFILE")
    if profile:
        check_profile(profile)
    factory = ClientFactory(region or os.environ.get("AWS_REGION") or None, config=INTERACTIVE_CONFIG)
    factory.register("needs-retry", WaitNotices(quiet=quiet))
    return factory


@cache
def known_regions() -> frozenset[str]:
    session = botocore.session.Session()
    found: set[str] = set()
    for partition in session.get_available_partitions():
        found.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(found)


def check_regions(
    values: Sequence[str] | None, *, command: str = "", single: bool = False, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """--region values, checked the same way by every command: a malformed one is wrong usage (exit 2); one
    botocore does not know draws a warning (a new region may be newer than botocore)."""
    chosen: list[str] = []
    for value in values or ():
        if not REGION_NAME.match(value):
            near = difflib.get_close_matches(value.lower(), sorted(known_regions()), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise fail(f"--region {value}: not a region name such as us-east-1{hint}", EXIT_USAGE)
        if value not in chosen:
            chosen.append(value)
    if single and len(chosen) > 1:
        raise fail(f"{command or 'this command'} works in one region: pass --region once", EXIT_USAGE)
    emulated = bool((os.environ if environ is None else environ).get("AWS_ENDPOINT_URL"))
    for value in chosen:
        if not emulated and value not in known_regions():
            warn(f"--region {value} is not a region this botocore knows; trying it anyway")
    return tuple(chosen)


def describe_profile_problem(exc: ProfileNotFound) -> str:
    profile = exc.kwargs.get("profile", "?")
    known = sorted(botocore.session.Session().available_profiles)
    listed = f"known profiles: {', '.join(known)}" if known else "no profiles are configured"
    return f"no AWS profile named {profile} in ~/.aws/config or ~/.aws/credentials ({listed})"


def factory_of(ctx: typer.Context, region: str | None = None) -> ClientFactory:
    """The factory handed in, else one for the standard AWS environment with `region` as its home region."""
    state = state_of(ctx)
    if state.make_factory is not None:
        return state.make_factory()
    return interactive_factory(region)
