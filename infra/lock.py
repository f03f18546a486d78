"""The locks: every package trainctl installs, direct and transitive, at one version and with its files' hashes.

    python -m infra.lock           (make lock) rewrites requirements/dev.txt, cli.txt and layer.txt from pyproject.toml
    python -m infra.lock --check   says, offline, where the locks and pyproject.toml disagree (exit code 1 if they do)

Nothing installs by resolving: `make test` and `make demo` run `pip install --require-hashes --no-deps -r LOCK`, and
the layer bundler does the same for the Lambda runtime's Python and platform (infra/layer.py). Each lock's header
records a digest of what it was compiled from, so a changed pin in pyproject.toml without `make lock` shows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
FOLDER = "requirements"
# The Lambda Python runtime brings boto3 with these, compiled to bytecode. A copy in the layer would be another version
# than the runtime's, and uncompiled (the build machine has no Python 3.14): botocore alone then costs about 500 ms
# more at every cold start (bench/RESULTS.md (b)).
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")


class LockError(Exception):
    """A lock file holds something other than pinned packages with their hashes."""


@dataclass(frozen=True)
class Lock:
    name: str
    purpose: str
    extras: tuple[str, ...]  # pyproject.toml extras on top of the base dependencies
    python_version: str
    platform: str  # uv's name for it, e.g. x86_64-manylinux2014
    constrained_by: Lock | None = None  # the lock whose versions this one keeps
    leaves_out: tuple[str, ...] = ()
    # The project's own build requirements too: the editable install then builds with nothing unhashed.
    builds_project: bool = True

    @property
    def relative(self) -> str:
        return f"{FOLDER}/{self.name}.txt"

    @property
    def path(self) -> Path:
        return ROOT / self.relative

    @property
    def pip_platform(self) -> str:
        """pip's --platform for the same thing (x86_64-manylinux2014 -> manylinux2014_x86_64)."""
        architecture, _, tag = self.platform.partition("-")
        return f"{tag}_{architecture}"


DEV = Lock(
    "dev",
    "the dev extra (tests, lint, types, the CDK), installed by `make test`",
    extras=("dev",),
    python_version="3.11",
    platform="x86_64-manylinux_2_28",
)
CLI = Lock(
    "cli",
    "the cli extra (the command line, the sandbox) at the dev lock's versions, installed by `make demo`",
    extras=("cli",),
    python_version="3.11",
    platform="x86_64-manylinux_2_28",
    constrained_by=DEV,
)
# Lambda's runtime (infra/layer.py): Python 3.14 on Amazon Linux 2023, x86_64.
LAYER = Lock(
    "layer",
    "what the Lambda layer ships: the base dependencies at the dev lock's versions, less what the runtime brings",
    extras=(),
    python_version="3.14",
    platform="x86_64-manylinux2014",
    constrained_by=DEV,
    leaves_out=RUNTIME_PACKAGES,
    builds_project=False,
)
LOCKS = (DEV, CLI, LAYER)  # in the order they are compiled: the dev lock constrains the others


@dataclass(frozen=True)
class Pinned:
    version: str
    hashes: tuple[str, ...]


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*\\?$")
_HASH = re.compile(r"^\s+--hash=sha256:([0-9a-f]{64})\s*\\?$")
_DIGEST = re.compile(r"^# inputs-sha256: ([0-9a-f]{64})$", re.MULTILINE)


def read_lock(text: str) -> dict[str, Pinned]:
    """Package (canonical name) -> its pin; anything else than pins, hashes and comments is refused."""
    pins: dict[str, Pinned] = {}
    current: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pin, hashed = _PIN.match(line), _HASH.match(line)
        if pin:
            current = canonicalize_name(pin[1])
            pins[current] = Pinned(pin[2], ())
        elif hashed and current is not None:
            pins[current] = Pinned(pins[current].version, (*pins[current].hashes, hashed[1]))
        else:
            # An index or find-links line would send installs elsewhere than where the hashes were read.
            raise LockError(f"line {number} is neither a pinned package nor one of its hashes")
    return pins


def pinned_lines(text: str) -> bytes:
    """A lock without its comments: what it installs, which a new header or annotation does not change."""
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#")).encode()


def inputs_digest(lock: Lock, pyproject: dict[str, Any]) -> str:
    """What a lock is compiled from: pyproject.toml's dependency lists and the lock's own recipe."""
    project = pyproject["project"]
    inputs = {
        "build-system.requires": pyproject["build-system"]["requires"],
        "dependencies": project["dependencies"],
        "optional-dependencies": project.get("optional-dependencies", {}),
        "recipe": [
            lock.name,
            list(lock.extras),
            lock.python_version,
            lock.platform,
            lock.constrained_by.name if lock.constrained_by else None,
            list(lock.leaves_out),
            lock.builds_project,
        ],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def direct_requirements(lock: Lock, pyproject: dict[str, Any]) -> list[Requirement]:
    """Every requirement pyproject.toml names for this lock (extras that name the project itself unfolded)."""
    project = pyproject["project"]
    own = canonicalize_name(project["name"])
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    wanted = [Requirement(r) for r in project["dependencies"]]
    if lock.builds_project:
        wanted += [Requirement(r) for r in pyproject["build-system"]["requires"]]
    pending: list[str] = list(lock.extras)
    seen: set[str] = set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in map(Requirement, optional[extra]):
            if canonicalize_name(requirement.name) == own:
                pending.extend(requirement.extras)
            else:
                wanted.append(requirement)
    left_out = {canonicalize_name(p) for p in lock.leaves_out}
    return [r for r in wanted if canonicalize_name(r.name) not in left_out]


def disagreements(pyproject: dict[str, Any], texts: dict[str, str]) -> list[str]:
    """Where the locks (name -> file text) and pyproject.toml disagree, one line each; [] when they agree."""
    found: list[str] = []
    pins: dict[str, dict[str, Pinned]] = {}
    for lock in LOCKS:
        if lock.name not in texts:
            found.append(f"{lock.relative} is missing: run make lock")
            continue
        try:
            pins[lock.name] = read_lock(texts[lock.name])
        except LockError as refused:
            found.append(f"{lock.relative}: {refused}")
            continue
        recorded = _DIGEST.search(texts[lock.name])
        if recorded is None or recorded[1] != inputs_digest(lock, pyproject):
            found.append(f"{lock.relative} was not compiled from this pyproject.toml: run make lock")
    for lock in LOCKS:
        if lock.name in pins:
            found += _pin_disagreements(lock, pyproject, pins)
    return found


def _pin_disagreements(lock: Lock, pyproject: dict[str, Any], pins: dict[str, dict[str, Pinned]]) -> list[str]:
    found = []
    locked = pins[lock.name]
    for name, pinned in sorted(locked.items()):
        if not pinned.hashes:
            found.append(f"{lock.relative}: {name} has no hash")
    for requirement in direct_requirements(lock, pyproject):
        name = canonicalize_name(requirement.name)
        if name not in locked:
            found.append(f"{lock.relative}: {requirement} of pyproject.toml is not in the lock")
        elif not requirement.specifier.contains(locked[name].version, prereleases=True):
            found.append(f"{lock.relative}: {name} is {locked[name].version}, pyproject.toml asks {requirement}")
    for name in sorted(canonicalize_name(p) for p in lock.leaves_out):
        if name in locked:
            found.append(f"{lock.relative}: {name} is in the lock, which leaves it out")
    constraining = lock.constrained_by
    if constraining is not None and constraining.name in pins:
        for name, pinned in sorted(locked.items()):
            other = pins[constraining.name].get(name)
            if other is None or other.version != pinned.version:
                at = other.version if other else "absent"
                found.append(f"{lock.relative}: {name} {pinned.version}, {constraining.relative} {at}")
    return found


def header(lock: Lock, pyproject: dict[str, Any]) -> str:
    return (
        f"# {lock.relative}: {lock.purpose}.\n"
        f"# Python {lock.python_version} on {lock.platform}; every package pinned, with the hashes of its files.\n"
        "# Written by `make lock` (python -m infra.lock) from pyproject.toml: regenerate it, never edit it.\n"
        f"# inputs-sha256: {inputs_digest(lock, pyproject)}\n"
    )


def compile_lock(lock: Lock, pyproject: dict[str, Any]) -> int:
    """Resolve with uv into the lock (its current pins are kept where still allowed); the number of packages."""
    command = [sys.executable, "-m", "uv", "pip", "compile", "--quiet", "--no-config", "--no-header", "pyproject.toml"]
    command += ["--generate-hashes", "--python-version", lock.python_version, "--python-platform", lock.platform]
    command += [f"--extra={extra}" for extra in lock.extras]
    command += [f"--no-emit-package={package}" for package in lock.leaves_out]
    if lock.constrained_by is not None:
        command += ["--constraint", lock.constrained_by.relative]
    build = "\n".join(pyproject["build-system"]["requires"]) + "\n" if lock.builds_project else None
    if build is not None:
        command.append("-")  # the build requirements, from standard input
    subprocess.run([*command, "--output-file", lock.relative], input=build, text=True, cwd=ROOT, check=True)
    body = lock.path.read_text(encoding="utf-8")
    lock.path.write_text(header(lock, pyproject) + body, encoding="utf-8")
    return len(read_lock(body))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.lock", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare the locks with pyproject.toml, offline")
    args = parser.parse_args(argv)
    pyproject = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    if not args.check:
        (ROOT / FOLDER).mkdir(exist_ok=True)
        for lock in LOCKS:
            print(f"{lock.relative}: {compile_lock(lock, pyproject)} packages")
    texts = {lock.name: lock.path.read_text(encoding="utf-8") for lock in LOCKS if lock.path.is_file()}
    found = disagreements(pyproject, texts)
    for line in found:
        print(f"trainctl: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
