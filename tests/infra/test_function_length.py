"""infra/ stays readable: no function or method longer than MAX_LINES (ruff's PLR0915 counts statements too)."""

from __future__ import annotations

import ast
from pathlib import Path

INFRA = Path(__file__).resolve().parents[2] / "infra"
MAX_LINES = 80


def function_lengths(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of every function and method, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            found.append((node.name, node.lineno, node.end_lineno - node.lineno + 1))
    return found


def test_no_function_in_infra_is_longer_than_the_limit() -> None:
    too_long = [
        f"{path.relative_to(INFRA.parent)}:{line} {name} is {length} lines"
        for path in sorted(INFRA.rglob("*.py"))
        for name, line, length in function_lengths(path.read_text(encoding="utf-8"))
        if length > MAX_LINES
    ]
    assert too_long == [], f"split these into phase helpers (at most {MAX_LINES} lines each): {too_long}"


def test_the_measure_counts_every_line_of_a_body_and_nested_functions() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    source = f"def outer() -> None:\n    def inner() -> None:\n{body.replace('    x', '        x')}\n"
    lengths = {name: length for name, _, length in function_lengths(source)}
    assert lengths["inner"] == MAX_LINES + 1 and lengths["outer"] == MAX_LINES + 2
