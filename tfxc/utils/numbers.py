"""Reading numbers from user text (config values, header fields, label ids, command-line flags) in ASCII."""

from __future__ import annotations

import math
import numbers
import re

_ASCII_INT = re.compile(r"-?[0-9]+")
# Decimal notation: '0.5', '.5', '5.', '-2', '1e-3', '+1E4'.
_ASCII_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def ascii_int(text: str) -> int | None:
    """The integer `text` spells in ASCII digits (with an optional leading '-'), else None.

    `str.isdigit()` is true for '²' (which `int()` then refuses with a ValueError) and for '٣' (which `int()`
    reads as 3, so 'P@٣' would pass as a metric no evaluation reports); `int()` also takes ' 3', '+3' and
    '1_000'. User text names numbers the way the files tfxc writes do, so only ASCII digits count.
    """
    if not isinstance(text, str) or not _ASCII_INT.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:  # over the interpreter's 4,300 digits (sys.set_int_max_str_digits): no count of anything
        return None


def ascii_float(text: str) -> float | None:
    """The finite number `text` spells in ASCII decimal notation ('0.5', '1e-3', '-2'), else None.

    `float()` also reads 'nan', 'inf' and 'Infinity' (any case), '1e400' (as inf), ' 1', '1_0' and '٣'. A
    number that is compared with others must be finite: every comparison with NaN is false (a threshold of
    NaN keeps no label, silently) and one with an infinity is settled before any data is seen.
    """
    if not isinstance(text, str) or not _ASCII_FLOAT.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def finite_number(value, name: str) -> float:
    """`value` as a float, for an argument of the Python API that is compared with scores or data.

    Raises:
      ValueError: `value` is not a real number (a bool is not), or is NaN or infinite; the message names `name`.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)
