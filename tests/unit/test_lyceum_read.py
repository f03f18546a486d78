"""Lyceum's VMs and runs read into the resource model: states, times, scope, owner, price, and bad shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trainctl.core.errors import SettingsError
from trainctl.core.protections import Protection
from trainctl.lyceum.read import UNPRICED, read_entries, read_vm
from trainctl.lyceum.settings import DEFAULT_API_URL, LyceumSettings, load_lyceum_settings

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SETTINGS = LyceumSettings(lyceum_name_prefix="team-", lyceum_owner_pattern=r"^team-(?P<owner>[a-z]+)-")


def vm(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "vm_id": "vm-abc123def456",
        "name": "team-alice-finetune",
        "status": "running",
        "ip_address": "10.0.1.5:22",
        "hardware_profile": "a100",
        "billed": 2.45,
        "created_at": "2026-12-03T04:00:00Z",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not ...}


def run(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "execution_id": "9d73319c-6f1c-4b4c-90e4-044244353ce4",
        "status": "running",
        "created_at": "2026-12-05T06:00:00Z",
        "hardware_profile": "h100",
        "file_name": "team-sweep.py",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not ...}


def test_a_documented_vm_is_an_instance_of_provider_lyceum_unpriced_never_free() -> None:
    read = read_vm(vm(), SETTINGS, NOW, account="acme")
    assert read.instance.provider == "lyceum"
    assert read.instance.account == "acme"
    assert read.vm_id == "vm-abc123def456"
    assert read.instance.state == "running"
    assert read.instance.instance_type == "a100"
    assert read.instance.launch_time == datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
    assert read.instance.created == read.instance.launch_time
    assert read.hourly_usd is None and read.price_source == UNPRICED
    assert read.billed == 2.45
    assert read.owner == "alice"
    assert read.in_scope


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("pending", "pending"),
        ("provisioning", "pending"),
        ("running", "running"),
        ("ready", "running"),
        ("stopped", "stopped"),
        ("terminated", "terminated"),
        ("error", "error"),
    ],
)
def test_every_documented_status_maps_to_a_state(status: str, state: str) -> None:
    assert read_vm(vm(status=status), SETTINGS, NOW).instance.state == state


def test_a_time_with_an_offset_is_read_in_utc() -> None:
    read = read_vm(vm(created_at="2026-12-03T06:00:00+02:00"), SETTINGS, NOW)
    assert read.instance.launch_time == datetime(2026, 12, 3, 4, 0, tzinfo=UTC)


def test_nothing_is_in_scope_without_a_prefix_or_ids() -> None:
    bare = LyceumSettings()
    assert not bare.configured
    inventory = read_entries([vm()], [run()], bare, NOW)
    assert [v.in_scope for v in inventory.vms] == [False]
    assert [r.in_scope for r in inventory.runs] == [False]


def test_scope_by_prefix_or_by_an_explicit_id() -> None:
    by_id = LyceumSettings(lyceum_ids=("vm-other0001",))
    assert read_vm(vm(vm_id="vm-other0001", name="personal"), by_id, NOW).in_scope
    assert not read_vm(vm(name="team-x"), by_id, NOW).in_scope
    assert not read_vm(vm(name="personal-dave"), SETTINGS, NOW).in_scope
    # A VM without a name is in scope only by its id.
    assert not read_vm(vm(name=None), SETTINGS, NOW).in_scope


def test_owner_from_the_name_else_unknown() -> None:
    assert read_vm(vm(name="team-bob-notebook"), SETTINGS, NOW).owner == "bob"
    assert read_vm(vm(name="personal-dave"), SETTINGS, NOW).owner is None
    assert read_vm(vm(), LyceumSettings(lyceum_name_prefix="team-"), NOW).owner is None
    # An owner that would break a notice's line is no owner.
    odd = LyceumSettings(lyceum_owner_pattern=r"^team-(?P<owner>[^-]+)-")
    assert read_vm(vm(name="team-eve\nforged-x"), odd, NOW).owner is None


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (vm(vm_id=...), "vm_id is missing"),
        (vm(created_at=...), "created_at is missing"),
        (vm(status=...), "status is missing"),
        (vm(status="hibernating"), "status is not one Lyceum documents"),
        (vm(created_at="yesterday"), "created_at is not an ISO 8601 date-time"),
        (vm(created_at="2026-12-03T04:00:00"), "created_at has no time zone"),
        (vm(created_at="2027-06-01T00:00:00Z"), "created_at lies in the future"),
        (vm(created_at="0001-01-01T00:00:00+05:00"), "created_at is out of range"),
        (vm(created_at=1733400000), "created_at is not a string"),
        (vm(billed=-1), "billed is not a number of zero or more"),
        (vm(billed="2.45"), "billed is not a number of zero or more"),
        (vm(billed=True), "billed is not a number of zero or more"),
        (vm(vm_id="../billing/credits"), "vm_id is not letters, digits, _ and -"),
    ],
)
def test_an_entry_in_an_undocumented_shape_is_unreadable_and_the_rest_is_read(
    entry: dict[str, Any], problem: str
) -> None:
    good = vm(vm_id="vm-good00000001", name="team-bob-x")
    inventory = read_entries([entry, good], [], SETTINGS, NOW)
    assert [v.vm_id for v in inventory.vms] == ["vm-good00000001"]
    (unreadable,) = inventory.unreadable
    assert unreadable.protection is Protection.UNREADABLE
    assert problem in unreadable.problem
    assert "\n" not in unreadable.problem
    assert inventory.problems() == {unreadable.label: unreadable.problem}


def test_an_unreadable_vm_is_named_by_id_else_by_name_else_by_place() -> None:
    inventory = read_entries(
        [vm(status="weird"), vm(vm_id=..., name="team-x\x1b[31m"), "not an object", None], [], SETTINGS, NOW
    )
    labels = [u.label for u in inventory.unreadable]
    assert labels == ["vm-abc123def456", "name 'team-x\\x1b[31m'", "entry 3 of the list", "entry 4 of the list"]
    assert all("\x1b" not in u.problem for u in inventory.unreadable)


def test_live_runs_are_read_with_their_start_and_ended_ones_are_history() -> None:
    inventory = read_entries(
        [],
        [run(), run(execution_id="r-done", status="completed"), run(execution_id="r-new", status="pending")],
        SETTINGS,
        NOW,
    )
    assert [(r.run_id, r.status) for r in inventory.runs] == [
        ("9d73319c-6f1c-4b4c-90e4-044244353ce4", "running"),
        ("r-new", "pending"),
    ]
    assert inventory.runs[0].started == datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
    assert NOW - inventory.runs[0].started == timedelta(hours=30)
    assert inventory.runs[0].in_scope  # its file name carries the prefix


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (run(status="paused"), "status is not one Lyceum documents"),
        (run(execution_id=...), "execution_id is missing"),
        (run(created_at="2026-13-01T00:00:00Z"), "created_at is not an ISO 8601 date-time"),
        ([1, 2], "the entry is not an object"),
    ],
)
def test_a_run_in_an_undocumented_shape_is_unreadable(entry: Any, problem: str) -> None:
    inventory = read_entries([], [entry, run(execution_id="r-ok")], SETTINGS, NOW)
    assert [r.run_id for r in inventory.runs] == ["r-ok"]
    (unreadable,) = inventory.unreadable
    assert unreadable.kind == "run" and problem in unreadable.problem


def test_settings_from_the_environment() -> None:
    settings = load_lyceum_settings(
        {
            "TRAINCTL_LYCEUM_NAME_PREFIX": "team-",
            "TRAINCTL_LYCEUM_IDS": "vm-a1, vm-b2",
            "TRAINCTL_LYCEUM_OWNER_PATTERN": "^team-(?P<owner>[a-z]+)-",
        }
    )
    assert settings.lyceum_api_url == DEFAULT_API_URL == "https://api.lyceum.technology/api/v2/external"
    assert settings.lyceum_ids == ("vm-a1", "vm-b2")
    assert settings.configured


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("TRAINCTL_LYCEUM_OWNER_PATTERN", "^team-([a-z]+)-", "named group `owner`"),
        ("TRAINCTL_LYCEUM_OWNER_PATTERN", "^team-(?P<owner>[a-z]+", "is not a regular expression"),
        ("TRAINCTL_LYCEUM_API_URL", "http://api.lyceum.technology/api/v2/external", "https://"),
        ("TRAINCTL_LYCEUM_IDS", "vm-a1,../etc", "letters, digits"),
    ],
)
def test_a_bad_setting_is_refused_in_one_line(variable: str, value: str, said: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_lyceum_settings({variable: value})
    assert variable in str(refused.value) and said in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_emulator_may_be_plain_http_on_the_loopback() -> None:
    url = "http://127.0.0.1:8123/api/v2/external"
    assert load_lyceum_settings({"TRAINCTL_LYCEUM_API_URL": url}).lyceum_api_url == url
