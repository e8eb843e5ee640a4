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
import csv
import os
import threading
from collections.abc import Iterator

from tfxc.data.files import open_text, surrogate_problem
from tfxc.data.readers.base import JsonlRecord
from tfxc.errors import DataError

__all__ = ["LABEL_COLUMNS", "TEXT_COLUMNS", "delimited_rows", "is_csv", "iter_csv_text"]

TEXT_COLUMNS = ("sentence", "text")
LABEL_COLUMNS = ("label", "labels")
_SUFFIXES = {".csv": ",", ".tsv": "\t"}


def _delimiter(path: str) -> str | None:
    name = (path[:-3] if path.endswith(".gz") else path).lower()
    return next((sep for suffix, sep in _SUFFIXES.items() if name.endswith(suffix)), None)


def is_csv(path: str | os.PathLike) -> bool:
    """Whether `path` names a CSV or TSV text file (.csv, .tsv, optionally .gz)."""
    return _delimiter(os.fspath(path)) is not None


# Python's csv module refuses a cell over 131,072 characters (`field_size_limit`), a guard against an unclosed
# quote reading the rest of a file into one cell. Here a long document is ordinary input, as long as a line
# may be, and strict parsing refuses an unclosed quote itself. The limit is a process-wide setting of the csv
# module, so it is raised only while a row of this module's is parsed and put back at once: other csv users
# in the process (the caller's own code) keep theirs. The lock keeps concurrent readers from putting back
# each other's raised limit. 2**31 - 1 fits the C long the setting is stored in on every platform.
_CELL_LIMIT = 2**31 - 1
_limit_lock = threading.Lock()
_NAMES = {",": "comma", "\t": "tab"}


def _next_row(rows) -> list[str] | None:
    """The next row of a csv reader (None at its end), parsed under `_CELL_LIMIT`."""
    with _limit_lock:
        before = csv.field_size_limit()
        csv.field_size_limit(max(before, _CELL_LIMIT))
        try:
            return next(rows, None)
        finally:
            csv.field_size_limit(before)


def delimited_rows(path: str | os.PathLike, delimiter: str = ",", cells: int | None = None, *,
                   first: str = "the header") -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, its cells) of every row of a CSV/TSV file (UTF-8, optionally gzip), blank
    lines skipped; the first row (a header) first.

    Every row must have `cells` cells (None: as many as the first row, named `first` in the error); a cell
    may be of any length and span lines when quoted.

    Raises:
      DataError: naming the file and the line: a row with another number of cells (with how many), a
        quoted cell never closed or a character after a closing quote, bytes that are not UTF-8.
    """
    path = os.fspath(path)
    with open_text(path) as lines:
        # strict: `"a"b` and an unclosed quote are errors, not the text `ab` or the rest of the file.
        rows = csv.reader(lines, delimiter=delimiter, strict=True)
        expected = cells
        while True:
            start = rows.line_num + 1
            try:
                row = _next_row(rows)
            except csv.Error as e:
                raise DataError(_malformed(str(e), rows.line_num - start), path=path, line=start) from None
            if row is None:
                return
            if not row:  # a blank line
                continue
            if expected is None:
                expected = len(row)
            elif len(row) != expected:
                where = f"{first} has {expected}" if cells is None else f"{expected} are expected"
                example = ' ("hello, how are you")' if delimiter == "," else ""
                raise DataError(
                    f"has {len(row)} cell{'s' * (len(row) != 1)} where {where}; a cell that holds a "
                    f"{_NAMES.get(delimiter, repr(delimiter))}, a double quote or a line break must be in double "
                    f"quotes{example}", path=path, line=start)
            yield start, row


def _malformed(reason: str, more_lines: int) -> str:
    if reason == "unexpected end of data":
        return ("a double quote opens a cell that is never closed (the rest of the file would be one cell); "
                "a double quote inside a quoted cell is written twice (\"\")")
    if "expected after" in reason:
        return (f"malformed CSV: {reason} closing a quoted cell{' (in a later line of this row)' * (more_lines > 0)}; "
                "a double quote inside a quoted cell is written twice (\"\")")
    return f"malformed CSV: {reason}"


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
