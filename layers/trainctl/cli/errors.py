"""Every failure of every command as one line on stderr, in human words, with a documented exit code.

The root command group catches what a command raises: a refusal, a bad setting, missing credentials or region, an
unknown profile, an endpoint that does not answer, an error AWS returned, a usage error, Ctrl-C. Only an
unexpected error (a bug) keeps its traceback, and only when TRAINCTL_DEBUG is set.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSOTokenLoadError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)
from botocore.parsers import ResponseParserError
from pydantic import ValidationError
from typer.core import TyperGroup

from trainctl.aws.clients import error_code
from trainctl.cli.metavars import conventional_metavars
from trainctl.cli.output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, fail, one_line
from trainctl.core.errors import TrainctlError

NO_CREDENTIALS = (
    "no AWS credentials: set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; "
    "for a local emulator set AWS_ENDPOINT_URL (see `make emulator`)"
)
NO_REGION = "no region: pass --region, or set AWS_REGION (or AWS_DEFAULT_REGION, or a region in your profile)"
BAD_CREDENTIALS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "AuthFailure",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "RequestExpired",
}

# What a value must look like, for the fields whose check is a regular expression nobody should have to read.
FORMS = {
    "s3_uri": "an s3://bucket/prefix/ URI (a lowercase bucket; letters, digits and _ . - / = in the key)",
    "volume_id": "a volume id such as vol-0123456789abcdef0",
    "instance_id": "an instance id such as i-0123456789abcdef0",
    "snapshot_id": "a snapshot id such as snap-0123456789abcdef0",
    "mount_point": "an absolute path such as /mnt/data",
    "zone": "an availability zone such as us-east-1a",
    "account_id": "a 12-digit account id",
    "scope_from_tag": "key=value",
}
# A Python list of strings in a message, ['a', 'b'], reads as a, b.
_LIST_REPR = re.compile(r"\[(?:'[^'\[\]]*'(?:, )?)+\]")
_GOT = re.compile(r" \(got ('[^']*')\)")
_QUOTED = re.compile(r"'([^']*)'")
_PATTERN = re.compile(r"([A-Za-z_.\d]+): (?:Value error, )?String should match pattern '(?:[^'\\]|\\.)*'")


def humanise(message: str) -> str:
    """A message as a person reads it: one line, no regular expression, no pydantic boilerplate."""

    def form(match: re.Match[str]) -> str:
        field = match.group(1)
        key = field.rsplit(".", 1)[-1].lower().removeprefix("trainctl_")
        return f"{field}: must be {FORMS.get(key, 'in the documented form')}"

    # A value the message already quotes is not repeated by pydantic's "(got 'value')".
    text = _GOT.sub(
        lambda m: "" if m.group(1) in m.string[: m.start()] else m.group(0), _PATTERN.sub(form, one_line(message))
    )
    text = _LIST_REPR.sub(lambda m: ", ".join(_QUOTED.findall(m.group(0))), text)
    return text.replace("Value error, ", "").replace(" (got None)", "")


def describe_validation(exc: ValidationError, what: str) -> str:
    """A pydantic error in one line: what is missing, what is wrong, never the model's internals or a link."""
    missing: list[str] = []
    wrong: list[str] = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "the input"
        if error["type"] == "missing":
            missing.append(field)
        elif error["type"] == "string_pattern_mismatch":
            key = str(error["loc"][-1]).lower() if error["loc"] else ""
            wrong.append(f"{field} must be {FORMS.get(key, 'in the documented form')}")
        else:
            wrong.append(f"{field}: {humanise(str(error['msg'])).rstrip('.')}")
    parts = []
    if missing:
        parts.append(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing")
    parts += wrong
    return f"{what}: {'; '.join(parts)}"


def _endpoint(exc: BotoCoreError) -> str:
    return str(getattr(exc, "kwargs", {}).get("endpoint_url") or "the endpoint")


def describe(exc: BaseException) -> tuple[str, int]:
    """(message, exit code) for anything a command may raise."""
    if isinstance(exc, ProfileNotFound):
        # Cold start: the session module is only needed here once a profile is wrong.
        from trainctl.cli.session import describe_profile_problem

        return describe_profile_problem(exc), EXIT_FAILED
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return NO_CREDENTIALS, EXIT_FAILED
    if isinstance(exc, TokenRetrievalError | SSOTokenLoadError | UnauthorizedSSOTokenError):
        return f"the AWS SSO session cannot be used ({exc}): run `aws sso login`", EXIT_FAILED
    if isinstance(exc, CredentialRetrievalError):
        return f"AWS credentials could not be read: {exc}", EXIT_FAILED
    if isinstance(exc, NoRegionError):
        return NO_REGION, EXIT_FAILED
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError | ConnectionClosedError | ReadTimeoutError):
        how = {
            ConnectTimeoutError: "no connection within the timeout",
            ReadTimeoutError: "no answer within the timeout",
            ConnectionClosedError: "the connection was closed",
        }.get(type(exc), "no connection")
        return (
            f"cannot reach {_endpoint(exc)} ({how}, after retries): check the network, the region and AWS_ENDPOINT_URL",
            EXIT_FAILED,
        )
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", ""))
        if code in BAD_CREDENTIALS:
            return f"AWS refused the credentials ({code}: {message}): check the profile or the keys", EXIT_FAILED
        return humanise(f"{code}: {message}"), EXIT_FAILED
    if isinstance(exc, ValidationError):
        return describe_validation(exc, "invalid input"), EXIT_USAGE
    if isinstance(exc, TrainctlError):
        cause = exc.__cause__
        if isinstance(cause, ValidationError) and str(exc).startswith(tuple(_EVENT_REFUSALS)):
            return describe_validation(cause, str(exc).split(":", 1)[0]), EXIT_FAILED
        return humanise(str(exc)), EXIT_FAILED
    if isinstance(exc, BotoCoreError):
        return humanise(str(exc)), EXIT_FAILED
    if isinstance(exc, ResponseParserError):
        return (
            "the endpoint's answer is not one AWS would give (empty or not XML/JSON): check AWS_ENDPOINT_URL "
            "and any proxy (HTTPS_PROXY)",
            EXIT_FAILED,
        )
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    return f"unexpected {type(exc).__name__}: {humanise(str(exc))} (TRAINCTL_DEBUG=1 shows the traceback)", EXIT_FAILED


# Messages of an event a handler refused, whose cause is the pydantic error.
_EVENT_REFUSALS = [f"{name} refused the event" for name in ("cleanup_sweep", "age_guard", "cost_alerts")] + [
    "spot_interruption refused the event"
]


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A bad id, missing credentials or a wrong region is one line on stderr and an exit code, not a traceback."""
    try:
        yield
    except (typer.Exit, typer.TyperException, typer.Abort):
        raise
    except Exception as exc:
        if os.environ.get("TRAINCTL_DEBUG") and not isinstance(exc, TrainctlError | BotoCoreError | ClientError):
            raise
        message, code = describe(exc)
        raise fail(message, code) from None


class TrainctlGroup(TyperGroup):
    """The root command: a usage error, an abort and any failure below are one line and an exit code."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        conventional_metavars(self, list(self.context_settings.get("help_option_names", ["--help"])))
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        try:
            with one_line_errors():
                code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.Exit as stop:
            code = stop.exit_code
        except typer.TyperException as exc:  # click's usage and file errors, as typer carries them
            context = getattr(exc, "ctx", None)
            where = getattr(context, "command_path", None) or "trainctl"
            hint = f" (`{where} -h` lists the options)" if exc.exit_code == EXIT_USAGE else ""
            fail(f"{exc.format_message()}{hint}", exc.exit_code)
            code = exc.exit_code
        except typer.Abort:  # a question left unanswered (stdin closed)
            fail("nothing was changed")
            code = EXIT_FAILED
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into this code
            fail("interrupted", EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


def exit_on(exc: BaseException) -> typer.Exit:
    """For code that handles a failure itself: print it as every command does and return the Exit to raise."""
    message, code = describe(exc)
    return fail(message, code)
