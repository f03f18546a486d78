"""RunPod and Lyceum in the time-lapse (bench/timelapse/providers.py): three and a half days of the deployed
provider schedule against the emulators on the simulated clock, judged by the oracle. No wrong action, and every
provider story acted on within its bound: the idle pod stopped (and, left stopped, terminated a stopped max age
later), the long-exited pod terminated, the orphaned
volume deleted, the VM past its ttl terminated; the busy and locked pods, the volume an endpoint mounts and the
VMs in use or out of scope never touched."""

from __future__ import annotations

from bench.timelapse.providers import provider_time_lapse

ACTED = (
    "idle RunPod pod stopped",
    "stopped RunPod pod terminated",
    "exited RunPod pod terminated",
    "orphaned RunPod volume deleted",
    "Lyceum VM past its ttl terminated",
)
UNTOUCHED = {
    "busy RunPod pod",
    "locked RunPod pod",
    "RunPod volume an endpoint mounts",
    "Lyceum VMs used and ended in their ttl",
    "Lyceum VM out of scope",
}


def test_every_provider_story_is_acted_on_within_its_bound_and_nothing_in_use_is_touched() -> None:
    # No AWS cast: the providers alone, with a one-day stopped max age so that the exited pod's turn comes.
    record, judgement, _wall = provider_time_lapse(
        days=3.5, seed=11, cast=lambda _world: [], overrides={"stopped_max_age": "1d"}
    )
    assert judgement.failures() == [], "\n".join(str(f) for f in judgement.failures())
    table = judgement.by_promise()
    for promise in ACTED:
        assert table.get(promise, {}).get("correct") == 1, (promise, table.get(promise))
    kept = {f.story for f in judgement.findings if f.promise == "nothing in use is stopped or destroyed"}
    assert kept == UNTOUCHED
    sweeps = [i for i in record.invocations if i.function == "provider_sweep"]
    # Both providers on the sweep's hourly schedule, every run answered (no provider error, no handler error).
    assert len(sweeps) == 2 * 84
    assert all(i.result and not i.result.get("error") and not i.error for i in sweeps)
    # The volume an endpoint mounts is kept by name (`endpoint-mounted`), not merely never reached.
    said = {p for i in sweeps if i.result for d in i.result["decisions"] for p in d["protections"]}
    assert "endpoint-mounted" in said


def test_the_default_time_lapse_tells_the_provider_stories_beside_the_aws_cast() -> None:
    from bench.timelapse.run import time_lapse

    run = time_lapse(days=1.5, seed=3, cast="small", providers=True)
    assert run.judgement.failures() == [], "\n".join(str(f) for f in run.judgement.failures())
    functions = {i.function for i in run.record.invocations}
    assert {"cleanup_sweep", "provider_sweep"} <= functions
    stories = set(run.judgement.stories)
    assert "busy RunPod pod" in stories and any("notebook" in s or "Notebook" in s for s in stories), stories
