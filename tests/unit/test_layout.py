"""The house rules of the domain library (ARCHITECTURE.md, "Inside the domain library"), read from the source.

core imports nothing that talks to AWS or to a capability; pure rules import no adapter; nothing but the
command line imports the command line; there is no import cycle; a function-level import says, in a line,
what cold-start time it saves.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "trainctl"
CAPABILITIES = ("sweep", "cost", "age_guard", "spot", "prewarm", "handwork", "report")
BOTO = ("boto3", "botocore", "mypy_boto3")


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool
    only_for_types: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def known_modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _targets(node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    yield base
    for alias in node.names:
        # `from trainctl.aws import ledger` imports the module trainctl.aws.ledger.
        if f"{base}.{alias.name}" in modules:
            yield f"{base}.{alias.name}"


def imports_of(path: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, only_for_types: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, modules):
                    found.append(Import(module_name(path), target, child.lineno, in_function, only_for_types))
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, in_function, True)
            else:
                visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef), only_for_types)

    visit(tree, False, False)
    return found


@pytest.fixture(scope="module")
def graph() -> list[Import]:
    modules = known_modules()
    return [edge for path in modules.values() for edge in imports_of(path, modules)]


def _is(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_rooms_exist_with_rules_and_run() -> None:
    for room in ("core", "aws", "cli", *CAPABILITIES):
        assert (PACKAGE / room / "__init__.py").is_file(), room
    for capability in ("sweep", "cost", "age_guard", "spot", "prewarm"):
        assert (PACKAGE / capability / "rules.py").is_file() and (PACKAGE / capability / "run.py").is_file()
    # A newcomer finds "a persistent volume is never deleted" by its file name.
    assert "def is_persistent" in (PACKAGE / "core" / "protections.py").read_text()
    assert [p.name for p in PACKAGE.glob("*.py")] == ["__init__.py"], "modules belong in a room"


def test_core_talks_to_nothing(graph: list[Import]) -> None:
    outside = [
        f"{e.importer}:{e.line} imports {e.imported}"
        for e in graph
        if _is(e.importer, "trainctl.core")
        and not e.only_for_types
        and (
            _is(e.imported, *BOTO, "trainctl.aws", "trainctl.cli")
            or _is(e.imported, *(f"trainctl.{c}" for c in CAPABILITIES))
        )
    ]
    assert outside == []


def test_pure_rules_import_no_adapter(graph: list[Import]) -> None:
    rules = {f"trainctl.{c}.rules" for c in CAPABILITIES} | {"trainctl.cost.prices.model"}
    outside = [
        f"{e.importer}:{e.line} imports {e.imported}"
        for e in graph
        if e.importer in rules and _is(e.imported, *BOTO, "trainctl.aws", "trainctl.cli")
    ]
    assert outside == []


def test_shared_adapters_import_no_capability(graph: list[Import]) -> None:
    outside = [
        f"{e.importer}:{e.line} imports {e.imported}"
        for e in graph
        if _is(e.importer, "trainctl.aws") and _is(e.imported, *(f"trainctl.{c}" for c in CAPABILITIES), "trainctl.cli")
    ]
    assert outside == []


def test_nothing_outside_the_command_line_imports_it(graph: list[Import]) -> None:
    inside = [
        f"{e.importer}:{e.line} imports {e.imported}"
        for e in graph
        if _is(e.imported, "trainctl.cli") and not _is(e.importer, "trainctl.cli")
    ]
    modules = known_modules()
    for folder in ("functions", "infra"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    inside += [
                        f"{path.relative_to(ROOT)} imports {t}"
                        for t in _targets(node, modules)
                        if _is(t, "trainctl.cli")
                    ]
    assert inside == []


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle(graph: list[Import]) -> None:
    modules = known_modules()
    edges: dict[str, set[str]] = {}
    for e in graph:
        # A package's __init__ is imported with any of its modules; it holds nothing here, so it is no edge.
        if e.imported in modules and modules[e.imported].name != "__init__.py":
            edges.setdefault(e.importer, set()).add(e.imported)
    assert _cycles(edges) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_a_function_level_import_says_what_cold_start_time_it_saves(graph: list[Import]) -> None:
    modules = known_modules()
    unexplained = []
    for e in graph:
        if not e.in_function:
            continue
        lines = modules[e.importer].read_text(encoding="utf-8").splitlines()
        row = e.line - 2
        # One comment may explain a run of imports.
        while row > 0 and lines[row].strip().startswith(("from ", "import ")):
            row -= 1
        above = lines[row].strip()
        if not (above.startswith("#") and "cold start" in above.lower()):
            unexplained.append(f"{e.importer}:{e.line} imports {e.imported}")
    assert unexplained == []


def test_package_init_files_hold_no_code() -> None:
    for init in PACKAGE.rglob("*/__init__.py"):
        body = [n for n in ast.parse(init.read_text(encoding="utf-8")).body if not isinstance(n, ast.Expr)]
        assert body == [], init
