"""The layer ships bytecode only when the build machine has the runtime's Python to compile it with."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path

import pytest

from infra.layer import bytecode_interpreter, compile_bytecode


def _fake_python(directory: Path, name: str, prints: str) -> None:
    script = directory / name
    script.write_text(f"#!/bin/sh\necho {prints}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_an_interpreter_of_another_version_behind_the_name_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_python(tmp_path, "python3.14", "3.9")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert bytecode_interpreter("3.14") is None


def test_the_runtime_version_found_on_the_path_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (tmp_path / f"python{version}").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert bytecode_interpreter(version) == str(tmp_path / f"python{version}")
    assert bytecode_interpreter("3.99") is None


def test_compiled_bytecode_is_never_checked_against_its_source(tmp_path: Path) -> None:
    package = tmp_path / "python" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    compile_bytecode(tmp_path / "python", sys.executable)
    compiled = Path(importlib.util.cache_from_source(str(package / "__init__.py")))
    assert compiled.is_file()
    # PEP 552 flags: bit 0 hash-based, bit 1 check_source. Hash-based and unchecked survives a zip's lost mtimes.
    flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
    assert flags == 0b01
