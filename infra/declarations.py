"""The IAM actions a function needs, read from the declarations of the code its handler runs.

Every trainctl module that calls AWS declares `PERMISSIONS` beside its calls (trainctl.core.permissions).
A function needs the union over every module its handler imports, directly or not; its construct builds
the policy from that set and nothing else, and a test holds the synthesised policy equal to it.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

from trainctl.core.permissions import Permissions, union

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers"
FUNCTIONS = ROOT / "functions"


def _module_path(module: str) -> Path | None:
    base = LAYER / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("trainctl"):
            base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if _module_path(f"{base}.{alias.name}"))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("trainctl"))
    return {m for m in found if _module_path(m)}


@cache
def modules_run_by(function: str) -> frozenset[str]:
    """Every trainctl module the function's handler imports, directly or through another."""
    handler = FUNCTIONS / function / "handler.py"
    if not handler.is_file():
        raise ValueError(f"no function {function!r}")
    seen: set[str] = set()
    todo = list(_imported(handler))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_path(module)
        assert path is not None
        todo.extend(_imported(path) - seen)
    return frozenset(seen)


def _declared(module: str) -> Permissions:
    permissions = getattr(importlib.import_module(module), "PERMISSIONS", None)
    return permissions if isinstance(permissions, Permissions) else Permissions()


def _handler_declared(function: str) -> Permissions:
    # Read the handler's own declaration without running it: the assignment is a literal call to needs().
    tree = ast.parse((FUNCTIONS / function / "handler.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PERMISSIONS" for t in node.targets
        ):
            call = node.value
            assert isinstance(call, ast.Call), "PERMISSIONS in a handler is a call to needs(...)"
            return Permissions(frozenset(ast.literal_eval(arg) for arg in call.args))
    return Permissions()


@cache
def declared_for(function: str) -> Permissions:
    """The IAM actions the function's code declares: its handler's own and every module's it runs."""
    return union([_handler_declared(function), *(_declared(m) for m in sorted(modules_run_by(function)))])
