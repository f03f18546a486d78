"""A small JSON REST client for the GPU providers trainctl watches beside AWS (RunPod, Lyceum), on urllib3.

urllib3 ships with botocore, so the Lambda runtime already has it. The client sends a Bearer key, reads JSON,
turns RFC 9457 problem answers into domain errors in words, honours 429 with Retry-After within a deadline the
caller gives, and waits out an exhausted quota that the IETF RateLimit headers announce before it is refused.
The key never appears in an error's text, also when the provider echoes it back.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError

from trainctl.core.errors import TrainctlError
from trainctl.core.text import one_line

REDACTED = "[redacted]"
# How long one call may wait in all for the provider's rate limit when the caller names no deadline.
DEFAULT_PATIENCE_S = 120.0
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
# A provider's own text in our messages is one bounded line: titles and details are short sentences.
_PROVIDER_TEXT = 200
# An id that goes into a URL path: letters, digits, _ and -; anything else could walk to another path.
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_JSON_TYPES = ("application/json", "application/problem+json")


class ProviderError(TrainctlError):
    """A provider's API refused or failed a call; the message names the provider, the call and why, in words."""

    def __init__(self, provider: str, message: str, *, status: int | None = None, title: str = "") -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.status = status
        self.title = title


class ProviderKeyRejected(ProviderError):
    """The API key is wrong, revoked or lacks the permission (401 or 403): this provider only, nothing retried."""


class ProviderAnswerUnreadable(ProviderError):
    """The provider answered with something its documentation does not describe: not JSON, or another shape."""


class ProviderRateLimited(ProviderError):
    """The provider's rate limit asked for a wait longer than the caller's deadline allows."""


class ProviderUnreachable(ProviderError):
    """The provider did not answer: connection refused, a timeout, a broken connection."""


class ProviderConflict(ProviderError):
    """409: the resource is not in a state where the call applies (for example a stop that raced another stop)."""


class ProviderNotFound(ProviderError):
    """404: the resource (or the path) is not there."""


def path_segment(value: str, what: str) -> str:
    """An id made safe for a URL path, or a clear refusal: a provider id is letters, digits, _ and -."""
    if not _PATH_SEGMENT.match(value):
        raise ValueError(f"{one_line(value, 64)!r} is not a {what} (letters, digits, _ and - only)")
    return value


class Redactor:
    """Removes every occurrence of a secret from a text, before that text reaches an error, a log or a notice."""

    def __init__(self, *secrets: str) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


def redacted_strings(parsed: Any, redact: Callable[[str], str]) -> Any:
    """A parsed JSON value with every string in it redacted, object keys too; walked without recursion, so that
    an answer nested as deep as the parser allows is walked as well."""
    if isinstance(parsed, str):
        return redact(parsed)
    pending: list[Any] = [parsed] if isinstance(parsed, list | dict) else []
    while pending:
        node = pending.pop()
        pairs = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        if isinstance(node, dict):
            node.clear()  # refilled in the same order, under the redacted keys
        for name, value in pairs:
            if isinstance(value, list | dict):
                pending.append(value)
            node[redact(name) if isinstance(name, str) else name] = redact(value) if isinstance(value, str) else value
    return parsed


@dataclass(frozen=True, slots=True)
class RateWindow:
    """One window of a provider's quota, from the IETF RateLimit and RateLimit-Policy headers."""

    name: str
    quota: int | None = None  # q: requests allowed in the window
    window_s: int | None = None  # w: the window's length
    remaining: int | None = None  # r: requests left now
    reset_s: int | None = None  # t: seconds until the window resets


@dataclass(frozen=True, slots=True)
class Quota:
    """What the last answer said about the quota; empty when the provider sent no RateLimit headers."""

    windows: tuple[RateWindow, ...] = ()

    def wait_before_next(self) -> float:
        """Seconds to wait before the next call: until the reset of any window that has nothing left."""
        waits = [w.reset_s for w in self.windows if w.remaining == 0 and w.reset_s is not None]
        return float(max(waits)) if waits else 0.0


def _structured_items(header: str) -> dict[str, dict[str, str]]:
    """A header in the draft's structured-field list form: `"minute";r=5;t=30, "hour";r=90;t=1800`."""
    items: dict[str, dict[str, str]] = {}
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        if not parts or not parts[0]:
            continue
        params: dict[str, str] = {}
        for param in parts[1:]:
            key, _, value = param.partition("=")
            params[key.strip()] = value.strip()
        items[parts[0].strip('"')] = params
    return items


def _int_or_none(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)


def read_quota(headers: Mapping[str, str]) -> Quota:
    """The quota as the RateLimit and RateLimit-Policy headers state it; a part that cannot be read is left out."""
    policy = _structured_items(headers.get("RateLimit-Policy", ""))
    state = _structured_items(headers.get("RateLimit", ""))
    windows = []
    for name in dict.fromkeys([*policy, *state]):
        p, s = policy.get(name, {}), state.get(name, {})
        windows.append(
            RateWindow(
                name=one_line(name, 32),
                quota=_int_or_none(p.get("q")),
                window_s=_int_or_none(p.get("w")),
                remaining=_int_or_none(s.get("r")),
                reset_s=_int_or_none(s.get("t")),
            )
        )
    return Quota(tuple(windows))


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds to wait: delay-seconds or an HTTP-date (RFC 9110 10.2.3); None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class Answer:
    """A provider's answer: its status, its JSON body (None when empty) and what it said about the quota."""

    status: int
    body: Any
    quota: Quota


@dataclass
class CallCounts:
    """What a client did, for benchmarks and reports: calls sent, 429s met and seconds waited."""

    calls: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0


def _system_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ProviderHttp:
    """One provider's REST API behind one key: JSON in and out, errors in words, rate limits honoured.

    `sleep`, `monotonic` and `now` are injected so that tests wait no real time.
    """

    provider: str
    base_url: str
    key: str = field(repr=False)
    pool: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(retries=False), repr=False)
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = _system_now
    patience_s: float = DEFAULT_PATIENCE_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    counts: CallCounts = field(default_factory=CallCounts)
    quota: Quota = field(default_factory=Quota)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._redact = Redactor(self.key)

    def redact(self, text: str) -> str:
        return self._redact(text)

    def unreadable(self, what: str, problem: str) -> ProviderAnswerUnreadable:
        """An answer whose JSON is not the shape the provider's documentation describes, in one redacted line."""
        said = self.redact(one_line(problem, _PROVIDER_TEXT))
        return ProviderAnswerUnreadable(self.provider, f"{what} is not in the documented shape: {said}")

    def get(self, path: str, *, deadline: float | None = None) -> Answer:
        return self.request("GET", path, deadline=deadline)

    def post(self, path: str, body: object, *, deadline: float | None = None) -> Answer:
        return self.request("POST", path, body=body, deadline=deadline)

    def delete(self, path: str, *, deadline: float | None = None) -> Answer:
        return self.request("DELETE", path, deadline=deadline)

    def request(self, method: str, path: str, *, body: object = None, deadline: float | None = None) -> Answer:
        """One call; `deadline` is a `monotonic()` instant after which no wait for the rate limit may end."""
        until = deadline if deadline is not None else self.monotonic() + self.patience_s
        call = f"{method} {path.split('?', 1)[0]}"
        self._wait(self.quota.wait_before_next(), until, call)
        while True:
            response = self._send(method, path, body, call)
            # urllib3's header mapping ignores case, as HTTP field names do.
            headers = response.headers
            self.quota = read_quota(headers)
            if response.status == 429 or (response.status == 503 and "Retry-After" in headers):
                self.counts.rate_limited += 1
                wait = retry_after_seconds(headers.get("Retry-After"), self.now())
                if wait is None:
                    # No readable Retry-After: the quota headers say when the window resets, else a minute.
                    wait = self.quota.wait_before_next() or 60.0
                self._wait(wait, until, call, status=response.status)
                continue
            return self._answer(response, headers, call)

    def _wait(self, seconds: float, until: float, call: str, *, status: int | None = None) -> None:
        if seconds <= 0:
            return
        if self.monotonic() + seconds > until:
            raise ProviderRateLimited(
                self.provider,
                f"{call} was rate limited: the provider asked for a wait of {seconds:.0f}s, past this call's deadline",
                status=status if status is not None else 429,
            )
        self.counts.waited_s += seconds
        self.sleep(seconds)

    def _send(self, method: str, path: str, body: object, call: str) -> urllib3.BaseHTTPResponse:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        self.counts.calls += 1
        try:
            return self.pool.request(
                method,
                self.base_url + path,
                body=data,
                headers=headers,
                timeout=urllib3.Timeout(connect=self.connect_timeout_s, read=self.read_timeout_s),
                retries=False,
                redirect=False,
            )
        except HTTPError as exc:
            # urllib3's text names the host and the failure, never a header; redacted all the same.
            reason = self.redact(one_line(type(exc).__name__ + ": " + str(exc), _PROVIDER_TEXT))
            raise ProviderUnreachable(self.provider, f"{call} got no answer ({reason})") from None

    def _answer(self, response: urllib3.BaseHTTPResponse, headers: Mapping[str, str], call: str) -> Answer:
        status = response.status
        # An echoed key leaves here as [redacted]: nothing read from an answer can carry it on.
        raw = (response.data or b"").replace(self.key.encode(), REDACTED.encode()) if self.key else response.data or b""
        content_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        parsed: Any = None
        readable = True
        if raw.strip():
            try:
                # Once read too: a key written with JSON escapes (`\u0072pa_...`) is whole only after parsing.
                parsed = redacted_strings(json.loads(raw), self._redact)
            except (ValueError, UnicodeDecodeError, RecursionError):  # nested past Python's limit: not JSON to us
                readable = False
        if 200 <= status < 300:
            if not readable or (raw.strip() and content_type not in _JSON_TYPES):
                raise ProviderAnswerUnreadable(
                    self.provider, f"{call} answered {status} with a body that is not JSON", status=status
                )
            return Answer(status, parsed, self.quota)
        raise self._problem(status, parsed if readable else None, call)

    def _problem(self, status: int, problem: Any, call: str) -> ProviderError:
        """An error answer in words: RFC 9457's title and detail when the body has them, else the status alone."""
        title = detail = ""
        if isinstance(problem, dict):
            title = str(problem.get("title") or "")
            detail = str(problem.get("detail") or "")
        title = self.redact(one_line(title, _PROVIDER_TEXT))
        detail = self.redact(one_line(detail, _PROVIDER_TEXT))
        said = ": ".join(part for part in (title, detail) if part) or "no problem details"
        message = f"{call} answered {status}: {said}"
        kind: type[ProviderError] = ProviderError
        if status in (401, 403):
            kind = ProviderKeyRejected
            message = f"{call} answered {status}: the API key was refused (wrong, revoked or not allowed): {said}"
        elif status == 404:
            kind = ProviderNotFound
        elif status == 409:
            kind = ProviderConflict
        return kind(self.provider, message, status=status, title=title)
