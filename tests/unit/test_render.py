"""Tables at the width at hand: ids and money never cut, columns chosen by priority, values never read as markup."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from trainctl.cli.output import to_csv
from trainctl.cli.render import COST_COLUMNS, ESSENTIAL, SWEEP_COLUMNS, Col, counts, duration, print_table

IDS = ["vol-04706af2f77e260c1", "snap-0123456789abcdef0", "i-0a1b2c3d4e5f60718"]
SWEEP_ROWS = [
    [
        "vol-04706af2f77e260c1",
        "delete",
        "ttl-expired, unattached",
        "-",
        "alice@example.com",
        "marked until 2026-12-10T17:08:03Z; grace period over",
        "done",
        "us-east-1",
        "volume",
    ],
    [
        "snap-0123456789abcdef0",
        "keep",
        "snapshot-retention",
        "out-of-scope, min-age, training-active",
        "bob",
        "no trainctl:managed=true",
        "kept",
        "eu-west-1",
        "snapshot",
    ],
    [
        "i-0a1b2c3d4e5f60718",
        "terminate",
        "stopped-too-long",
        "-",
        "-",
        "will terminate after 2026-12-10T17:08:03Z if still a candidate",
        "done",
        "us-east-1",
        "instance",
    ],
]
COST_ROWS = [
    [
        "i-0a1b2c3d4e5f60718",
        "$5.6720",
        "$1,089.02",
        "aws",
        "g5.12xlarge on-demand running",
        "bob",
        "lower-bound",
        "price-file",
        "us-east-1",
        "instance",
    ],
    [
        "vol-04706af2f77e260c1",
        "$0.0110",
        "$2.10",
        "aws",
        "gp3 100 GiB available",
        "(no owner)",
        "-",
        "price-file",
        "us-east-1",
        "volume",
    ],
]


def rendered(columns: tuple[Col, ...], rows: list[list[str]], width: int, title: str = "t") -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    print_table(console, title, columns, rows)  # type: ignore[arg-type]
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 100, 120, 160, 200])
@pytest.mark.parametrize(("columns", "rows"), [(SWEEP_COLUMNS, SWEEP_ROWS), (COST_COLUMNS, COST_ROWS)])
def test_a_table_fits_the_width_and_never_cuts_an_id_or_money(
    columns: tuple[Col, ...], rows: list[list[str]], width: int
) -> None:
    lines = rendered(columns, rows, width)
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            if column.priority >= ESSENTIAL:  # always shown, always whole, on one line
                assert value in text, (value, width)
    assert "…" not in text


def test_the_least_important_columns_go_first_and_the_footnote_says_so() -> None:
    narrow = "\n".join(rendered(SWEEP_COLUMNS, SWEEP_ROWS, 80))
    wide = "\n".join(rendered(SWEEP_COLUMNS, SWEEP_ROWS, 200))
    assert "not shown at 80 columns: " in narrow and "type" in narrow.split("not shown at 80 columns: ")[1]
    header = narrow.splitlines()[1]
    for kept in ("resource", "action", "reasons", "protections"):
        assert kept in header
    assert "type" not in header and "not shown" not in wide
    assert all(h in wide.splitlines()[1] for h in ("detail", "outcome", "region", "type"))


def test_a_column_with_one_value_is_left_out_first_and_named_with_that_value() -> None:
    rows = [[*row[:6], "dry-run", *row[7:]] for row in SWEEP_ROWS]
    lines = rendered(SWEEP_COLUMNS, rows, 90)
    assert "every row: outcome dry-run" in "\n".join(lines)
    assert "outcome" not in lines[1]


def test_names_are_never_split_over_lines() -> None:
    lines = rendered(SWEEP_COLUMNS, SWEEP_ROWS, 80)
    text = "\n".join(lines)
    for name in ("snapshot-retention", "training-active", "stopped-too-long", "out-of-scope"):
        assert name in text


def test_values_are_text_not_markup() -> None:
    rows = [
        ["vol-04706af2f77e260c1", "keep", "[red]sneaky[/]", "-", "[bold]mallory", "-", "kept", "us-east-1", "volume"]
    ]
    text = "\n".join(rendered(SWEEP_COLUMNS, rows, 120))
    assert "[red]sneaky[/]" in text and "[bold]mallory" in text


def test_a_title_is_one_line_above_the_table_not_squeezed_into_its_width() -> None:
    title = "3. enforced after the grace period: act, within the blast radius"
    lines = rendered((Col("resource", ESSENTIAL, whole=True),), [["vol-04706af2f77e260c1"]], 80, title)
    assert lines[0] == title


def test_an_empty_table_says_none() -> None:
    assert rendered(SWEEP_COLUMNS, [], 80)[1].strip() == "none"


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(min_value=60, max_value=220),
    words=st.lists(st.text(alphabet="abcdefghij-", min_size=1, max_size=30), min_size=1, max_size=6),
)
def test_any_width_any_words_ids_stay_whole(width: int, words: list[str]) -> None:
    rows = [[*SWEEP_ROWS[0][:2], ", ".join(words), *SWEEP_ROWS[0][3:]]]
    lines = rendered(SWEEP_COLUMNS, rows, width)
    assert any(SWEEP_ROWS[0][0] in line for line in lines)
    assert max(len(line) for line in lines) <= width


def test_counts_durations_and_csv_read_as_people_write_them() -> None:
    from datetime import timedelta

    assert counts({"keep": 10, "mark": 11}) == "10 keep, 11 mark"
    assert counts({}) == "none"
    assert duration(timedelta(days=1)) == "1d" and duration(timedelta(hours=24)) == "1d"
    assert duration(timedelta(minutes=5)) == "5m"
    assert to_csv([{"a": 1, "b": ["x", "y"], "c": None}, {"a": 2, "d": True}]) == "a,b,c,d\n1,x;y,,\n2,,,true\n"


def test_a_terminal_narrower_than_the_ids_gets_long_lines_not_cut_ids() -> None:
    lines = rendered(COST_COLUMNS, COST_ROWS, 30)
    text = "\n".join(lines)
    for row in COST_ROWS:
        assert row[0] in text and row[1] in text  # the id and the money per hour, whole
