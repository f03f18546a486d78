"""A provider's recorded burn (providers.burn): the record keeps every priced resource and balance breach as it was,
a fresh one is added as recorded, and one that is stale, failed, unreadable or missing is its provider unknown by
name, never $0."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

import pytest

from trainctl.core.errors import TrainctlError
from trainctl.cost.rules import Breach, ResourceCost
from trainctl.cost.run import ProviderCosts
from trainctl.providers.burn import RecordedBurn, decode, encode, newest_burn

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
BOUND = timedelta(minutes=45)


def pod(resource_id: str, hourly: float | None, accumulated: float | None) -> ResourceCost:
    return ResourceCost(
        resource_id,
        "instance",
        "",
        "ana",
        "pod RUNNING",
        hourly,
        accumulated,
        "provider-api" if hourly is not None else "unpriced",
        AT - timedelta(hours=12),
        ("lower-bound",),
        "" if hourly is not None else "unreadable: status 'PAUSED'",
        provider="runpod",
    )


PRICED = ProviderCosts(
    "runpod",
    (pod("pod-a", 46.0, 552.0), pod("pod-b", None, None)),
    (Breach("balance:lyceum", "balance", "lyceum", 40.0, 100.0),),
    notes=("a note",),
)


def test_a_record_gives_back_every_resource_breach_and_note_as_priced() -> None:
    recorded = decode(encode(PRICED, AT))
    assert recorded.at == AT
    assert recorded.costs.resources == PRICED.resources
    assert recorded.costs.breaches == PRICED.breaches and recorded.costs.notes == ("a note",)
    assert recorded.costs.error is None


def test_a_fresh_record_is_added_as_recorded_and_a_stale_one_is_unknown_by_name() -> None:
    recorded = {"runpod": RecordedBurn(AT, PRICED)}
    [fresh] = newest_burn(recorded, ("runpod",), AT + BOUND, BOUND)
    assert fresh is PRICED
    [stale] = newest_burn(recorded, ("runpod",), AT + BOUND + timedelta(minutes=1), BOUND)
    assert stale.resources == () and stale.error == (
        "runpod: burn unknown, not $0: last recorded 2026-11-28T12:00:00Z, 46 minutes ago (over 45m)"
    )


def test_a_missing_failed_or_unreadable_record_is_its_provider_unknown_and_only_deployed_providers_count() -> None:
    failed = RecordedBurn(AT, ProviderCosts("runpod", error="runpod: the API refused the key"))
    found = newest_burn(
        {"runpod": failed, "lyceum": "the recorded burn could not be read (error)", "gone": RecordedBurn(AT, PRICED)},
        ("runpod", "lyceum"),
        AT,
        BOUND,
    )
    assert [(c.provider, c.error, c.resources) for c in found] == [
        ("runpod", "runpod: burn unknown, not $0: runpod: the API refused the key", ()),
        ("lyceum", "lyceum: burn unknown, not $0: the recorded burn could not be read (error)", ()),
    ]
    [none] = newest_burn({}, ("runpod",), AT, BOUND)
    assert none.error == "runpod: burn unknown, not $0: its function has recorded none yet"


@pytest.mark.parametrize("blob", [b"not compressed", zlib.compress(b"{not json"), zlib.compress(b'{"version": 99}')])
def test_a_record_trainctl_cannot_read_is_an_error_in_words(blob: bytes) -> None:
    with pytest.raises(TrainctlError, match=r"^the recorded burn could not be read \(\w+\)$"):
        decode(blob)
