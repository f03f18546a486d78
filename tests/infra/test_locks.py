"""The locks under requirements/ are what pyproject.toml asks, every file hashed, and the layer ships what was tested.

Offline and fast: nothing here resolves or downloads; `make lock` (python -m infra.lock) is what rewrites the locks.
"""

from __future__ import annotations

import copy
import importlib.metadata
import re
import tomllib
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra import lock

PYPROJECT: dict[str, Any] = tomllib.loads(lock.PYPROJECT.read_text(encoding="utf-8"))
TEXTS = {each.name: each.path.read_text(encoding="utf-8") for each in lock.LOCKS}
# Lambda's Python 3.14 runtime on x86_64, for the markers of the layer's dependencies.
LAYER_ENVIRONMENT = {
    "python_version": lock.LAYER.python_version,
    "python_full_version": f"{lock.LAYER.python_version}.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def test_the_locks_agree_with_pyproject() -> None:
    assert lock.disagreements(PYPROJECT, TEXTS) == []


def test_a_changed_pin_without_a_new_lock_is_caught() -> None:
    changed = copy.deepcopy(PYPROJECT)
    dependencies = changed["project"]["dependencies"]
    [at] = [i for i, r in enumerate(dependencies) if r.startswith("pydantic==")]
    dependencies[at] = "pydantic==2.13.5"
    found = lock.disagreements(changed, TEXTS)
    for each in lock.LOCKS:
        assert f"{each.relative} was not compiled from this pyproject.toml: run make lock" in found
        assert f"{each.relative}: pydantic is 2.13.4, pyproject.toml asks pydantic==2.13.5" in found


def test_a_new_requirement_without_a_new_lock_is_caught() -> None:
    changed = copy.deepcopy(PYPROJECT)
    changed["project"]["optional-dependencies"]["cli"].append("httpx==0.28.1")
    found = lock.disagreements(changed, TEXTS)
    assert "requirements/cli.txt: httpx==0.28.1 of pyproject.toml is not in the lock" in found
    assert "requirements/dev.txt: httpx==0.28.1 of pyproject.toml is not in the lock" in found  # dev takes cli in
    assert not any(line.startswith("requirements/layer.txt: httpx") for line in found)


def test_every_locked_package_has_a_hash_and_nothing_points_pip_elsewhere() -> None:
    for each in lock.LOCKS:
        pins = lock.read_lock(TEXTS[each.name])
        assert pins, each.relative
        assert all(pinned.hashes for pinned in pins.values()), each.relative
        # No index, find-links or local path: installs come from wherever pip is configured, checked by hash.
        assert "file:" not in TEXTS[each.name]
        assert re.search(r"(^|\s)(/|~)\S", TEXTS[each.name], re.MULTILINE) is None, each.relative


@pytest.mark.parametrize(
    "line",
    [
        "--find-links /somewhere/wheels",
        "--extra-index-url file:///somewhere/simple",
        "-e .",
        "pydantic>=2",
        "./a-local.whl",
    ],
)
def test_a_lock_holding_anything_but_pins_and_hashes_is_refused(line: str) -> None:
    text = TEXTS["layer"].replace("pydantic==", f"{line}\npydantic==", 1)
    with pytest.raises(lock.LockError, match=r"^line \d+ is neither a pinned package nor one of its hashes$"):
        lock.read_lock(text)
    assert lock.disagreements(PYPROJECT, {**TEXTS, "layer": text}) != []


def test_a_pin_without_a_hash_is_caught() -> None:
    text = re.sub(r"(wrapt==\S+) \\\n(    --hash=\S+( \\)?\n)+", r"\1\n", TEXTS["layer"])
    assert lock.read_lock(text)["wrapt"].hashes == ()
    assert "requirements/layer.txt: wrapt has no hash" in lock.disagreements(PYPROJECT, {**TEXTS, "layer": text})


def test_the_layer_and_the_command_line_keep_the_tested_versions() -> None:
    tested = lock.read_lock(TEXTS["dev"])
    for name in ("layer", "cli"):
        pins = lock.read_lock(TEXTS[name])
        assert {n: p.version for n, p in pins.items()} == {n: tested[n].version for n in pins}, name
    # A layer pin that drifts from the dev lock is named.
    drifted = TEXTS["layer"].replace(f"wrapt=={tested['wrapt'].version}", "wrapt==0.0.1")
    found = lock.disagreements(PYPROJECT, {**TEXTS, "layer": drifted})
    assert f"requirements/layer.txt: wrapt 0.0.1, requirements/dev.txt {tested['wrapt'].version}" in found


def test_the_layer_lock_leaves_out_what_the_lambda_runtime_brings() -> None:
    layer = lock.read_lock(TEXTS["layer"])
    assert {"boto3", "botocore", "s3transfer", "urllib3"} <= set(lock.RUNTIME_PACKAGES)
    assert set(layer).isdisjoint(canonicalize_name(p) for p in lock.RUNTIME_PACKAGES)
    with_boto3 = TEXTS["layer"] + "boto3==1.43.11 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    assert "requirements/layer.txt: boto3 is in the lock, which leaves it out" in lock.disagreements(
        PYPROJECT, {**TEXTS, "layer": with_boto3}
    )


def _closure(requirements: list[Requirement], leave_out: set[str]) -> set[str]:
    """The distributions these need on the runtime, from the installed packages' own metadata."""
    found: set[str] = set()
    pending = [(r, r.extras) for r in requirements]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in leave_out or name in found:
            continue
        found.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            needed = Requirement(text)
            wanted = needed.marker is None or any(
                needed.marker.evaluate({**LAYER_ENVIRONMENT, "extra": extra}) for extra in ("", *extras)
            )
            if wanted:
                pending.append((needed, needed.extras))
    return found


def test_the_layer_lock_is_exactly_what_the_base_dependencies_need_on_the_runtime() -> None:
    base = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    needed = _closure(base, {canonicalize_name(p) for p in lock.RUNTIME_PACKAGES})
    assert {"pydantic", "pydantic-core", "aws-lambda-powertools", "aws-xray-sdk"} <= needed
    assert set(lock.read_lock(TEXTS["layer"])) == needed


def test_the_lock_recipes_name_platforms_pip_and_uv_both_know() -> None:
    assert lock.LAYER.pip_platform == "manylinux2014_x86_64"
    assert lock.DEV.pip_platform == "manylinux_2_28_x86_64"
    assert lock.LOCKS[0] is lock.DEV  # compiled first: it constrains the others
    assert all(each.constrained_by is lock.DEV for each in lock.LOCKS if each is not lock.DEV)
