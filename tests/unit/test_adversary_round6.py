"""Round 6, adversary (pure): RunPod's reading of a pod, the spot handler's idempotency key and the events it
refuses, and the organization items that now carry the plan's reason for a dry-run. Each test names the promise it
broke (and failed before its fix) or guards one that held."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import jmespath
import pytest

from tests.conftest import load_event
from trainctl.core.errors import InvalidEvent
from trainctl.core.events import parse_spot_event
from trainctl.core.sweep_settings import SweepSettings
from trainctl.organization.events import parse_item
from trainctl.organization.rules import FIRST_SWEEP, Target
from trainctl.organization.run import target_dry_run
from trainctl.organization.settings import OrganizationSettings
from trainctl.runpod.read import read_inventory
from trainctl.runpod.settings import RunpodSettings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = RunpodSettings(runpod_name_prefix="train-")
VOLUME = {"id": "vol1abc", "name": "train-ana-data", "size": 100, "dataCenter": "EU-RO-1"}
MEMBER = "210987654321"


def pod(pod_id: str, **changes: Any) -> dict[str, Any]:
    """A pod of GET /v2/pods in the documented shape, mounting the volume, changed as given."""
    record: dict[str, Any] = {
        "id": pod_id,
        "name": "train-ana-llama",
        "status": "RUNNING",
        "cost": 2.0,
        "createdAt": "2026-12-01T08:00:00Z",
        "startedAt": "2026-12-01T08:00:00Z",
        "locked": False,
        "mounts": {"network": [{"volumeId": "vol1abc"}]},
        "runtime": {"uptime": 60, "gpus": [{"util": 50.0, "memoryUtil": 10.0}]},
    }
    return {**record, **changes}


# -- RunPod: one pod's answer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["createdAt", "startedAt"])
def test_one_pod_dated_off_the_calendar_is_unreadable_and_every_other_pod_is_read(field: str) -> None:
    """Promise: a value that cannot be read protects that one resource and every other resource is decided (safety
    model 6); an answer out of range makes that pod `Unreadable` (runpod/read.py). `_time` converts to UTC outside
    its try: "0001-01-01T00:00:00+01:00" raises OverflowError out of read_inventory, so the whole RunPod read (the
    sweep, and the burn its function records) fails on one pod's date."""
    odd = pod("podold01", **{field: "0001-01-01T00:00:00+01:00"})
    inventory = read_inventory([odd, pod("podgood01")], [VOLUME], SETTINGS, NOW, endpoints=[])
    assert [u.label for u in inventory.unreadable] == ["podold01"]
    assert [p.resource_id for p in inventory.pods] == ["podgood01"]
    assert not inventory.mounts_known


def test_a_pods_mounts_in_any_other_shape_leave_the_volumes_mounts_unknown() -> None:
    """Holds: a `mounts` that is not an object, a `network` that is not a list, or a volume id of the wrong shape
    (whitespace, another type) makes the pod unreadable, so no volume is judged unmounted."""
    odd_shapes: list[Any] = [
        [],
        {"network": {"volumeId": "vol1abc"}},
        {"network": [{"volumeId": " vol1abc"}]},
        {"network": [{"volumeId": ["vol1abc"]}]},
        {"network": ["vol1abc"]},
    ]
    for mounts in odd_shapes:
        inventory = read_inventory([pod("pododd01", mounts=mounts)], [VOLUME], SETTINGS, NOW, endpoints=[])
        assert not inventory.mounts_known, mounts


# -- spot_interruption: the events it refuses, and its idempotency key -----------------------------------------------

# spot_interruption's key (functions/spot_interruption/handler.py), as Powertools evaluates it on the raw event.
IDEMPOTENCY_KEY = '[account, detail."instance-id", "detail-type", detail.state]'


@pytest.mark.parametrize("account", ["absent", 123456789012, ["123456789012"], None])
def test_a_spot_event_whose_account_is_absent_or_not_text_is_refused_before_any_record(account: Any) -> None:
    """Holds: the account the key names is required text; an event without it, or with a number, list or null
    there, is refused at the edge (before the idempotency record and before any verdict)."""
    event: dict[str, Any] = load_event("spot_interruption", "warning")
    if account == "absent":
        del event["account"]
    else:
        event["account"] = account
    with pytest.raises(InvalidEvent):
        parse_spot_event(event)


def test_the_idempotency_key_of_one_instance_differs_by_account_and_names_it() -> None:
    """Holds: the same instance id, detail-type and state under two accounts gives two keys; the parsed account is
    the very text the key holds (no coercion at the edge that would let two spellings share or split a key)."""
    event: dict[str, Any] = load_event("spot_interruption", "warning")
    other = copy.deepcopy(event)
    other["account"] = MEMBER
    assert jmespath.search(IDEMPOTENCY_KEY, event) != jmespath.search(IDEMPOTENCY_KEY, other)
    for raw in (event, other):
        assert jmespath.search(IDEMPOTENCY_KEY, raw)[0] == parse_spot_event(raw).account


# -- the organization's items: an item may only ask for less ---------------------------------------------------------


class NoneOnboarded:
    """The hub's records with no account onboarded (no completed first dry-run)."""

    def onboarded(self, accounts: Sequence[str]) -> frozenset[str]:
        return frozenset()


def test_an_item_that_asks_to_enforce_on_an_account_never_onboarded_is_swept_as_its_first_dry_run() -> None:
    """Holds: an item saying dry_run false for an account the hub's records have not onboarded is decided again
    from the records: it stays the account's first dry-run, whatever the enforcement settings say."""
    org = OrganizationSettings(org_units=("ou-ab12-cdef3456",), org_enforce_accounts=(MEMBER,))
    sweep = SweepSettings(dry_run=False, regions=("us-east-1",))
    target = Target(MEMBER, "us-east-1", False)
    assert target_dry_run(target, org, sweep, NoneOnboarded(), None) == FIRST_SWEEP  # type: ignore[arg-type]


def test_an_item_that_claims_a_reason_while_enforced_or_a_reason_of_its_own_is_refused() -> None:
    """Holds: why_dry_run only with dry_run true, and only the plan's own reasons; nothing else in the item."""
    base = {"account": MEMBER, "region": "us-east-1"}
    for item in (
        {**base, "dry_run": False, "why_dry_run": FIRST_SWEEP},
        {**base, "dry_run": True, "why_dry_run": "planned\nforged line"},
        {**base, "dry_run": False, "enforce": True},
    ):
        with pytest.raises(InvalidEvent):
            parse_item(item)
