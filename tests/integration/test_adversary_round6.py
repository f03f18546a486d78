"""Round 6, adversary (moto and the providers' emulators): RunPod's re-read just before a network volume's deletion,
and what age guard writes in a member account the hub only tells. Each test names the promise it broke (each failed
before its fix); age guard's scope stamp in a told-only account was decided as documented and is guarded here."""

from __future__ import annotations

import json
import types
from typing import Any

import pytest

from tests.conftest import load_event
from tests.integration.test_organization_forwarded import (  # noqa: F401 (fixtures)
    REGION,
    Accounts,
    accounts,
    age_guard,
    assumed,
    in_account,
    invoke,
)
from tests.integration.test_provider_sweep import World, of, world  # noqa: F401
from tests.integration.test_runpod_recheck import after_first_read, due
from trainctl.aws.clients import ClientFactory
from trainctl.core import tags


def raw_pod(pod_id: str, **changes: Any) -> dict[str, Any]:
    """A pod of GET /v2/pods in the documented shape (as the emulator lists one), changed as given."""
    record: dict[str, Any] = {
        "id": pod_id,
        "name": "train-ana-llama",
        "status": "RUNNING",
        "cost": 2.0,
        "createdAt": "2026-11-30T08:00:00Z",
        "startedAt": "2026-11-30T08:00:00Z",
        "locked": False,
        "mounts": {"network": []},
        "runtime": {"uptime": 60, "gpus": [{"util": 50.0, "memoryUtil": 10.0}]},
    }
    return {**record, **changes}


# -- RunPod: the pods read again just before a network volume's deletion -------------------------------------------


@pytest.mark.parametrize("mounts", [None, {"network": None}], ids=["mounts-null", "network-null"])
def test_a_pod_whose_mounts_is_null_when_read_again_does_not_let_its_volume_be_deleted(
    world: World,  # noqa: F811
    mounts: Any,
) -> None:
    """Promise: a network volume is deleted only when every mount is known and none is of it; "a pod whose mounts
    are unknown might mount any volume" (runpod/read.py). Round 5 made an endpoint's null `networkVolumes` unknown;
    a pod's null `mounts` (or null `mounts.network`) is still read as "mounts none", in the sweep's read and in the
    re-read just before the delete: a pod that appears with its mounts unknown lets the volume go."""
    volume = due(world)
    happened = after_first_read(
        world, "/serverless", lambda: world.runpod.raw_pods.append(raw_pod("podnull01", mounts=mounts))
    )
    acted = world.sweep_runpod()
    assert happened, "the sweep did not read the endpoints"
    assert volume in world.runpod.volumes, f"deleted while pod podnull01's mounts are unknown: {of(acted, volume)}"
    assert of(acted, volume).protections == ("mounts-unknown",)


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_pod_dated_off_the_calendar_when_read_again_keeps_the_volume_and_ends_the_sweep(
    world: World,  # noqa: F811
    created: str,
) -> None:
    """Promise: one resource never stops the sweep; a value that cannot be read protects that resource (safety
    model 6), and a re-read that cannot be read keeps the volume as mounts-unknown. RunPod's `_time` parses the
    text, then converts it to UTC outside its try: an offset that carries the date past year 1 or 9999 raises
    OverflowError (parse_instant and Lyceum's reader both catch it). Here one pod answered so after the sweep
    recorded its intent: the sweep dies mid-act with no outcome recorded, instead of keeping the volume."""
    volume = due(world)
    happened = after_first_read(
        world, "/serverless", lambda: world.runpod.raw_pods.append(raw_pod("podold01", createdAt=created))
    )
    acted = world.sweep_runpod()
    assert happened
    assert volume in world.runpod.volumes
    assert of(acted, volume).protections == ("mounts-unknown",)


# -- age guard in a member account only told ------------------------------------------------------------------------


def created_volume(account: str, volume_id: str) -> dict[str, Any]:
    """A member's CloudTrail CreateVolume call for its volume, as its spoke forwards it."""
    event: dict[str, Any] = load_event("age_guard", "create_volume_iam_user")
    event = json.loads(json.dumps(event).replace("123456789012", account))
    event["detail"]["responseElements"]["volumeId"] = volume_id
    return event


def test_age_guard_writes_only_its_birth_stamps_in_a_member_still_in_its_first_dry_run(
    factory: ClientFactory,
    accounts: Accounts,  # noqa: F811
    age_guard: types.ModuleType,  # noqa: F811
    assumed: list[str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Promise (README, Organization, "Told only"): in a covered account not yet onboarded the only writes are age
    guard's birth stamps: who, when, the owner, and the scope tag a scope rule gives at birth (decided in round 6:
    a resource born in scope is stamped so while the account is told only, or it would stay outside the guardrail
    once enforcement begins; a told-only account's sweeps are dry-runs, so the tag brings no action)."""
    monkeypatch.setenv("TRAINCTL_SCOPE_FROM_TAG", "team=ml")
    age_guard.deployed_settings.cache_clear()
    carol = in_account(accounts.carol)
    volume = carol.ec2(REGION).create_volume(
        AvailabilityZone=f"{REGION}a",
        Size=10,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "team", "Value": "ml"}]}],
    )["VolumeId"]
    result = invoke(age_guard, created_volume(accounts.carol, volume), "trainctl-age_guard")
    assert result["why_dry_run"] == "first-sweep", result  # the hub only tells carol
    found = {t["Key"]: t["Value"] for t in carol.ec2(REGION).describe_volumes(VolumeIds=[volume])["Volumes"][0]["Tags"]}
    written = set(found) - {"team"}
    assert written <= {tags.CREATED_AT, tags.CREATED_BY, tags.OWNER, tags.MANAGED}, written
    assert tags.CREATED_AT in written and found[tags.MANAGED] == "true"
