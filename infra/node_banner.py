"""jsii's end-of-life banner, silenced before the CDK starts its Node process.

Once a Node release is past jsii's support, jsii prints an 11-line banner at every start unless
JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION lists that Node's major version (a comma-separated list such as
"20"); any other value, `1` included, leaves it on. Nothing here imports the CDK: it must run before.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import MutableMapping

SILENCE_END_OF_LIFE = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
_MAJOR = re.compile(r"^v?(\d+)\.")


def node_major() -> str | None:
    """The major version of the `node` on the PATH, the one jsii runs; None when there is none to ask."""
    node = shutil.which("node")
    if node is None:
        return None
    try:
        answer = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = _MAJOR.match(answer.stdout.strip())
    return found.group(1) if found else None


def silence_node_end_of_life(environ: MutableMapping[str, str], major: str | None = None) -> None:
    """Add the running Node's major version to the variable, keeping whatever it already lists."""
    major = major if major is not None else node_major()
    if major is None:
        return
    listed = [part.strip() for part in environ.get(SILENCE_END_OF_LIFE, "").split(",") if part.strip()]
    if major not in listed:
        environ[SILENCE_END_OF_LIFE] = ",".join([*listed, major])
