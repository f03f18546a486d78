"""The Lyceum client, reads and actions against the emulator on a loopback port: the calls, the races, the key.

The emulator follows Lyceum's published API reference; Lyceum documents no rate limit, so the 429s here are
scripted. Waits are on an injected clock: no test sleeps for a Retry-After.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from trainctl.cli.lyceum_emulator import EMULATOR_KEY, LyceumEmulator, serve
from trainctl.cli.sandbox_fleet import free_loopback_port
from trainctl.lyceum.act import abort_run, terminate_vm
from trainctl.lyceum.client import LyceumClient, LyceumKeyProblem
from trainctl.lyceum.read import read_inventory
from trainctl.lyceum.settings import LyceumSettings
from trainctl.providers.http import (
    ProviderAnswerUnreadable,
    ProviderError,
    ProviderKeyRejected,
    ProviderRateLimited,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SETTINGS = LyceumSettings(lyceum_name_prefix="team-", lyceum_owner_pattern=r"^team-(?P<owner>[a-z]+)-")


@dataclass
class FakeTime:
    """A monotonic clock that moves only when the client sleeps."""

    at: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += seconds


@dataclass
class Lyceum:
    emulator: LyceumEmulator
    url: str
    time: FakeTime
    ids: dict[str, str]

    def client(self, key: str = EMULATOR_KEY, patience_s: float = 120.0) -> LyceumClient:
        return LyceumClient.connect(
            self.url,
            key,
            sleep=self.time.sleep,
            monotonic=self.time.monotonic,
            now=lambda: NOW,
            patience_s=patience_s,
        )


@pytest.fixture
def lyceum() -> Iterator[Lyceum]:
    emulator = LyceumEmulator(clock=lambda: NOW)
    ids = emulator.seed_story()
    with serve(emulator, free_loopback_port()) as url:
        yield Lyceum(emulator, url, FakeTime(), ids)


def test_list_reads_every_vm_and_live_run_into_the_model(lyceum: Lyceum) -> None:
    inventory = read_inventory(lyceum.client(), SETTINGS, NOW, account="acme")
    by_id = {vm.vm_id: vm for vm in inventory.vms}
    assert set(by_id) == {lyceum.ids[k] for k in ("past_ttl", "idle", "fresh", "out_of_scope")}
    past_ttl = by_id[lyceum.ids["past_ttl"]]
    assert past_ttl.instance.provider == "lyceum" and past_ttl.instance.account == "acme"
    assert NOW - past_ttl.instance.launch_time == timedelta(hours=80)
    assert past_ttl.owner == "alice" and past_ttl.in_scope
    assert past_ttl.hourly_usd is None and past_ttl.price_source == "unpriced"
    assert not by_id[lyceum.ids["out_of_scope"]].in_scope
    runs = {run.run_id: run for run in inventory.runs}
    assert set(runs) == {lyceum.ids["run_past_cap"], lyceum.ids["run_fresh"]}
    assert NOW - runs[lyceum.ids["run_past_cap"]].started == timedelta(hours=30)
    assert inventory.unreadable == ()
    assert [(c.method, c.path.removeprefix("/api/v2/external")) for c in lyceum.emulator.calls] == [
        ("GET", "/vms/list"),
        ("GET", "/workloads/list"),
    ]


def test_status_adds_the_uptime(lyceum: Lyceum) -> None:
    status = lyceum.client().vm_status(lyceum.ids["idle"])
    assert status["uptime_seconds"] == 9 * 3600
    assert status["vm_id"] == lyceum.ids["idle"]


def test_credits(lyceum: Lyceum) -> None:
    assert lyceum.client().credits()["available_credits"] == 500.0


def test_terminate_is_read_back_as_done(lyceum: Lyceum) -> None:
    vm_id = lyceum.ids["past_ttl"]
    outcome = terminate_vm(lyceum.client(), vm_id)
    assert (outcome.result, outcome.ended) == ("done", True)
    assert vm_id not in lyceum.emulator.vms
    methods = [(c.method, c.status) for c in lyceum.emulator.calls]
    assert methods == [("DELETE", 200), ("GET", 404)]


def test_a_vm_someone_else_deleted_first_is_gone_not_failed(lyceum: Lyceum) -> None:
    vm_id = lyceum.ids["idle"]
    # The owner terminated it from the dashboard between trainctl's read and its action.
    del lyceum.emulator.vms[vm_id]
    outcome = terminate_vm(lyceum.client(), vm_id)
    assert outcome.result == "gone" and outcome.ended
    assert "already terminated" in outcome.detail


def test_a_terminate_lyceum_refuses_is_failed_with_its_reason(lyceum: Lyceum) -> None:
    lyceum.emulator.script(500, body={"detail": "internal error"}, method="DELETE")
    outcome = terminate_vm(lyceum.client(), lyceum.ids["idle"])
    assert outcome.result == "failed" and not outcome.ended
    assert "500" in outcome.detail and "internal error" in outcome.detail
    assert lyceum.ids["idle"] in lyceum.emulator.vms


def test_abort_a_run_past_its_cap_and_read_it_back(lyceum: Lyceum) -> None:
    run_id = lyceum.ids["run_past_cap"]
    outcome = abort_run(lyceum.client(), run_id)
    assert outcome.result == "done"
    assert lyceum.emulator.runs[run_id]["status"] == "aborted"
    # Aborting it again finds it ended: gone, not failed.
    again = abort_run(lyceum.client(), run_id)
    assert again.result == "gone" and again.ended


def test_a_revoked_key_is_one_clear_error_and_acts_on_nothing(lyceum: Lyceum) -> None:
    lyceum.emulator.revoke(EMULATOR_KEY)
    with pytest.raises(ProviderKeyRejected) as refused:
        read_inventory(lyceum.client(), SETTINGS, NOW)
    assert str(refused.value).startswith("lyceum: ")
    assert "the API key was refused" in str(refused.value)
    with pytest.raises(ProviderKeyRejected):
        terminate_vm(lyceum.client(), lyceum.ids["past_ttl"])
    assert lyceum.ids["past_ttl"] in lyceum.emulator.vms


def test_a_429_with_retry_after_is_honoured(lyceum: Lyceum) -> None:
    lyceum.emulator.throttle(7, times=2, path="/vms/list")
    client = lyceum.client()
    vms = client.list_vms()
    assert len(vms) == 4
    assert lyceum.time.slept == [7.0, 7.0]
    assert client.http.counts.rate_limited == 2
    assert [c.status for c in lyceum.emulator.calls] == [429, 429, 200]


def test_a_retry_after_past_the_deadline_is_a_rate_limit_error_not_a_wait(lyceum: Lyceum) -> None:
    lyceum.emulator.throttle(600)
    with pytest.raises(ProviderRateLimited) as limited:
        lyceum.client(patience_s=60).list_vms()
    assert "600s" in str(limited.value)
    assert lyceum.time.slept == []


def test_a_non_json_answer_is_unreadable_in_words(lyceum: Lyceum) -> None:
    lyceum.emulator.script(200, body=b"<html>maintenance</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(ProviderAnswerUnreadable) as unreadable:
        lyceum.client().list_vms()
    assert "not JSON" in str(unreadable.value)


def test_an_error_page_that_is_not_json_is_an_error_in_words(lyceum: Lyceum) -> None:
    lyceum.emulator.script(502, body=b"<html>Bad Gateway</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(ProviderError) as failed:
        lyceum.client().list_runs()
    assert "502" in str(failed.value)


def test_a_vm_in_an_undocumented_shape_is_protected_and_the_rest_is_read(lyceum: Lyceum) -> None:
    lyceum.emulator.add_raw_vm({"vm_id": "vm-strange0001", "name": "team-zed-x", "status": "migrating"}, "strange")
    lyceum.emulator.extra_list_entries.append("garbage")
    inventory = read_inventory(lyceum.client(), SETTINGS, NOW)
    assert len(inventory.vms) == 4
    assert {u.label for u in inventory.unreadable} == {"vm-strange0001", "entry 6 of the list"}
    assert inventory.problems()["vm-strange0001"].startswith("Lyceum VM vm-strange0001: status is not one")


def test_a_list_without_vms_is_unreadable(lyceum: Lyceum) -> None:
    lyceum.emulator.script(200, body={"items": []}, path="/vms/list")
    with pytest.raises(ProviderAnswerUnreadable, match="no list `vms`"):
        lyceum.client().list_vms()


def test_an_id_that_would_walk_the_path_is_refused_before_any_call(lyceum: Lyceum) -> None:
    with pytest.raises(ValueError, match="not a Lyceum VM id"):
        lyceum.client().terminate_vm("../billing/credits")
    assert lyceum.emulator.calls == []


@pytest.mark.parametrize("key", ["", "   ", None, "eyJhbGciOi.jwt", "lk_with space"])
def test_a_key_that_is_no_lyceum_key_is_refused_without_being_repeated(key: str | None) -> None:
    with pytest.raises(LyceumKeyProblem) as refused:
        LyceumClient.connect("https://api.lyceum.technology/api/v2/external", key)
    assert "LYCEUM_API_KEY" in str(refused.value)
    if key and key.strip():
        assert key.strip() not in str(refused.value)


def test_the_key_is_in_no_error_and_no_log_even_when_echoed(lyceum: Lyceum, caplog: pytest.LogCaptureFixture) -> None:
    secret = "lk_live_s3cr3t0123456789"
    lyceum.emulator.keys.add(secret)
    lyceum.emulator.echo_key_in_errors = True
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    # The provider quotes a wrong key back, then the key just revoked.
    wrong = secret + "x"
    with pytest.raises(ProviderKeyRejected) as refused:
        lyceum.client(key=wrong).list_vms()
    texts.append(str(refused.value))
    assert "[redacted]" in str(refused.value)
    lyceum.emulator.revoke(secret)
    with pytest.raises(ProviderKeyRejected) as revoked:
        lyceum.client(key=secret).list_runs()
    texts.append(str(revoked.value))
    # An error body that quotes the key, on an action.
    lyceum.emulator.keys.add(secret)
    lyceum.emulator.script(500, body={"detail": f"backend failed for token {secret}"}, method="DELETE")
    outcome = terminate_vm(lyceum.client(key=secret), lyceum.ids["idle"])
    texts += [outcome.detail, repr(outcome), repr(lyceum.client(key=secret))]
    assert outcome.result == "failed"
    for text in [*texts, caplog.text]:
        assert secret not in text
        assert wrong not in text


def test_the_emulator_answers_each_call_after_its_configured_latency() -> None:
    waits: list[float] = []
    emulator = LyceumEmulator(clock=lambda: NOW, latency_s=0.05, sleep=waits.append)
    emulator.seed_story()
    with serve(emulator, free_loopback_port()) as url:
        client = LyceumClient.connect(url, EMULATOR_KEY)
        client.list_vms()
        client.credits()
    assert waits == [0.05, 0.05]
