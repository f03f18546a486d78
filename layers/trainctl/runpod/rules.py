"""RunPod's sweep rules: pure functions of (account read, what earlier sweeps saw, settings, clock).

- A running pod idle for the whole idle window is stopped. Idle is the busiest GPU under
  TRAINCTL_IDLE_GPU_PERCENT in every sample the sweeps took across the window (kept in the ledger, since RunPod
  reports only the present): samples that do not cover the window are no evidence either way, and a pod with no
  GPU reading is never idle by default.
- A pod exited for longer than TRAINCTL_STOPPED_MAX_AGE is terminated; RunPod does not say when a pod exited, so
  the clock starts when a sweep first saw it exited.
- A network volume no pod or serverless endpoint mounts, first seen with no pod mounting it longer ago than the
  grace period, is deleted; but only when every mount is known. One a serverless endpoint's workers mount is kept
  as `endpoint-mounted`, naming the endpoint. While any pod or endpoint is unreadable, or the endpoints list
  cannot be read, every such volume is kept as `mounts-unknown`: a guess that deletes a serverless endpoint's data
  cannot be taken back; a kept volume costs $0.07 per GB-month.
- `locked` pods and pods up for less than an hour are protected; what cannot be read is protected by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Literal

from trainctl.core.protections import Protection
from trainctl.core.sweep_settings import SweepSettings
from trainctl.providers.sweep import (
    PROVIDER_PRICE_SOURCE,
    SAMPLE_WINDOWS_KEPT,
    Judged,
    Judgement,
    Observed,
    ledger_id,
    whole_second,
)
from trainctl.runpod.read import PROVIDER, NetworkVolume, Pod, RunpodInventory, Unreadable
from trainctl.sweep.rules import MARK_SLACK, Reason

LOCKED = "locked"
MOUNTS_UNKNOWN = "mounts-unknown"
ENDPOINT_MOUNTED = "endpoint-mounted"
# A pod mounts it when read again just before the deletion (before then, a mounted volume is no candidate at all).
MOUNTED = "mounted"
# The rule: a pod up for less than this is nobody's forgotten pod yet.
MIN_UPTIME = timedelta(hours=1)

Idleness = Literal["idle", "in use", "no evidence"]


def pod_id(pod: Pod) -> str:
    return ledger_id(PROVIDER, pod.resource_id)


def volume_id(volume: NetworkVolume) -> str:
    return ledger_id(PROVIDER, volume.resource_id)


def busiest_gpu(pod: Pod) -> float | None:
    """The busiest GPU's utilisation now; None when the answer holds no GPU reading."""
    return max(pod.gpu_util) if pod.gpu_util else None


def observe_pod(pod: Pod, before: Observed | None, settings: SweepSettings, now: datetime) -> Observed:
    """What to remember of a pod: when first seen, since when exited, and its GPU samples of the current run."""
    first_seen = before.first_seen if before else now
    exited_since = None
    if pod.status == "EXITED":
        exited_since = before.since if before and before.since else now
    samples: tuple[tuple[datetime, float], ...] = ()
    if pod.status == "RUNNING":
        keep_from = now - SAMPLE_WINDOWS_KEPT * settings.idle_window
        started = pod.instance.launch_time
        kept = [(at, util) for at, util in (before.samples if before else ()) if at >= keep_from and at >= started]
        util = busiest_gpu(pod)
        if util is not None:
            kept.append((whole_second(now), util))  # as the ledger will keep it
        samples = tuple(kept)
    return Observed(first_seen=first_seen, since=exited_since, samples=samples)


def pod_idleness(pod: Pod, seen: Observed, settings: SweepSettings, now: datetime) -> Idleness:
    """Idle only on evidence covering the whole window: a sample at its start, none further apart than the window
    itself (the AWS sweep's rule for marks), and every one under the threshold. A start within it is use.
    Samples are kept to the whole second, so the window is judged in whole seconds from this sweep's own."""
    if pod.status != "RUNNING":
        return "in use"
    if now - pod.instance.launch_time < settings.idle_window:
        return "in use"
    sampled_now = whole_second(now)
    window_start = sampled_now - settings.idle_window
    relevant = [(at, util) for at, util in seen.samples if at >= window_start - MARK_SLACK]
    if any(util >= settings.idle_gpu_percent for _, util in relevant):
        return "in use"
    if busiest_gpu(pod) is None or not relevant or relevant[-1][0] != sampled_now:
        return "no evidence"  # no reading this sweep: no answer is not evidence either way
    if relevant[0][0] > window_start + MARK_SLACK:
        return "no evidence"  # the window's start was not sampled
    if any(later - earlier > settings.idle_window for (earlier, _), (later, _) in pairwise(relevant)):
        return "no evidence"
    return "idle"


def judge_pod(pod: Pod, seen: Observed, settings: SweepSettings, now: datetime) -> Judged | None:
    """A pod in scope: why it should be stopped or terminated, and what protects it."""
    base = Judged(
        resource_id=pod_id(pod),
        resource_type="instance",
        region=PROVIDER,
        action="terminate",
        owner=pod.owner,
        hourly_usd=pod.hourly_usd,
        price_source=PROVIDER_PRICE_SOURCE,
    )
    if pod.status == "TERMINATED":
        return None
    reasons: list[str] = []
    action: Literal["stop", "terminate"] = "terminate"
    details: list[str] = []
    if pod.status == "EXITED" and seen.since is not None and now - seen.since >= settings.stopped_max_age:
        reasons.append(Reason.STOPPED_TOO_LONG)
        details.append(f"exited since at least {seen.since:%Y-%m-%dT%H:%MZ}")
    idleness = pod_idleness(pod, seen, settings, now)
    if idleness == "idle":
        reasons.append(Reason.IDLE)
        action = "stop"
        details.append(f"every GPU under {settings.idle_gpu_percent:g}% across the last {_hours(settings.idle_window)}")
    if not reasons:
        unobserved = idleness == "no evidence"
        return replace(
            base, unobserved=unobserved, detail="no GPU reading covers the idle window" if unobserved else ""
        )
    protections: list[str] = []
    if pod.locked:
        protections.append(LOCKED)
        details.append("RunPod says it is locked")
    up_since = pod.started_at or pod.instance.launch_time
    if pod.status == "RUNNING" and (
        (pod.uptime_s is not None and pod.uptime_s < MIN_UPTIME.total_seconds()) or now - up_since < MIN_UPTIME
    ):
        protections.append(str(Protection.MIN_AGE))
        details.append("up for less than an hour")
    return replace(
        base,
        action=action,
        reasons=tuple(str(r) for r in reasons),
        protections=tuple(protections),
        detail="; ".join(details),
    )


def observe_volume(volume: NetworkVolume, before: Observed | None, mounts_known: bool, now: datetime) -> Observed:
    """What to remember of a network volume: when first seen, and since when seen with no pod mounting it."""
    first_seen = before.first_seen if before else now
    unmounted_since = before.since if before else None
    if volume.mounted_by:
        unmounted_since = None
    elif unmounted_since is None and mounts_known:
        # While a pod's answer is unreadable nobody knows what it mounts: the clock does not start.
        unmounted_since = now
    return Observed(first_seen=first_seen, since=unmounted_since)


def judge_volume(
    volume: NetworkVolume,
    seen: Observed,
    mounts_known: bool,
    endpoint_problems: tuple[str, ...],
    settings: SweepSettings,
    now: datetime,
) -> Judged | None:
    """A network volume in scope: a candidate once no pod has mounted it for a grace period; kept while a
    serverless endpoint mounts it, or while a pod's or an endpoint's mounts are not known."""
    base = Judged(
        resource_id=volume_id(volume),
        resource_type="volume",
        region=PROVIDER,
        action="delete",
        owner=volume.owner,
    )
    if volume.mounted_by or seen.since is None or now - seen.since < settings.grace_period:
        return base
    protections: list[str] = []
    details = [f"no pod has mounted it since at least {seen.since:%Y-%m-%dT%H:%MZ}"]
    if volume.endpoint_mounts:
        protections.append(ENDPOINT_MOUNTED)
        details.append(f"serverless endpoint {', '.join(volume.endpoint_mounts)} mounts it")
    if not mounts_known:
        protections.append(MOUNTS_UNKNOWN)
        details.append("a pod's answer could not be read, so what it mounts is unknown")
    if endpoint_problems:
        protections.append(MOUNTS_UNKNOWN)
        details.append(f"whether a serverless endpoint mounts it is unknown: {'; '.join(endpoint_problems)}")
    return replace(
        base,
        reasons=(str(Reason.UNATTACHED),),
        protections=tuple(dict.fromkeys(protections)),
        detail="; ".join(details),
    )


def use_before_delete(
    volume_id: str, again: RunpodInventory, endpoints_mounting: Mapping[str, Sequence[str]]
) -> tuple[str, str] | None:
    """Why a network volume must stay after all, from the pods and endpoints read again just before its deletion
    (`again`, read with no volumes): its protection and what was seen; None when every mount is known and none
    is of it. As the AWS sweep re-reads a volume's use: a pod or endpoint may start mounting it after the read."""
    pods = [p.resource_id for p in again.pods if p.status != "TERMINATED" and volume_id in p.network_volume_ids]
    if pods:
        return MOUNTED, f"pod {', '.join(pods)} mounts it"
    endpoints = endpoints_mounting.get(volume_id, ())
    if endpoints:
        return ENDPOINT_MOUNTED, f"serverless endpoint {', '.join(endpoints)} mounts it"
    if not again.mounts_known:
        return MOUNTS_UNKNOWN, "a pod's answer could not be read, so what it mounts is unknown"
    if again.endpoint_problems:
        return (
            MOUNTS_UNKNOWN,
            f"whether a serverless endpoint mounts it is unknown: {'; '.join(again.endpoint_problems)}",
        )
    return None


def judge_unreadable(entry: Unreadable) -> Judged:
    return Judged(
        resource_id=ledger_id(PROVIDER, entry.label),
        resource_type=entry.resource_type,
        region=PROVIDER,
        action="keep",
        protections=(str(Protection.UNREADABLE),),
        detail=f"its answer is not in the documented shape: {entry.problem}; kept",
    )


def judge_account(
    inventory: RunpodInventory,
    before: Mapping[str, Observed],
    settings: SweepSettings,
    now: datetime,
) -> Judgement:
    """Every pod and network volume in scope judged, every unreadable one named, and what to remember."""
    judged: list[Judged] = []
    observed: dict[str, Observed] = {}
    in_scope = 0
    for pod in inventory.pods:
        if not pod.in_scope or pod.status == "TERMINATED":
            continue
        in_scope += 1
        seen = observe_pod(pod, before.get(pod_id(pod)), settings, now)
        observed[pod_id(pod)] = seen
        verdict = judge_pod(pod, seen, settings, now)
        if verdict is not None:
            judged.append(verdict)
    for volume in inventory.volumes:
        if not volume.in_scope:
            continue
        in_scope += 1
        seen = observe_volume(volume, before.get(volume_id(volume)), inventory.mounts_known, now)
        observed[volume_id(volume)] = seen
        judged_volume = judge_volume(volume, seen, inventory.mounts_known, inventory.endpoint_problems, settings, now)
        if judged_volume is not None:
            judged.append(judged_volume)
    judged.extend(judge_unreadable(entry) for entry in inventory.unreadable)
    warnings = tuple(f"runpod {u.resource_type} {u.label}: {u.problem}" for u in inventory.unreadable)
    warnings += tuple(f"runpod {problem}" for problem in inventory.endpoint_problems)
    scanned = len(inventory.pods) + len(inventory.volumes) + len(inventory.unreadable)
    return Judgement(tuple(judged), observed, scanned, in_scope, warnings)


def observed_ids(inventory: RunpodInventory) -> tuple[str, ...]:
    """The ledger ids whose earlier sightings the rules read: every pod and volume in scope."""
    return tuple(
        [pod_id(p) for p in inventory.pods if p.in_scope] + [volume_id(v) for v in inventory.volumes if v.in_scope]
    )


def _hours(span: timedelta) -> str:
    return f"{span.total_seconds() / 3600:g}h"
