"""The domain library as a Lambda layer, bundled locally (no Docker): python/trainctl plus its runtime deps.

The layer holds what the handlers import and the runtime lacks: trainctl.cli (the command line, the sandbox, the
local Lambda runtime, the price-file generator) stays out, and so do its dependencies (moto, typer, rich). The
dependencies are requirements/layer.txt exactly, at the versions the tests ran with, installed without a resolver;
boto3 and botocore are the runtime's own (infra/lock.py says why).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePath
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.lock import LAYER, pinned_lines

ROOT = Path(__file__).resolve().parents[1]
LAYER_SOURCE = ROOT / "layers"
CACHE = ROOT / ".cache" / "layer-deps"
RUNTIME = lambda_.Runtime.PYTHON_3_14
# The layer lock was resolved for the runtime's Python and platform: pip installs it for the same.
PYTHON_VERSION = LAYER.python_version
PLATFORM = LAYER.pip_platform
# Subpackages of trainctl that people run but no handler imports: never shipped.
NOT_SHIPPED = frozenset({"cli"})


def bytecode_interpreter(version: str = PYTHON_VERSION) -> str | None:
    """The build machine's interpreter of the runtime's Python version, if it has one.

    Lambda's /opt is read-only, so a layer without bytecode compiles every module it imports at every cold start
    (about 270 ms for pydantic, Powertools and trainctl on the benchmark machine). Bytecode only helps if it was
    compiled by the same Python version as the runtime's; another version's would be dead weight.
    """
    found = shutil.which(f"python{version}")
    if found is None:
        return None
    try:
        answer = subprocess.run(
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None  # a version manager's shim for a version it has not installed
    return found if answer.stdout.strip() == version else None


def compile_bytecode(python_dir: Path, interpreter: str) -> None:
    """Compile every module in the layer, with hashes that are never checked.

    The sources' modification times do not survive the asset zip, so timestamp-checked bytecode would be
    stale on arrival; an unchecked hash is trusted as written, and the layer never changes once published.
    """
    # Beside the sources, where Lambda looks: not in a cache directory the build machine may have set.
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    subprocess.run(
        [interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(python_dir)],
        check=True,
        env=environment,
    )


def ships(relative: PurePath) -> bool:
    """Whether a path under layers/ (e.g. trainctl/sweep/rules.py) goes into the layer."""
    parts = relative.parts
    if len(parts) > 1 and parts[0] == "trainctl" and parts[1] in NOT_SHIPPED:
        return False
    return not any(part == "__pycache__" or part.endswith((".pyc", ".egg-info")) for part in parts)


def _ignore_unshipped(directory: str, names: list[str]) -> set[str]:
    """shutil.copytree's ignore: the names under `directory` that the layer leaves out."""
    relative = Path(directory).relative_to(LAYER_SOURCE)
    return {name for name in names if not ships(relative / name)}


def _source_digest(interpreter: str | None) -> str:
    digest = hashlib.sha256()
    for path in sorted((LAYER_SOURCE / "trainctl").rglob("*")):
        relative = path.relative_to(LAYER_SOURCE)
        # The same selection as the bundle: a change to an unshipped file must not make a new layer version.
        if path.is_file() and ships(relative):
            digest.update(str(relative).encode())
            digest.update(path.read_bytes())
    digest.update(pinned_lines(LAYER.path.read_text(encoding="utf-8")))
    digest.update("|".join((PYTHON_VERSION, PLATFORM)).encode())
    # With or without bytecode, the content differs: so must the asset's hash.
    digest.update(b"bytecode" if interpreter else b"source only")
    return digest.hexdigest()


def dependencies_key() -> str:
    """The cached install's name: new pins in the layer lock are a new install (a new header is not)."""
    digest = hashlib.sha256(pinned_lines(LAYER.path.read_text(encoding="utf-8")))
    digest.update("|".join((PYTHON_VERSION, PLATFORM, "no-compile")).encode())
    return digest.hexdigest()[:16]


def _dependencies() -> Path:
    """pip-install the layer lock for Lambda's platform once; later synths copy the cached tree."""
    # Bytecode compiled by the build machine's Python would be dead weight for Lambda's: --no-compile here;
    # the bundler compiles the whole layer with the runtime's Python when the machine has it.
    key = dependencies_key()
    target = CACHE / key
    if not (target / ".complete").exists():
        staging = CACHE / f"{key}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                # Exactly the lock, each file checked against its hash: no resolver, so nothing unpinned comes in.
                "--require-hashes",
                "--no-deps",
                "--target",
                str(staging),
                "--platform",
                PLATFORM,
                "--python-version",
                PYTHON_VERSION,
                "--implementation",
                "cp",
                "--only-binary=:all:",
                "--no-compile",
                "--requirement",
                str(LAYER.path),
            ],
            check=True,
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        (target / ".complete").touch()
    return target


def bundle(output_dir: Path, interpreter: str | None) -> Path:
    """The layer as Lambda unpacks it into /opt: output_dir/python, which is returned."""
    python_dir = output_dir / "python"
    shutil.copytree(
        _dependencies(),
        python_dir,
        ignore=shutil.ignore_patterns(".complete", "bin", "__pycache__"),
        dirs_exist_ok=True,
    )
    shutil.copytree(LAYER_SOURCE / "trainctl", python_dir / "trainctl", ignore=_ignore_unshipped, dirs_exist_ok=True)
    if interpreter is not None:
        compile_bytecode(python_dir, interpreter)
    return python_dir


@jsii.implements(cdk.ILocalBundling)
class LocalLayerBundling:
    def __init__(self, interpreter: str | None) -> None:
        self._interpreter = interpreter

    def try_bundle(self, output_dir: str, *, image: cdk.DockerImage, **_: Any) -> bool:
        bundle(Path(output_dir), self._interpreter)
        return True


class DomainLayer(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        # Decided once: the asset's hash and its content must agree on it.
        interpreter = bytecode_interpreter()
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="trainctl domain library with pydantic and Powertools",
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[lambda_.Architecture.X86_64],
            code=lambda_.Code.from_asset(
                str(LAYER_SOURCE),
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                asset_hash=_source_digest(interpreter),
                bundling=cdk.BundlingOptions(
                    image=RUNTIME.bundling_image,
                    local=LocalLayerBundling(interpreter),
                ),
            ),
        )
