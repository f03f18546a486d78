"""Imported first by the command line: Ctrl-C is one line and exit 130, even during the slow imports."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import TracebackType

EXIT_INTERRUPTED = 130  # the same code as trainctl.cli.output's, which is too heavy to import this early


def _interrupted_quietly(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """Ctrl-C that escaped every command (an import, startup, shutdown): one line and 130, never a traceback."""
    if not issubclass(kind, KeyboardInterrupt):
        _previous_hook(kind, value, tb)
        return
    # A second Ctrl-C while we say so must not bring the traceback back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing left to show
        sys.stdout.flush()
    sys.stderr.write("error: interrupted\n")
    sys.stderr.flush()
    # Python would otherwise end itself by SIGINT, which a caller sees as -2, not the documented 130.
    os._exit(EXIT_INTERRUPTED)


_previous_hook = sys.excepthook
sys.excepthook = _interrupted_quietly
