"""The providers' REST client: errors in words, the key never shown, rate limits honoured within a deadline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
from urllib3.exceptions import NewConnectionError

from trainctl.providers.http import (
    REDACTED,
    ProviderAnswerUnreadable,
    ProviderConflict,
    ProviderError,
    ProviderHttp,
    ProviderKeyRejected,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnreachable,
    Quota,
    path_segment,
    read_quota,
    retry_after_seconds,
)

KEY = "rpa_TESTKEY0123456789abcdef"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def answer(status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json"} | (headers or {})
    return urllib3.HTTPResponse(body=data, status=status, headers=all_headers, preload_content=True)


class ScriptedPool:
    """A connection pool that answers from a script and remembers what was sent."""

    def __init__(self, answers: list[Any]) -> None:
        self._answers: Iterator[Any] = iter(answers)
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.sent.append({"method": method, "url": url, **kwargs})
        next_answer = next(self._answers)
        if isinstance(next_answer, Exception):
            raise next_answer
        return next_answer


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def monotonic(self) -> float:
        return self.t


def client(answers: list[Any], clock: FakeTime | None = None, patience_s: float = 120.0) -> ProviderHttp:
    clock = clock or FakeTime()
    return ProviderHttp(
        provider="runpod",
        base_url="https://api.example.test/v2/",
        key=KEY,
        pool=ScriptedPool(answers),  # type: ignore[arg-type]
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        now=lambda: NOW,
        patience_s=patience_s,
    )


def test_a_call_sends_the_bearer_key_and_json_and_reads_json() -> None:
    http = client([answer(200, {"pods": []})])
    got = http.post("/pods/abc/action", {"action": "stop"})
    assert got.status == 200 and got.body == {"pods": []}
    sent = http.pool.sent[0]  # type: ignore[attr-defined]
    assert sent["url"] == "https://api.example.test/v2/pods/abc/action"
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    assert json.loads(sent["body"]) == {"action": "stop"}
    assert sent["retries"] is False and sent["timeout"].connect_timeout == 5.0


def test_a_problem_answer_becomes_an_error_in_words_with_status_and_title() -> None:
    problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no pod abc"}
    http = client([answer(404, problem, {"Content-Type": "application/problem+json"})])
    with pytest.raises(ProviderNotFound) as caught:
        http.get("/pods/abc")
    assert str(caught.value) == "runpod: GET /pods/abc answered 404: Not Found: no pod abc"
    assert caught.value.status == 404 and caught.value.title == "Not Found"


def test_a_conflict_is_its_own_error() -> None:
    http = client([answer(409, {"title": "Conflict", "status": 409})])
    with pytest.raises(ProviderConflict):
        http.post("/pods/abc/action", {"action": "stop"})


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_its_own_error_naming_the_provider_and_never_the_key(status: int) -> None:
    # Some APIs echo the credential they refused; it must not travel on in our text.
    problem = {"title": "Unauthorized", "detail": f"API key {KEY} is revoked"}
    http = client([answer(status, problem)])
    with pytest.raises(ProviderKeyRejected) as caught:
        http.get("/pods")
    text = str(caught.value)
    assert text.startswith("runpod: ") and "API key was refused" in text
    assert KEY not in text and REDACTED in text
    assert KEY not in repr(http)


def test_an_echoed_key_is_redacted_from_every_error_kind() -> None:
    http = client([answer(500, {"title": f"boom {KEY}", "detail": f"{KEY}\nforged line"})])
    with pytest.raises(ProviderError) as caught:
        http.get("/pods")
    assert KEY not in str(caught.value) and "\n" not in str(caught.value)
    assert KEY not in str(http.unreadable("pod 1", f"name {KEY}"))


def test_a_body_that_is_not_json_is_unreadable_not_a_crash() -> None:
    http = client([answer(200, raw=b"<html>maintenance</html>", headers={"Content-Type": "text/html"})])
    with pytest.raises(ProviderAnswerUnreadable, match="not JSON"):
        http.get("/pods")
    http = client([answer(200, raw=b"{not json")])
    with pytest.raises(ProviderAnswerUnreadable):
        http.get("/pods")


def test_a_body_nested_past_pythons_limit_is_unreadable_not_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    http = client([answer(200, raw=deep)])
    with pytest.raises(ProviderAnswerUnreadable, match="not JSON"):
        http.get("/pods")


def test_an_error_without_a_json_body_still_says_its_status() -> None:
    http = client([answer(502, raw=b"Bad Gateway", headers={"Content-Type": "text/plain"})])
    with pytest.raises(ProviderError, match="answered 502: no problem details"):
        http.get("/pods")


def test_no_answer_is_unreachable_and_says_so() -> None:
    refused = NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    http = client([refused])
    with pytest.raises(ProviderUnreachable, match="GET /pods got no answer"):
        http.get("/pods")


def test_429_waits_as_retry_after_says_then_succeeds() -> None:
    clock = FakeTime()
    http = client([answer(429, {"title": "Too Many Requests"}, {"retry-after": "7"}), answer(200, {})], clock)
    assert http.get("/pods").status == 200
    assert clock.slept == [7.0]
    assert (http.counts.calls, http.counts.rate_limited, http.counts.waited_s) == (2, 1, 7.0)


def test_retry_after_as_an_http_date_is_honoured() -> None:
    clock = FakeTime()
    later = "Tue, 01 Dec 2026 12:00:30 GMT"
    http = client([answer(429, {}, {"Retry-After": later}), answer(200, {})], clock)
    http.get("/pods")
    assert clock.slept == [30.0]


def test_a_wait_past_the_deadline_is_refused_without_sleeping() -> None:
    clock = FakeTime()
    http = client([answer(429, {}, {"Retry-After": "600"})], clock, patience_s=60)
    with pytest.raises(ProviderRateLimited, match="past this call's deadline"):
        http.get("/pods")
    assert clock.slept == []
    # The caller's own deadline wins over the client's patience.
    http = client([answer(429, {}, {"Retry-After": "5"})], clock)
    with pytest.raises(ProviderRateLimited):
        http.get("/pods", deadline=clock.t + 4)


def test_an_exhausted_quota_is_waited_out_before_the_next_call() -> None:
    clock = FakeTime()
    headers = {"RateLimit-Policy": '"minute";q=2;w=60, "hour";q=100;w=3600', "RateLimit": '"minute";r=0;t=12'}
    http = client([answer(200, {}, headers), answer(200, {})], clock)
    http.get("/pods")
    assert clock.slept == []
    http.get("/network-volumes")
    assert clock.slept == [12.0]


def test_quota_headers_are_read_by_window_and_unreadable_parts_left_out() -> None:
    quota = read_quota(
        {"RateLimit-Policy": '"minute";q=100;w=60, "day";q=x;w=86400', "RateLimit": '"minute";r=4;t=20, "day";r=9'}
    )
    by_name = {w.name: w for w in quota.windows}
    assert (by_name["minute"].quota, by_name["minute"].remaining, by_name["minute"].reset_s) == (100, 4, 20)
    assert by_name["day"].quota is None and by_name["day"].window_s == 86400 and by_name["day"].reset_s is None
    assert read_quota({}) == Quota()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("12", 12.0), ("Tue, 01 Dec 2026 11:00:00 GMT", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_forms(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, NOW) == seconds


@pytest.mark.parametrize("bad", ["../volumes", "a/b", "", "x" * 200, "id?x=1", "pod\n1"])
def test_an_id_that_could_walk_the_path_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        path_segment(bad, "pod id")
    assert path_segment("abc_DEF-123", "pod id") == "abc_DEF-123"


def test_a_key_echoed_in_a_successful_answer_is_redacted_before_anything_reads_it() -> None:
    http = client([answer(200, {"pods": [{"id": "p1", "name": f"job-{KEY}"}]})])
    body = http.get("/pods").body
    assert body == {"pods": [{"id": "p1", "name": f"job-{REDACTED}"}]}
