"""Text classification data as CSV (text_classifier's format): a header naming a text column and a label column.

    sentence,label
    "这家酒店的服务很好",positive
    "The card was declined, twice","card_declined,payment"

The text column is ``sentence`` or ``text``, the label column ``label`` or ``labels``, in any order, other
columns ignored; a multi-label row lists its labels in one cell, separated by commas. ``.tsv`` files are
tab-separated. Every row must have as many cells as the header: a cell that holds the delimiter, a double
quote or a line break must be in double quotes (as pandas, this reader refuses a row with more cells rather
than drop them: an unquoted comma in a sentence would otherwise shift its label). Every record becomes the `JsonlRecord` of a JSONL line (the CSV line where it starts, no id), so
a CSV file can stand wherever a JSONL text file can (`iter_jsonl` reads both, by the file's name).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from tfxc.data.files import delimited_rows, surrogate_problem
from tfxc.data.readers.base import JsonlRecord
from tfxc.errors import DataError

__all__ = ["LABEL_COLUMNS", "TEXT_COLUMNS", "is_csv", "iter_csv_text"]

TEXT_COLUMNS = ("sentence", "text")
LABEL_COLUMNS = ("label", "labels")
_SUFFIXES = {".csv": ",", ".tsv": "\t"}


def _delimiter(path: str) -> str | None:
    name = (path[:-3] if path.endswith(".gz") else path).lower()
    return next((sep for suffix, sep in _SUFFIXES.items() if name.endswith(suffix)), None)


def is_csv(path: str | os.PathLike) -> bool:
    """Whether `path` names a CSV or TSV text file (.csv, .tsv, optionally .gz)."""
    return _delimiter(os.fspath(path)) is not None


def _column(header: list[str], names: tuple[str, ...], path: str, what: str, required: bool) -> int | None:
    lowered = [name.strip().lower() for name in header]
    found = [lowered.index(name) for name in names if name in lowered]
    if not found:
        if required:
            raise DataError(f"the header {header} has no {what} column ({' or '.join(names)})", path=path, line=1)
        return None
    return found[0]


def iter_csv_text(path: str | os.PathLike, *, require_labels: bool = True):
    """Streams the records of a CSV/TSV text file as `JsonlRecord`s (see the module docstring).

    Raises:
      DataError: naming the file, the line and the column: no header or no text column, a row with another
        number of cells than the header or a malformed quote (`delimited_rows`), an empty label name, or a
        text that is not valid Unicode.
    """
    path = os.fspath(path)
    with contextlib.closing(delimited_rows(path, _delimiter(path))) as rows:
        yield from _records(rows, path, require_labels)


def _records(rows, path: str, require_labels: bool) -> Iterator[JsonlRecord]:
    _, header = next(rows, (0, None))
    if not header:
        raise DataError("file is empty (expected a header such as 'sentence,label')", path=path)
    text_at = _column(header, TEXT_COLUMNS, path, "text", True)
    labels_at = _column(header, LABEL_COLUMNS, path, "label", require_labels)
    count = 0
    for start, row in rows:
        count += 1
        text = row[text_at]
        problem = surrogate_problem(text)
        if problem:
            raise DataError(f"the text {problem}", path=path, line=start, field=header[text_at])
        cell = "" if labels_at is None else row[labels_at]
        labels = [name.strip() for name in cell.split(",")] if cell or require_labels else []
        if not all(labels):
            raise DataError(f"label names must not be empty, got {row[labels_at]!r}", path=path, line=start,
                            field=header[labels_at])
        yield JsonlRecord(start, None, text, labels)
    if not count:
        raise DataError("has a header but no rows", path=path)
