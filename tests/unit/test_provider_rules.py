"""RunPod's and Lyceum's sweep rules, and the mark cycle over ledger-held marks: pure, with an injected instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trainctl.core.errors import SettingsError
from trainctl.core.marks import UNOBSERVED
from trainctl.core.sweep_settings import SweepSettings
from trainctl.lyceum.read import read_entries
from trainctl.lyceum.rules import WALL_CLOCK_CAP, judge_inventory
from trainctl.lyceum.settings import LyceumSettings, load_lyceum_settings
from trainctl.providers.sweep import Judged, Observed, decide
from trainctl.runpod.read import read_inventory
from trainctl.runpod.rules import (
    ENDPOINT_MOUNTED,
    LOCKED,
    MOUNTS_UNKNOWN,
    judge_account,
    judge_pod,
    observe_pod,
    observe_volume,
    pod_idleness,
)
from trainctl.runpod.settings import RunpodSettings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SWEEP = SweepSettings(idle_window=timedelta(hours=2), grace_period=timedelta(hours=24), idle_gpu_percent=5)
RUNPOD = RunpodSettings(runpod_name_prefix="train-", runpod_owner_pattern=r"^train-(?P<owner>[a-z]+)-")


def pod(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "pod7xk2m",
        "name": "train-ana-llama",
        "status": "RUNNING",
        "cost": 2.49,
        "createdAt": "2026-12-01T02:00:00Z",
        "startedAt": "2026-12-01T02:00:00Z",
        "locked": False,
        "mounts": {"network": []},
        "runtime": {"uptime": 36000, "gpus": [{"util": 1, "memoryUtil": 3}, {"util": 2, "memoryUtil": 3}]},
    }
    record.update(changes)
    return record


def volume(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": "vol9ab", "name": "train-ana-data", "size": 500, "dataCenter": "EU-RO-1"}
    record.update(changes)
    return record


def one_pod(record: dict[str, Any], now: datetime = NOW) -> Any:
    return read_inventory([record], [], RUNPOD, now).pods[0]


def samples(*hours_ago_and_util: tuple[float, float]) -> Observed:
    return Observed(NOW - 10 * HOUR, None, tuple((NOW - h * HOUR, u) for h, u in hours_ago_and_util))


# -- idleness: only evidence that covers the whole window ---------------------------------------------------


def test_a_pod_is_idle_when_samples_cover_the_window_all_under_the_threshold() -> None:
    assert pod_idleness(one_pod(pod()), samples((2, 0), (1, 3), (0, 2)), SWEEP, NOW) == "idle"


def test_samples_that_do_not_reach_the_window_start_are_no_evidence() -> None:
    # Two idle readings an hour apart are not two idle hours.
    assert pod_idleness(one_pod(pod()), samples((1, 0), (0, 2)), SWEEP, NOW) == "no evidence"


def test_a_gap_longer_than_the_window_between_samples_is_no_evidence() -> None:
    long_window = SWEEP.model_copy(update={"idle_window": timedelta(hours=2)})
    sparse = Observed(NOW - 10 * HOUR, None, ((NOW - 2 * HOUR, 0.0), (NOW, 1.0)))
    assert pod_idleness(one_pod(pod()), sparse, long_window, NOW) == "idle"
    gappy = Observed(NOW - 10 * HOUR, None, ((NOW - 2 * HOUR - 2 * timedelta(minutes=1), 0.0), (NOW, 1.0)))
    assert pod_idleness(one_pod(pod()), gappy, long_window, NOW) == "no evidence"


def test_samples_one_window_apart_are_judged_in_the_whole_seconds_the_ledger_keeps() -> None:
    # A deployed sweep's clock is never on the whole second; the ledger keeps its samples to the second.
    window = SWEEP.model_copy(update={"idle_window": timedelta(minutes=30)})
    first = NOW + timedelta(microseconds=250_000)
    now = first + timedelta(minutes=30)
    stored = Observed.from_json(observe_pod(one_pod(pod(), first), None, window, first).to_json())
    seen = observe_pod(one_pod(pod(), now), stored, window, now)
    fraction = timedelta(microseconds=250_000)
    assert [now - at for at, _ in seen.samples] == [timedelta(minutes=30) + fraction, fraction]
    assert pod_idleness(one_pod(pod(), now), seen, window, now) == "idle"
    # A whole second more than the window between two sweeps is still a gap: no evidence, whatever the fraction.
    late = now + timedelta(seconds=1)
    seen = observe_pod(one_pod(pod(), late), stored, window, late)
    assert pod_idleness(one_pod(pod(), late), seen, window, late) == "no evidence"


def test_one_busy_sample_in_the_window_is_use() -> None:
    assert pod_idleness(one_pod(pod()), samples((2, 0), (1, 60), (0, 2)), SWEEP, NOW) == "in use"


def test_a_pod_that_answers_no_gpu_reading_is_never_idle() -> None:
    no_gpus = one_pod(pod(runtime={"uptime": 36000, "gpus": []}))
    seen = observe_pod(no_gpus, samples((2, 0), (1, 0)), SWEEP, NOW)
    assert pod_idleness(no_gpus, seen, SWEEP, NOW) == "no evidence"


def test_a_start_within_the_window_is_use_and_older_samples_are_dropped() -> None:
    restarted = one_pod(pod(startedAt="2026-12-01T11:00:00Z"))
    seen = observe_pod(restarted, samples((3, 0), (2, 0)), SWEEP, NOW)
    assert [at for at, _ in seen.samples] == [NOW]  # readings of the previous run say nothing of this one
    assert pod_idleness(restarted, seen, SWEEP, NOW) == "in use"


def test_samples_are_kept_two_windows_and_only_while_running() -> None:
    running = observe_pod(one_pod(pod()), samples((5, 0), (3, 0), (1, 0)), SWEEP, NOW)
    assert [NOW - at for at, _ in running.samples] == [3 * HOUR, HOUR, timedelta(0)]
    exited = observe_pod(one_pod(pod(status="EXITED", cost=0, runtime=None)), samples((1, 0)), SWEEP, NOW)
    assert exited.samples == () and exited.since == NOW


# -- pods: the rules and protections ----------------------------------------------------------------------


def test_an_idle_pod_is_judged_for_a_stop() -> None:
    judged = judge_pod(one_pod(pod()), samples((2, 0), (1, 0), (0, 2)), SWEEP, NOW)
    assert judged is not None
    assert (judged.action, judged.reasons, judged.protections) == ("stop", ("idle",), ())
    assert (judged.resource_id, judged.owner, judged.hourly_usd) == ("runpod:pod7xk2m", "ana", 2.49)


def test_a_locked_pod_is_protected_by_name() -> None:
    judged = judge_pod(one_pod(pod(locked=True)), samples((2, 0), (1, 0), (0, 2)), SWEEP, NOW)
    assert judged is not None and judged.protections == (LOCKED,)


def test_a_pod_up_for_less_than_an_hour_is_protected() -> None:
    short_window = SWEEP.model_copy(update={"idle_window": timedelta(minutes=30)})
    young = one_pod(pod(startedAt="2026-12-01T11:15:00Z", runtime={"uptime": 2700, "gpus": [{"util": 0}]}))
    seen = Observed(NOW - HOUR, None, ((NOW - timedelta(minutes=30), 0.0), (NOW, 0.0)))
    judged = judge_pod(young, seen, short_window, NOW)
    assert judged is not None and judged.reasons == ("idle",) and judged.protections == ("min-age",)


def test_a_pod_exited_longer_than_the_stopped_max_age_is_terminated_counting_from_first_seen_exited() -> None:
    exited = one_pod(pod(status="EXITED", cost=0, runtime=None))
    week = SWEEP.stopped_max_age
    young = judge_pod(exited, Observed(NOW - week, NOW - week + HOUR), SWEEP, NOW)
    assert young is not None and young.reasons == ()
    old = judge_pod(exited, Observed(NOW - week, NOW - week), SWEEP, NOW)
    assert old is not None and (old.action, old.reasons) == ("terminate", ("stopped-too-long",))
    # Seen exited now for the first time: the clock starts now, whatever createdAt says.
    assert observe_pod(exited, None, SWEEP, NOW).since == NOW


# -- network volumes: unmounted since first seen, and only when every mount is known ------------------------


def test_an_unmounted_volume_is_a_candidate_after_the_grace_but_kept_while_endpoints_are_unread() -> None:
    before = {"runpod:vol9ab": Observed(NOW - 30 * HOUR, NOW - 25 * HOUR)}
    unread = read_inventory([], [volume()], RUNPOD, NOW)
    kept = judge_account(unread, before, SWEEP, NOW).judged[0]
    assert kept.reasons == ("unattached",) and kept.protections == (MOUNTS_UNKNOWN,)
    odd = read_inventory([], [volume()], RUNPOD, NOW, [{"id": "ep1", "networkVolumes": "vol9ab"}])
    assert judge_account(odd, before, SWEEP, NOW).judged[0].protections == (MOUNTS_UNKNOWN,)
    read = read_inventory([], [volume()], RUNPOD, NOW, [{"id": "ep1", "networkVolumes": ["volother"]}])
    deleted = judge_account(read, before, SWEEP, NOW).judged[0]
    assert (deleted.action, deleted.reasons, deleted.protections) == ("delete", ("unattached",), ())


def test_a_volume_a_serverless_endpoint_mounts_is_kept_by_name() -> None:
    before = {"runpod:vol9ab": Observed(NOW - 30 * HOUR, NOW - 25 * HOUR)}
    inventory = read_inventory([], [volume()], RUNPOD, NOW, [{"id": "ep1", "networkVolumes": ["vol9ab"]}])
    assert inventory.volumes[0].endpoint_mounts == ("ep1",)
    kept = judge_account(inventory, before, SWEEP, NOW).judged[0]
    assert kept.protections == (ENDPOINT_MOUNTED,) and "ep1" in kept.detail


def test_a_volume_unmounted_for_less_than_the_grace_or_mounted_is_no_candidate() -> None:
    mounted = read_inventory([pod(mounts={"network": [{"volumeId": "vol9ab"}]})], [volume()], RUNPOD, NOW, [])
    before = {"runpod:vol9ab": Observed(NOW - 30 * HOUR, NOW - 25 * HOUR)}
    judgement = judge_account(mounted, before, SWEEP, NOW)
    assert judgement.observed["runpod:vol9ab"].since is None
    assert all(j.reasons == () for j in judgement.judged)
    recent = read_inventory([], [volume()], RUNPOD, NOW, [])
    fresh = judge_account(recent, {"runpod:vol9ab": Observed(NOW - HOUR, NOW - HOUR)}, SWEEP, NOW)
    assert fresh.judged[0].reasons == ()


def test_an_unreadable_pod_makes_every_mount_unknown_and_is_itself_protected_by_name() -> None:
    inventory = read_inventory([{"id": "podbad", "name": "train-x"}], [volume()], RUNPOD, NOW, [])
    assert not inventory.mounts_known
    # The unmounted clock does not start while mounts are unknown.
    assert observe_volume(inventory.volumes[0], None, inventory.mounts_known, NOW).since is None
    before = {"runpod:vol9ab": Observed(NOW - 30 * HOUR, NOW - 25 * HOUR)}
    judged = {j.resource_id: j for j in judge_account(inventory, before, SWEEP, NOW).judged}
    assert judged["runpod:vol9ab"].protections == (MOUNTS_UNKNOWN,)
    assert judged["runpod:podbad"].protections == ("unreadable",)


def test_pods_and_volumes_out_of_scope_are_neither_judged_nor_remembered() -> None:
    inventory = read_inventory([pod(name="personal-box")], [volume(name="other")], RUNPOD, NOW)
    judgement = judge_account(inventory, {}, SWEEP, NOW)
    assert (judgement.judged, dict(judgement.observed), judgement.scanned, judgement.in_scope) == ((), {}, 2, 0)


# -- the mark cycle over ledger-held marks -----------------------------------------------------------------

CANDIDATE = Judged("runpod:pod1", "instance", "runpod", "stop", owner="ana", reasons=("idle",))


def test_a_candidate_is_marked_for_a_full_grace_then_waits_the_lag_then_acts() -> None:
    marked = decide(CANDIDATE, None, SWEEP, NOW)
    assert marked is not None and (marked.action, marked.announced) == ("mark", "stop")
    assert marked.cleanup_after == NOW + SWEEP.grace_period
    due = NOW + SWEEP.grace_period
    waiting = decide(CANDIDATE, due, SWEEP, NOW + HOUR)
    assert waiting is not None and waiting.action == "keep"
    lagging = decide(CANDIDATE, due, SWEEP, due + SWEEP.event_delivery_lag - timedelta(seconds=1))
    assert lagging is not None and lagging.action == "keep"
    acting = decide(CANDIDATE, due, SWEEP, due + SWEEP.event_delivery_lag)
    assert acting is not None and acting.action == "stop"


def test_a_mark_further_ahead_than_trainctl_writes_is_marked_afresh() -> None:
    far = decide(CANDIDATE, NOW + 30 * SWEEP.grace_period, SWEEP, NOW)
    assert far is not None and far.action == "mark" and far.cleanup_after == NOW + SWEEP.grace_period


def test_no_longer_a_candidate_unmarks_but_no_evidence_keeps_the_mark() -> None:
    used = Judged("runpod:pod1", "instance", "runpod", "stop")
    assert decide(used, None, SWEEP, NOW) is None
    unmarked = decide(used, NOW + HOUR, SWEEP, NOW)
    assert unmarked is not None and unmarked.action == "unmark"
    unseen = decide(Judged("runpod:pod1", "instance", "runpod", "stop", unobserved=True), NOW + HOUR, SWEEP, NOW)
    assert unseen is not None and (unseen.action, unseen.outcome) == ("keep", UNOBSERVED)


def test_a_protection_withdraws_the_mark_and_an_unreadable_entry_is_always_named() -> None:
    locked = Judged("runpod:pod1", "instance", "runpod", "stop", reasons=("idle",), protections=(LOCKED,))
    withdrawn = decide(locked, NOW - HOUR, SWEEP, NOW)
    assert withdrawn is not None and (withdrawn.action, withdrawn.protections) == ("unmark", (LOCKED,))
    unreadable = Judged("runpod:podbad", "instance", "runpod", "keep", protections=("unreadable",), detail="no `id`")
    named = decide(unreadable, None, SWEEP, NOW)
    assert named is not None and (named.action, named.protections) == ("keep", ("unreadable",))


# -- Lyceum: a time-to-live and a wall-clock cap, no idle rule ---------------------------------------------


def lyceum_inventory(settings: LyceumSettings) -> Any:
    vms = [
        {"vm_id": "vm-old", "name": "team-alice-a", "status": "running", "created_at": "2026-11-28T12:00:00Z"},
        {"vm_id": "vm-new", "name": "team-bob-b", "status": "running", "created_at": "2026-12-01T11:00:00Z"},
        {"vm_id": "vm-gone", "name": "team-carol-c", "status": "terminated", "created_at": "2026-11-01T11:00:00Z"},
        {"vm_id": "vm-odd", "name": "team-dan-d", "status": "sleeping", "created_at": "2026-11-01T11:00:00Z"},
    ]
    runs = [
        {"execution_id": "run-long", "status": "running", "created_at": "2026-11-30T06:00:00Z", "file_name": "team-a"},
        {"execution_id": "run-short", "status": "running", "created_at": "2026-12-01T11:00:00Z", "file_name": "team-b"},
    ]
    return read_entries(vms, runs, settings, NOW)


def test_a_vm_past_its_ttl_is_terminated_and_a_run_past_its_cap_is_ended() -> None:
    settings = LyceumSettings(
        lyceum_name_prefix="team-",
        lyceum_owner_pattern=r"^team-(?P<owner>[a-z]+)-",
        lyceum_vm_ttl=timedelta(hours=72),
        lyceum_run_max_wall_clock=timedelta(hours=24),
    )
    judged = {j.resource_id: j for j in judge_inventory(lyceum_inventory(settings), settings, NOW).judged}
    assert (judged["lyceum:vm-old"].action, judged["lyceum:vm-old"].reasons) == ("terminate", ("ttl-expired",))
    assert judged["lyceum:vm-old"].owner == "alice"
    assert judged["lyceum:vm-new"].reasons == ()
    assert "lyceum:vm-gone" not in judged
    assert judged["lyceum:vm-odd"].protections == ("unreadable",)
    assert (judged["lyceum:run-long"].resource_type, judged["lyceum:run-long"].reasons) == ("run", (WALL_CLOCK_CAP,))
    assert judged["lyceum:run-short"].reasons == ()


def test_without_a_ttl_or_cap_nothing_of_lyceum_is_a_candidate() -> None:
    settings = LyceumSettings(lyceum_name_prefix="team-")
    judged = judge_inventory(lyceum_inventory(settings), settings, NOW).judged
    assert [j.resource_id for j in judged if j.reasons] == []


def test_lyceum_ttl_and_cap_settings_read_as_durations_and_refuse_nonsense() -> None:
    read = load_lyceum_settings({"TRAINCTL_LYCEUM_VM_TTL": "72h", "TRAINCTL_LYCEUM_RUN_MAX_WALL_CLOCK": "1d"})
    assert (read.lyceum_vm_ttl, read.lyceum_run_max_wall_clock) == (timedelta(hours=72), timedelta(days=1))
    with pytest.raises(SettingsError):
        load_lyceum_settings({"TRAINCTL_LYCEUM_VM_TTL": "0s"})
    with pytest.raises(SettingsError):
        load_lyceum_settings({"TRAINCTL_LYCEUM_RUN_MAX_WALL_CLOCK": "soon"})


def test_runpod_endpoints_setting_is_still_accepted_and_never_lets_an_unread_endpoint_pass() -> None:
    # Deployments that set it keep loading; endpoints are read now, and an unread one still keeps the volume.
    assert RunpodSettings.from_env({"TRAINCTL_RUNPOD_NO_ENDPOINTS": "true"}).runpod_no_endpoints is True
    before = {"runpod:vol9ab": Observed(NOW - 30 * HOUR, NOW - 25 * HOUR)}
    unread = read_inventory([], [volume()], RUNPOD, NOW)
    assert judge_account(unread, before, SWEEP, NOW).judged[0].protections == (MOUNTS_UNKNOWN,)
