"""Values from tags and events on their way into a message: one line, printable, bounded.

Anyone may write any tag and many event fields; a newline in one must never start a forged line in a notice
that owners read, nor a control character reach a terminal.
"""

from __future__ import annotations

import re
import shlex
import unicodedata

MAX_VALUE = 256  # EC2's longest tag value
_BREAKING = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def one_line(value: object, limit: int = MAX_VALUE) -> str:
    """The value with every control or format character shown as an escape, and cut to `limit` characters."""
    text = str(value)
    # Control and format characters (C*), and the line and paragraph separators (Zl, Zp) that break a line too.
    shown = "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _BREAKING else ch for ch in text
    )
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """A count and its noun as a person writes them: 1 sweep, 2 sweeps, 1,200 resources."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


# What a shell takes as one plain word: a name, an address, an id. Anything else is quoted.
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9@%+=:,./_-]+$")


def shell_word(value: str) -> str | None:
    """The value as one word a person may paste into a shell (quoted when it must be), or None when it cannot
    stand for itself there: a control character or a cut would make the command name someone else."""
    if not value or one_line(value) != value:
        return None
    return value if _PLAIN_WORD.match(value) else shlex.quote(value)
