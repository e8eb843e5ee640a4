"""ascii_int: integers in user text are ASCII digits only."""

from __future__ import annotations

import pytest

from tfxc.utils.numbers import ascii_int


@pytest.mark.parametrize("text, value", [("0", 0), ("15", 15), ("-3", -3), ("007", 7)])
def test_ascii_digits_are_read(text, value):
    assert ascii_int(text) == value


@pytest.mark.parametrize("text", ["", "-", "²", "٣", "1²", " 3", "3 ", "+3", "1_000", "3.0", "x", None, 3])
def test_anything_else_is_none(text):
    # '²'.isdigit() is True but int('²') raises; int('٣') is 3; int(' 3'), int('+3'), int('1_000') pass.
    assert ascii_int(text) is None


# === ascii_float, finite_number ===
@pytest.mark.parametrize("text, value", [("0.5", 0.5), (".5", 0.5), ("5.", 5.0), ("-2", -2.0), ("+1e-3", 1e-3),
                                         ("1E4", 1e4), ("1e-400", 0.0)])
def test_finite_decimal_numbers_are_read(text, value):
    from tfxc.utils.numbers import ascii_float

    assert ascii_float(text) == value


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "INF", "1e400", "-1e400", "",
                                  ".", "e3", " 1", "1 ", "1_0", "٣", "0x10", "1/2", None, 0.5])
def test_what_float_reads_beyond_finite_decimals_is_none(text):
    # float() reads all but the last few: NaN and the infinities as themselves, 1e400 as inf, ' 1' and '٣' as numbers.
    from tfxc.utils.numbers import ascii_float

    assert ascii_float(text) is None


def test_an_api_number_must_be_a_finite_real():
    import numpy as np

    from tfxc.utils.numbers import finite_number

    assert finite_number(np.float32(0.25), "threshold") == 0.25 and finite_number(1, "threshold") == 1.0
    for value in (float("nan"), float("inf"), -np.inf, np.float32("nan")):
        with pytest.raises(ValueError, match=r"^threshold must be a finite number, got "):
            finite_number(value, "threshold")
    for value in ("0.5", True, None):
        with pytest.raises(ValueError, match=r"^threshold must be a number, got "):
            finite_number(value, "threshold")
