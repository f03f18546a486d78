from datetime import timedelta

import pytest

from trainctl.core import tags
from trainctl.core.durations import InvalidDuration, format_duration, parse_duration


@pytest.mark.parametrize("value", ["true", "TRUE", "yes", "1", "", "keep", "maybe", " True "])
def test_protection_tags_protect_unless_explicitly_false(value: str) -> None:
    assert tags.protects(value) is True


@pytest.mark.parametrize("value", ["false", "False", "NO", "0", " no "])
def test_explicit_false_does_not_protect(value: str) -> None:
    assert tags.protects(value) is False


def test_missing_protection_tag_does_not_protect() -> None:
    assert tags.protects(None) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("Yes", True), ("1", True), ("", False), ("maybe", False), ("false", False), (None, False)],
)
def test_scope_tag_opts_in_only_when_explicitly_true(value: str | None, expected: bool) -> None:
    assert tags.opts_in(value) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0s", timedelta(0)),
        ("5m", timedelta(minutes=5)),
        ("24h", timedelta(hours=24)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        (" 72H ", timedelta(hours=72)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5", "m5", "5 minutes", "-5m", "1.5h", "forever", "5m; rm -rf /"])
def test_bad_durations_are_refused_with_the_value(text: str) -> None:
    with pytest.raises(InvalidDuration, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "formatted"), [("5m", "5m"), ("24h", "1d"), ("3d", "3d"), ("7d", "1w"), ("90s", "90s")]
)
def test_format_duration_reads_back_as_the_same_duration(text: str, formatted: str) -> None:
    assert format_duration(parse_duration(text)) == formatted
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
