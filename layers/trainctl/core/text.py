"""Values from tags and events on their way into a message: one line, printable, bounded.

Anyone may write any tag and many event fields; a newline in one must never start a forged line in a notice
that owners read, nor a control character reach a terminal.
"""

from __future__ import annotations

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
