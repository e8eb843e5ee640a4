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
