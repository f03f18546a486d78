"""The Lambda layer holds what the handlers import and nothing else: not the command line, not the sandbox."""

from __future__ import annotations

import ast
import json
from pathlib import Path, PurePath

import pytest

from infra import layer

pytestmark = pytest.mark.infra

# What only people run needs these; a handler never does, and the layer would only grow by them.
CLI_ONLY_PACKAGES = ("moto", "typer", "rich")


def layer_python_dir(outdir: Path) -> Path:
    assets = json.loads((outdir / "Trainctl.assets.json").read_text())["files"].values()
    [found] = [
        outdir / a["source"]["path"] / "python" for a in assets if (outdir / a["source"]["path"] / "python").is_dir()
    ]
    return found


def test_the_built_layer_has_no_command_line_sandbox_or_their_packages(synthesized) -> None:
    python_dir = layer_python_dir(Path(synthesized[1]))
    assert (python_dir / "trainctl" / "prewarm" / "run.py").is_file()
    assert not (python_dir / "trainctl" / "cli").exists()
    assert list(python_dir.rglob("*sandbox*")) == []
    top_level = {p.name.split("-")[0].removesuffix(".py").lower() for p in python_dir.iterdir()}
    assert top_level.isdisjoint(CLI_ONLY_PACKAGES), sorted(top_level & set(CLI_ONLY_PACKAGES))
    for module in (python_dir / "trainctl").rglob("*.py"):
        imported = {
            name.split(".")[0]
            for node in ast.walk(ast.parse(module.read_text(encoding="utf-8")))
            for name in (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
        }
        assert imported.isdisjoint(CLI_ONLY_PACKAGES), f"{module.relative_to(python_dir)} imports {imported}"


@pytest.mark.parametrize(
    ("path", "shipped"),
    [
        ("trainctl/sweep/rules.py", True),
        ("trainctl/aws/documents/prewarm.json", True),
        ("trainctl/cli", False),
        ("trainctl/cli/sandbox_run.py", False),
        ("trainctl/sweep/__pycache__/rules.cpython-314.pyc", False),
        ("trainctl.egg-info", False),
    ],
)
def test_what_the_layer_ships(path: str, shipped: bool) -> None:
    assert layer.ships(PurePath(path)) is shipped


def test_the_asset_hash_ignores_what_is_not_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "trainctl"
    (package / "sweep").mkdir(parents=True)
    (package / "sweep" / "rules.py").write_text("RULE = 1\n")
    monkeypatch.setattr(layer, "LAYER_SOURCE", tmp_path)
    before = layer._source_digest(None)
    (package / "cli").mkdir()
    (package / "cli" / "main.py").write_text("import typer\n")
    (package / "sweep" / "__pycache__").mkdir()
    (package / "sweep" / "__pycache__" / "rules.cpython-314.pyc").write_bytes(b"\0")
    assert layer._source_digest(None) == before
    (package / "sweep" / "rules.py").write_text("RULE = 2\n")
    assert layer._source_digest(None) != before
