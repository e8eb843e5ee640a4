"""User text in what tfxc writes: JSON that keeps it readable, and table columns aligned by what a terminal shows.

Label names, texts and file names are the user's, in any script: "天气" must read as itself in a JSONL file, and
take the two columns a terminal gives each of its characters when a table pads it.
"""

from __future__ import annotations

import json
import unicodedata


def json_text(value, **options) -> str:
    """`value` as JSON (`json.dumps` with `options`, e.g. indent) with its non-ASCII characters as themselves,
    for a file written as UTF-8.

    A string holding a lone surrogate (a file name that is not UTF-8, as Python reads it) cannot be written as
    UTF-8: such a value is written with JSON's \\u escapes instead, as before.
    """
    text = json.dumps(value, ensure_ascii=False, **options)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, **options)
    return text


def display_width(text: str) -> int:
    """The terminal columns `text` takes: 2 for each East Asian wide or fullwidth character (CJK ideographs,
    kana, hangul, fullwidth forms, most emoji), 0 for combining marks and invisible format characters (a
    zero-width joiner), 1 for the rest."""
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def pad(text: str, width: int, align: str = ">") -> str:
    """`text` padded with spaces to `width` terminal columns (`display_width`): right-aligned with ">",
    left-aligned with "<". Text already as wide or wider is returned as it is.

    `str.format`'s `{:>24}` counts characters, so a column of CJK names comes out up to twice as wide as its
    header and the columns after it shift.
    """
    fill = " " * max(0, width - display_width(text))
    return fill + text if align == ">" else text + fill
