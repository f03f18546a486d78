"""Round 5, adversary (moto): events a member account forwards to the hub, and a RunPod network volume an endpoint
starts to mount while a sweep acts. Each test names the promise it breaks; the marked ones fail on the code as it
stands and are kept (strict xfail) until the fix lands. The multi-account set-up is test_organization_forwarded's.
"""

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
    ledger_items,
    spot,
    spot_snapshots,
    warning,
)
from tests.integration.test_provider_sweep import GRACE, HOUR, SETTINGS, World, actions_of, world  # noqa: F401
from trainctl.aws.clients import ClientFactory
from trainctl.cli.runpod_emulator import EmulatedEndpoint
from trainctl.core import tags

# -- events a member account forwarded ------------------------------------------------------------------------------


def test_a_warning_claiming_another_account_silences_the_real_warning_for_that_instance(
    factory: ClientFactory,
    accounts: Accounts,  # noqa: F811
    spot: types.ModuleType,  # noqa: F811
    assumed: list[str],  # noqa: F811
) -> None:
    """Promise: a warning for an instance of account A carried in an event claiming account B never keeps A's
    instance from being saved; notices and records of one account never stand for another's. The idempotency key
    is the instance id, detail-type and state, without the account: bob's event for alice's instance (not found
    in bob, refused there) is stored under the key, and alice's own warning for it, an hour's window long, gets
    bob's stored answer back: no checkpoint, no snapshot, no notice to its owner."""
    alice, bob = accounts.alice, accounts.bob
    trainer = accounts.instances[alice]
    crossed = invoke(spot, warning(bob, trainer), "trainctl-spot_interruption")
    assert crossed["account"] == bob and crossed["status"] != "handled"  # nothing of bob's was touched
    real = warning(alice, trainer)
    real["id"] = "7c1d6b2e-0000-4000-8000-00000000a11c"  # another delivery, its own event id
    result = invoke(spot, real, "trainctl-spot_interruption")
    assert result.get("account") == alice, f"alice's warning was answered with another account's result: {result}"
    assert result["status"] == "handled"
    assert len(spot_snapshots(in_account(alice))) == 1


def test_the_same_members_warning_twice_acts_once_and_is_labelled_with_its_account(
    factory: ClientFactory,
    accounts: Accounts,  # noqa: F811
    spot: types.ModuleType,  # noqa: F811
    assumed: list[str],  # noqa: F811
) -> None:
    """Holds: EventBridge's second delivery of a covered member's warning takes no second snapshot, and every
    ledger item about it carries that account."""
    alice = accounts.alice
    event = warning(alice, accounts.instances[alice])
    first = invoke(spot, event, "trainctl-spot_interruption")
    again = invoke(spot, event, "trainctl-spot_interruption")
    assert first == again and first["status"] == "handled"
    assert len(spot_snapshots(in_account(alice))) == 1
    about = [i for i in ledger_items(factory) if accounts.instances[alice] in i["pk"]["S"]]
    assert about and all(i["account"] == {"S": alice} for i in about)


def test_a_covered_members_warning_from_a_region_outside_the_organizations_is_refused_and_writes_nothing(
    factory: ClientFactory,
    accounts: Accounts,  # noqa: F811
    spot: types.ModuleType,  # noqa: F811
    assumed: list[str],  # noqa: F811
) -> None:
    """Holds: a region the organization does not cover is refused by name before any spoke is assumed."""
    event = warning(accounts.alice, accounts.instances[accounts.alice])
    event["region"] = "ap-southeast-4"
    before = ledger_items(factory)
    result = invoke(spot, event, "trainctl-spot_interruption")
    assert result["status"] == "refused" and result["refused"] == "region-not-covered"
    assert ledger_items(factory) == before and assumed == []


def started(account: str, instance_id: str) -> dict[str, Any]:
    """A member's CloudTrail StartInstances call for its instance (a use: age_guard voids marks on it)."""
    event: dict[str, Any] = load_event("age_guard", "attach_volume_console_user")
    event = json.loads(json.dumps(event).replace("123456789012", account))
    detail = event["detail"]
    detail["eventName"] = "StartInstances"
    detail["requestParameters"] = {"instancesSet": {"items": [{"instanceId": instance_id}]}}
    detail["responseElements"] = {"instancesSet": {"items": [{"instanceId": instance_id}]}}
    return event


def test_age_guard_writes_nothing_but_stamps_in_a_member_still_in_its_first_dry_run(
    factory: ClientFactory,
    accounts: Accounts,  # noqa: F811
    age_guard: types.ModuleType,  # noqa: F811
    assumed: list[str],  # noqa: F811
) -> None:
    """Promise: a covered account still in its first dry-run is only told; nothing is written in it (README,
    Organization: age guard's stamps, who made a resource and when where unset, are the one exception). A use
    call forwarded from such an account (carol: never onboarded) goes to void_marks_on_use, which deletes the
    `trainctl:cleanup-after` tag in the member through the spoke role: trainctl never marked anything there, so
    the tag it deletes is a person's own."""
    carol = in_account(accounts.carol)
    trainer = accounts.instances[accounts.carol]
    carol.ec2(REGION).create_tags(Resources=[trainer], Tags=[{"Key": tags.CLEANUP_AFTER, "Value": "2026-12-01T00:00Z"}])
    invoke(age_guard, started(accounts.carol, trainer), "trainctl-age_guard")
    found = carol.ec2(REGION).describe_tags(
        Filters=[{"Name": "resource-id", "Values": [trainer]}, {"Name": "key", "Values": [tags.CLEANUP_AFTER]}]
    )["Tags"]
    assert found, "age_guard deleted a tag in an account it has not onboarded (first dry-run)"
    # The use is recorded all the same, hub side and under carol's account: a later sweep reads it.
    uses = [i for i in ledger_items(factory) if trainer in i["pk"]["S"] and i.get("action") == {"S": "unmark"}]
    assert uses and all(i["account"] == {"S": accounts.carol} for i in uses)


# -- RunPod: an endpoint that starts mounting a volume while the sweep acts -----------------------------------------


def mount_after_next_endpoints_read(world: World, volume_id: str) -> list[str]:  # noqa: F811
    """Right after trainctl's next GET /v2/serverless is answered, an endpoint starts with this volume mounted
    (a person deploys it between the read and the action). Returns the endpoint ids made."""
    emulator = world.runpod
    route = emulator._route
    made: list[str] = []

    def racing(method: str, path: str, body: bytes) -> tuple[int, Any]:
        answered = route(method, path, body)
        if method == "GET" and path.split("?", 1)[0].endswith("/serverless") and not made:
            # Under the emulator's lock already: the endpoint is added as its own seeding would add it.
            endpoint = EmulatedEndpoint("epracing01", "train-ana-serve", emulator.now(), (volume_id,))
            emulator.endpoints[endpoint.id] = endpoint
            made.append(endpoint.id)
        return answered

    emulator._route = racing  # type: ignore[method-assign]
    return made


def test_a_volume_an_endpoint_starts_to_mount_while_the_sweep_acts_is_not_deleted(
    world: World,  # noqa: F811
) -> None:
    """Promise: a network volume an endpoint mounts is never deleted, also when the endpoint starts mounting it
    between the mark and the action. The sweep reads GET /v2/serverless once, before it records its intent and
    acts on every pod first; it deletes the volume on that read, without asking again just before, as the AWS
    sweep re-reads a volume's own use just before deleting it (safety model 12)."""
    volume = world.runpod.seed_volume("train-ana-data")
    preview = SETTINGS.model_copy(update={"dry_run": True})
    for _ in range(int(3 * GRACE / HOUR)):
        world.clock.at += HOUR
        if "delete" in actions_of([world.sweep_runpod(settings=preview)], volume):
            break
        world.sweep_runpod()
    else:
        pytest.fail("the orphaned volume never came due: the set-up is wrong")
    made = mount_after_next_endpoints_read(world, volume)
    acted = world.sweep_runpod()
    assert made, "the sweep did not read the endpoints"
    assert volume in world.runpod.volumes, f"deleted while {made[0]} mounts it: {actions_of([acted], volume)}"
    # Kept by name, as the AWS sweep keeps a volume its re-read finds in use.
    [kept] = [d for d in acted.result.decisions if d.resource_id == f"runpod:{volume}"]
    assert (kept.action, kept.protections) == ("keep", ("endpoint-mounted",)) and made[0] in kept.detail
