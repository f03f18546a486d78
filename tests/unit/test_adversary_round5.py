"""Round 5, adversary (pure): RunPod's endpoints answer, a key echoed by a provider, and the providers' recorded
burn that cost_alerts adds to the totals it alerts on. Each test names the promise it breaks; the marked ones fail
on the code as it stands and are kept (strict xfail) until the fix lands."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.unit.test_provider_http import KEY, ScriptedPool, answer
from trainctl.providers.burn import RECORD_VERSION, decode, newest_burn
from trainctl.providers.http import ProviderHttp
from trainctl.runpod.client import RunpodClient, read_account
from trainctl.runpod.read import read_inventory
from trainctl.runpod.settings import RunpodSettings

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SETTINGS = RunpodSettings(runpod_name_prefix="train-")
VOLUME = {"id": "vol1abc", "name": "train-ana-data", "size": 100, "dataCenter": "EU-RO-1"}
MAX_AGE = timedelta(minutes=45)


# -- RunPod: an endpoints answer that cannot be read keeps every volume -------------------------------------------


def test_an_endpoint_whose_network_volumes_is_null_leaves_every_volumes_mounts_unknown() -> None:
    """Promise: an endpoints answer that cannot be read (a null among them) keeps every volume. RunPod documents
    `networkVolumes` as a list of ids; a null is not that list, and an endpoint whose mounts are not known might
    mount any volume. The read takes null as "mounts none", so the volume becomes deletable."""
    inventory = read_inventory(
        [], [VOLUME], SETTINGS, NOW, endpoints=[{"id": "ep1serve", "name": "train-ana-serve", "networkVolumes": None}]
    )
    assert not inventory.endpoint_mounts_known, "a null `networkVolumes` was read as a known, empty list of mounts"


def test_an_endpoint_listing_a_volume_id_of_the_wrong_type_or_twice_still_protects_it() -> None:
    """Holds: duplicate endpoint ids, a volume listed twice, and an object instead of an id: nothing is lost."""
    endpoints: list[Any] = [
        {"id": "ep1serve", "networkVolumes": ["vol1abc", "vol1abc"]},
        {"id": "ep1serve", "networkVolumes": []},
    ]
    [volume] = read_inventory([], [VOLUME], SETTINGS, NOW, endpoints=endpoints).volumes
    assert volume.endpoint_mounts == ("ep1serve", "ep1serve")
    odd = read_inventory([], [VOLUME], SETTINGS, NOW, endpoints=[{"id": "ep2", "networkVolumes": [{"id": "vol1abc"}]}])
    assert not odd.endpoint_mounts_known


# -- a key a provider echoes back never travels on ----------------------------------------------------------------


def escaped(text: str) -> str:
    """The text as a JSON encoder that escapes every character writes it (valid JSON, the same string once read)."""
    return "".join(f"\\u{ord(ch):04x}" for ch in text)


def runpod_http(answers: list[Any]) -> ProviderHttp:
    return ProviderHttp(
        provider="runpod",
        base_url="https://api.example.test/v2",
        key=KEY,
        pool=ScriptedPool(answers),  # type: ignore[arg-type]
        sleep=lambda _s: None,
        monotonic=lambda: 1000.0,
        now=lambda: NOW,
    )


def test_a_key_echoed_with_json_escapes_never_reaches_the_read() -> None:
    """Promise: a provider's API key never appears in a log, error, notice or the ledger, even when the provider
    echoes it. The answer is redacted as bytes before it is parsed, so a key written with JSON escapes
    (`\\u0072pa_...`) is not found there and comes out of json.loads whole: here as a serverless endpoint's id,
    which the sweep's decision detail names ("serverless endpoint <id> mounts it")."""
    endpoints = f'{{"endpoints":[{{"id":"{escaped(KEY)}","name":"x","networkVolumes":["vol1abc"]}}]}}'
    http = runpod_http(
        [
            answer(200, {"pods": []}),
            answer(200, {"networkVolumes": [VOLUME]}),
            answer(200, raw=endpoints.encode()),
        ]
    )
    inventory = read_account(RunpodClient(http), SETTINGS, NOW)
    assert KEY not in repr(inventory), "the key, echoed with JSON escapes, is in what the read returns"


def test_a_key_echoed_plainly_is_redacted_before_the_read() -> None:
    """Holds: the same echo written plainly is redacted, and the endpoint's id is then no id at all."""
    endpoints = {"endpoints": [{"id": KEY, "name": "x", "networkVolumes": ["vol1abc"]}]}
    http = runpod_http([answer(200, {"pods": []}), answer(200, {"networkVolumes": [VOLUME]}), answer(200, endpoints)])
    inventory = read_account(RunpodClient(http), SETTINGS, NOW)
    assert KEY not in repr(inventory) and not inventory.endpoint_mounts_known


# -- the providers' recorded burn ----------------------------------------------------------------------------------


def record(at: datetime, hourly: Any) -> bytes:
    """A record as a provider's function writes it (providers.burn.encode), with one pod at `hourly`."""
    body = {
        "version": RECORD_VERSION,
        "provider": "runpod",
        "at": at.isoformat().replace("+00:00", "Z"),
        "error": None,
        "notes": [],
        "breaches": [],
        "resources": [
            ["runpod:pod1", "instance", "runpod", "ana", "pod", hourly, 0.0, "runpod", "2026-12-01T00:00:00Z", [], ""]
        ],
    }
    return zlib.compress(json.dumps(body).encode())


def recorded(blob: bytes, at: datetime) -> Any:
    """What cost_alerts adds for RunPod from this record (DynamoDbBurnStore.read, then newest_burn)."""
    try:
        found: Any = decode(blob)
    except Exception as exc:  # the store keeps the reason, and the provider is unknown by name
        found = str(exc)
    [costs] = newest_burn({"runpod": found}, ["runpod"], at, MAX_AGE)
    return costs


def test_a_burn_record_dated_in_the_future_is_not_taken_as_fresh() -> None:
    """Promise: a record older than the bound makes that provider's burn unknown, named, never a stale figure. A
    record dated a day ahead (a forged record, or a function whose clock ran ahead) is younger than any bound at
    every later check, so its figure would be added for a day after the provider stopped recording."""
    costs = recorded(record(NOW + timedelta(days=1), 2.0), NOW)
    assert costs.error is not None and "unknown" in costs.error


@pytest.mark.parametrize("hourly", [-500.0, float("nan"), float("inf")])
def test_a_burn_record_with_a_price_no_provider_charges_is_refused(hourly: float) -> None:
    """Promise: a forged or broken record never lowers the burn cost_alerts checks. A negative hourly price
    subtracts from the AWS burn (hiding a breach); NaN makes every comparison with a threshold false (no alert
    at all). decode takes any float: the record should be unreadable, its provider unknown by name."""
    costs = recorded(record(NOW - timedelta(minutes=5), hourly), NOW)
    assert costs.error is not None and costs.resources == ()


def test_a_stale_or_unreadable_burn_record_is_unknown_never_zero() -> None:
    """Holds: a record past the bound, or bytes that are not a record, make the provider unknown, not $0."""
    stale = recorded(record(NOW - timedelta(hours=2), 2.0), NOW)
    junk = recorded(b"not a record", NOW)
    for costs in (stale, junk):
        assert costs.resources == () and costs.error is not None and "not $0" in costs.error
