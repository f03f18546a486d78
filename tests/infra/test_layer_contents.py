"""The Lambda layer holds what the handlers import and the runtime lacks: not the command line, not the sandbox, not
boto3 or botocore; and the packages it ships are the versions the tests ran with."""

from __future__ import annotations

import ast
import json
import shutil
from email.parser import HeaderParser
from pathlib import Path, PurePath

import pytest
from packaging.utils import canonicalize_name

from infra import layer
from infra import lock as locks

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


def shipped_distributions(python_dir: Path) -> dict[str, str]:
    """Name -> version of every distribution installed in the layer, from its own metadata."""
    shipped = {}
    for info in python_dir.glob("*.dist-info"):
        metadata = HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        shipped[canonicalize_name(metadata["Name"])] = metadata["Version"]
    return shipped


def test_the_built_layer_ships_the_tested_versions_and_leaves_the_sdk_to_the_runtime(synthesized) -> None:
    python_dir = layer_python_dir(Path(synthesized[1]))
    shipped = shipped_distributions(python_dir)
    runtime_own = {canonicalize_name(p) for p in locks.RUNTIME_PACKAGES}
    assert sorted(runtime_own & set(shipped)) == []
    assert not (python_dir / "boto3").exists() and not (python_dir / "botocore").exists()
    tested = {name: pinned.version for name, pinned in locks.read_lock(locks.DEV.path.read_text()).items()}
    untested = {
        name: (version, tested.get(name, "absent")) for name, version in shipped.items() if tested.get(name) != version
    }
    assert untested == {}, "shipped version, dev lock's version"
    assert set(shipped) == set(locks.read_lock(locks.LAYER.path.read_text()))


def test_the_layer_is_built_for_the_runtime_the_functions_declare() -> None:
    assert layer.RUNTIME.name == f"python{layer.PYTHON_VERSION}"
    assert locks.LAYER.python_version == layer.PYTHON_VERSION
    assert layer.PLATFORM.endswith("_x86_64") and locks.LAYER.platform.startswith("x86_64-")


def test_a_new_layer_lock_makes_a_new_install_and_a_new_asset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "requirements").mkdir()
    copied = tmp_path / locks.LAYER.relative
    shutil.copyfile(locks.LAYER.path, copied)
    monkeypatch.setattr(locks, "ROOT", tmp_path)
    assert locks.LAYER.path == copied
    key, asset = layer.dependencies_key(), layer._source_digest(None)
    # A lock rewritten for another pyproject.toml change (its header) ships the same layer.
    copied.write_text(copied.read_text().replace("# inputs-sha256: ", "# inputs-sha256: 0", 1))
    assert (layer.dependencies_key(), layer._source_digest(None)) == (key, asset)
    copied.write_text(copied.read_text().replace("wrapt==2.5.2", "wrapt==2.5.1", 1))
    assert layer.dependencies_key() != key
    assert layer._source_digest(None) != asset
