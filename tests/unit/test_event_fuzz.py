"""Fuzzing the event parsers: any input is either a valid model or an InvalidEvent, never anything else."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import EVENTS
from trainctl.core.events import (
    InvalidEvent,
    parse_age_guard_event,
    parse_cost_event,
    parse_spot_event,
    parse_sweep_trigger,
)

PARSERS: dict[str, Callable[[object], Any]] = {
    "cleanup_sweep": parse_sweep_trigger,
    "age_guard": parse_age_guard_event,
    "cost_alerts": parse_cost_event,
    "spot_interruption": parse_spot_event,
}
FIXTURES = {
    function: [
        json.loads(path.read_text())
        for path in sorted((EVENTS / function).glob("*.json"))
        if not path.name.startswith("malformed_not_json")
    ]
    for function in PARSERS
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
NASTY_TEXT = st.sampled_from(
    [
        "",
        "$(reboot)",
        "a;rm -rf /",
        "`id`",
        "\x00",
        "ü✓",
        "\u202e",
        "x" * 5000,
        "i-0123456789abcdef0\n",
        "../../etc/passwd",
    ]
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(paths(value, (*prefix, index)))
    return found


@st.composite
def mutated(draw: st.DrawFn, function: str) -> Any:
    event = copy.deepcopy(draw(st.sampled_from(FIXTURES[function])))
    for _ in range(draw(st.integers(1, 4))):
        candidates = paths(event)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["delete", "replace", "nasty"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES if action == "replace" else NASTY_TEXT)
    return event


def parses_or_refuses(parser: Callable[[object], Any], event: Any) -> None:
    try:
        parser(event)
    except InvalidEvent as exc:
        assert str(exc)  # a clear message, never empty


@pytest.mark.parametrize("function", sorted(PARSERS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_fixtures_parse_or_are_refused(function: str, data: st.DataObject) -> None:
    parses_or_refuses(PARSERS[function], data.draw(mutated(function)))


@pytest.mark.parametrize("function", sorted(PARSERS))
@settings(max_examples=200, deadline=None)
@given(event=JSON_VALUES)
def test_arbitrary_json_parses_or_is_refused(function: str, event: Any) -> None:
    parses_or_refuses(PARSERS[function], event)


def test_every_fixture_named_malformed_is_refused() -> None:
    for function, parser in PARSERS.items():
        for path in sorted((EVENTS / function).glob("malformed_*.json")):
            try:
                event = json.loads(path.read_text())
            except json.JSONDecodeError:
                continue  # truncated JSON never reaches a parser: the CLI refuses the file (exit 2)
            with pytest.raises(InvalidEvent):
                parser(event)


@pytest.mark.parametrize(("function", "task"), [("cleanup_sweep", "cleanup_sweep"), ("cost_alerts", "cost_alerts")])
def test_the_scheduler_envelope_without_input_is_a_scheduled_run_with_default_settings(
    function: str, task: str
) -> None:
    """Issue 17 item 13: a schedule a person adds by hand sends `source: aws.scheduler` and `detail: "{}"`."""
    event = json.loads((EVENTS / function / "scheduler_without_input.json").read_text())
    assert event["source"] == "aws.scheduler" and event["detail"] == "{}"
    request = PARSERS[function](event)
    assert request.task == task and request.regions is None
    # Only an object (as JSON text or as it is) is a detail: anything else is still refused.
    for detail in ("[]", "not json", '"{}"', 7):
        with pytest.raises(InvalidEvent):
            PARSERS[function]({**event, "detail": detail})
    with pytest.raises(InvalidEvent):
        PARSERS[function]({**event, "source": "aws.s3"})


@pytest.mark.parametrize("region", ["us-east-1\n", "us-east-1 ", "US-EAST-1"])
def test_a_region_name_with_a_trailing_newline_is_refused(region: str) -> None:
    with pytest.raises(InvalidEvent):
        parse_sweep_trigger({"task": "cleanup_sweep", "regions": [region]})
