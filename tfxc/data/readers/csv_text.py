"""Text classification data as CSV (text_classifier's format): a header naming a text column and a label column.

    sentence,label
    "这家酒店的服务很好",positive
    "The card was declined, twice","card_declined,payment"

The text column is ``sentence`` or ``text``, the label column ``label`` or ``labels``, in any order, other
columns ignored; a multi-label row lists its labels in one cell, separated by commas. ``.tsv`` files are
tab-separated. Every record becomes the `JsonlRecord` of a JSONL line (the CSV line where it starts, no id), so
a CSV file can stand wherever a JSONL text file can (`iter_jsonl` reads both, by the file's name).
"""

from __future__ import annotations

import csv
import os

from tfxc.data.files import open_text, surrogate_problem
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
      DataError: naming the file, the line and the column: no header or no text column, a row with fewer
        cells than the header, an empty label name, or a text that is not valid Unicode.
    """
    path = os.fspath(path)
    with open_text(path) as lines:
        rows = csv.reader(lines, delimiter=_delimiter(path))
        header = next(rows, None)
        if not header:
            raise DataError("file is empty (expected a header such as 'sentence,label')", path=path)
        text_at = _column(header, TEXT_COLUMNS, path, "text", True)
        labels_at = _column(header, LABEL_COLUMNS, path, "label", require_labels)
        line, count = rows.line_num + 1, 0
        for row in rows:
            start, line = line, rows.line_num + 1
            if not row:  # a blank line
                continue
            count += 1
            if max(text_at, labels_at or 0) >= len(row):
                raise DataError(f"has {len(row)} cells, the header {len(header)}", path=path, line=start)
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
