"""Reading integers from user text (config values, header fields, label ids) digit by digit in ASCII."""

from __future__ import annotations

import re

_ASCII_INT = re.compile(r"-?[0-9]+")


def ascii_int(text: str) -> int | None:
    """The integer `text` spells in ASCII digits (with an optional leading '-'), else None.

    `str.isdigit()` is true for '²' (which `int()` then refuses with a ValueError) and for '٣' (which `int()`
    reads as 3, so 'P@٣' would pass as a metric no evaluation reports); `int()` also takes ' 3', '+3' and
    '1_000'. User text names numbers the way the files tfxc writes do, so only ASCII digits count.
    """
    return int(text) if isinstance(text, str) and _ASCII_INT.fullmatch(text) else None
