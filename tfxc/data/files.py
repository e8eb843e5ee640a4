"""Opening and reading input files with errors that name the file and line.

A leaf module (it imports nothing from tfxc but the error types), so that every
reader and `LabelVocab` can share it without import cycles.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import os
import threading
import zlib
from collections.abc import Iterator
from typing import IO

from tfxc.errors import DataError

__all__ = ["TextLines", "count_remaining_lines", "delimited_rows", "numbered_lines", "open_binary", "open_text",
           "read_lines", "check_strings", "surrogate_in_tree", "surrogate_problem"]

_BOM = b"\xef\xbb\xbf"


def open_binary(path: str) -> IO[bytes]:
    """Opens `path` for binary reading, turning OS errors into DataError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError("file not found", path=path) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a file", path=path) from None
    except PermissionError:
        raise DataError("permission denied", path=path) from None
    except OSError as e:
        raise DataError(f"cannot open file: {e.strerror or e}", path=path) from None


def open_text(path: str | os.PathLike) -> "TextLines":
    """Opens a UTF-8 text file for reading line by line, transparently un-gzipping it.

    Gzip is recognised by the file's magic bytes (``1f 8b``), not its name, so
    a ``.gz`` file renamed without the suffix still works. Line endings
    ``\\n``, ``\\r\\n`` and ``\\r`` are all read as ``\\n``, and a leading
    UTF-8 byte-order mark is skipped. Bytes that are not UTF-8 raise a
    `DataError` naming the exact line (see `TextLines`).

    Args:
      path: the file to open.

    Returns:
      A `TextLines`; use it as a context manager.

    Raises:
      DataError: the file is missing, is a directory, or cannot be opened.
    """
    path = os.fspath(path)
    raw: IO[bytes] = open_binary(path)
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError as e:
        raw.close()
        raise DataError(f"cannot read file: {e.strerror or e}", path=path) from None
    if magic == b"\x1f\x8b":
        raw = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
        # GzipFile does not close a fileobj it was handed; make closing it close the file too.
        raw.myfileobj = raw.fileobj  # type: ignore[attr-defined]
    return TextLines(raw, path)


class TextLines:
    """The lines of a UTF-8 text file as str, each ending in ``\\n`` (the last one may not).

    Lines are decoded one by one (a text wrapper decodes blocks, so its error
    could not say which line is bad): bytes that are not UTF-8 raise a
    `DataError` with the file and the exact 1-based line, once the lines before
    it have been handed out. Iterating it hands out the lines; `lineno` is the
    number of the last line handed out.

    Args:
      raw: the binary stream (plain or un-gzipping); closed by `close`.
      path: the file's name, for errors.
    """

    # Bytes read at a time: whole blocks split in C cost a fraction of a Python call per line.
    BLOCK = 1 << 16

    def __init__(self, raw: IO[bytes], path: str):
        self._raw, self.path = raw, path
        self._lines: list[str] = []   # decoded lines not handed out yet, from index _pos on
        self._pos = 0
        self._start = 0               # lines handed out before `_lines`
        self._tail: list[bytes] = []  # bytes after the last line break read
        self._error: DataError | None = None  # raised once the lines before it are out
        self._eof = False

    @property
    def lineno(self) -> int:
        return self._start + self._pos

    def __iter__(self) -> TextLines:
        return self

    def __next__(self) -> str:
        while self._pos == len(self._lines):
            if self._error is not None:
                raise self._error
            if not self._fill():
                raise StopIteration
        self._pos += 1
        return self._lines[self._pos - 1]

    def _fill(self) -> bool:
        """Decodes the next block of whole lines into `_lines`; False at the end of the file."""
        data = self._read_whole_lines()
        if not data:
            return False
        if self._start == 0 and not self._lines and data.startswith(_BOM):
            data = data[len(_BOM):]
        # bytes.splitlines breaks at \n, \r\n and \r only; str.splitlines would also break at \x0b,
        # \x1c, U+2028 ..., which are ordinary characters inside a line here.
        pieces = data.splitlines(keepends=True)
        if b"\r" in data:
            pieces = [_unix_ending(piece) for piece in pieces]
        self._start += len(self._lines)
        self._pos = 0
        try:
            self._lines = [piece.decode("utf-8") for piece in pieces]
        except UnicodeDecodeError:
            self._lines = self._decode_up_to_error(pieces)
        return True

    def _read_whole_lines(self) -> bytes:
        """The bytes up to the last line break of the next block(s) (the rest of the file at its end)."""
        while not self._eof:
            try:
                block = self._raw.read(self.BLOCK)
            except (OSError, EOFError, zlib.error) as e:
                raise DataError(f"cannot read file (corrupt or truncated gzip?) at or after this line: {e}",
                                path=self.path, line=self._start + len(self._lines) + 1) from None
            if not block:
                self._eof = True
                break
            cut = block.rfind(b"\n") + 1
            if cut:
                # Parts of a very long line are joined once, not copied at every block.
                data = b"".join(self._tail + [block[:cut]])
                self._tail = [block[cut:]] if cut < len(block) else []
                return data
            self._tail.append(block)
        data, self._tail = b"".join(self._tail), []
        return data

    def _decode_up_to_error(self, pieces: list[bytes]) -> list[str]:
        """The lines before the first one that is not UTF-8; that line's error waits in `_error`."""
        lines = []
        for piece in pieces:
            try:
                lines.append(piece.decode("utf-8"))
            except UnicodeDecodeError as e:
                self._error = DataError(
                    f"not valid UTF-8 text: byte 0x{piece[e.start]:02x} at byte {e.start + 1} of the line "
                    f"({e.reason}); is the file in another encoding, e.g. Latin-1? Save it as UTF-8",
                    path=self.path, line=self._start + len(lines) + 1)
                break
        return lines

    def readline(self) -> str:
        """The next line, or "" at the end of the file (as a text file's readline)."""
        return next(self, "")

    def read(self) -> str:
        """The rest of the file as one string."""
        return "".join(self)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> TextLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _unix_ending(line: bytes) -> bytes:
    """`line` with a \\r\\n or \\r ending turned into \\n."""
    if line.endswith(b"\r\n"):
        return line[:-2] + b"\n"
    if line.endswith(b"\r"):
        return line[:-1] + b"\n"
    return line


def read_lines(f: Iterator[str], path: str, count: int | None, next_lineno: int) -> list[str]:
    """Reads up to `count` lines (all if None) of an `open_text` file.

    `path` and `next_lineno` name the place of a read error for other line
    iterators; a `TextLines` names it itself, exactly.
    """
    try:
        return list(itertools.islice(f, count))
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 text at or after this line ({e.reason})",
                        path=path, line=next_lineno) from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot read file (corrupt or truncated gzip?): {e}",
                        path=path, line=next_lineno) from None


def numbered_lines(f: IO[str], path: str, chunk: int = 4096) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of every line of `f`, read `chunk` lines at a time (see `read_lines`)."""
    lineno = 0
    while True:
        lines = read_lines(f, path, chunk, lineno + 1)
        if not lines:
            return
        for line in lines:
            lineno += 1
            yield lineno, line


def count_remaining_lines(f: IO[str], path: str, next_lineno: int) -> int:
    """Counts the lines left in `f` without keeping them in memory."""
    total = 0
    while True:
        lines = read_lines(f, path, 65536, next_lineno + total)
        if not lines:
            return total
        total += len(lines)



def surrogate_problem(text: str) -> str | None:
    """Why `text` cannot be stored as UTF-8, or None if it can.

    Python strings may hold lone surrogates (U+D800..U+DFFF), which are not
    characters: JSON's ``"\\ud800"`` escape decodes to one. Such a string passes
    every check until it is written (TFRecord, labels.txt) or handed to
    TensorFlow, which fail with a traceback; the readers call this first to
    name the line instead.
    """
    if text.isascii():  # O(1) in CPython: most text never gets to the encoder
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return (f"contains a lone surrogate U+{ord(text[e.start]):04X} at character {e.start + 1} (an unpaired "
                "\\uD800-\\uDFFF escape?), which is not valid Unicode text")
    return None


def surrogate_in_tree(tree, key: str = "") -> str | None:
    """Names the first string (or key) in a parsed JSON tree that `surrogate_problem` refuses, else None.

    For a config, where JSON's ``"\\ud800"`` escape or a ``--set`` argument with bytes that are not
    UTF-8 (which Python hands over as surrogate escapes) would otherwise pass every check and end in a
    UnicodeEncodeError where the string is first used as a path or written out.

    Args:
      tree: dicts, lists and scalars, as `json.loads` returns them.
      key: the dotted key of `tree` (empty at the top), e.g. "data.train" or "eval.ks[1]".

    Returns:
      "<dotted key>: the string '<escaped>' contains a lone surrogate ...", or None.
    """
    if isinstance(tree, str):
        problem = surrogate_problem(tree)
        return f"{key or 'config'}: the string {ascii(tree)} {problem}" if problem else None
    if isinstance(tree, list):
        return next(filter(None, (surrogate_in_tree(v, f"{key}[{i}]") for i, v in enumerate(tree))), None)
    if not isinstance(tree, dict):
        return None
    for name, value in tree.items():
        problem = surrogate_problem(name)
        if problem:  # a key: named by its section, and quoted escaped (it is not printable as it is)
            return f"{key or 'config'}: the key {ascii(name)} {problem}"
        found = surrogate_in_tree(value, f"{key}.{name}" if key else name)
        if found:
            return found
    return None


def check_strings(values, what: str, item: str = "row") -> None:
    """Raises a DataError naming the row of the first string in `values` that `surrogate_problem` refuses.

    For strings that come from Python rather than from a file (``tfxc.fit`` /
    ``predict`` inputs), where the row is the only place to name.

    Args:
      values: an iterable of rows, each a str or an iterable of str (others are skipped).
      what: the rows' name in the message, e.g. "X (train)".
      item: what one of `values` is called, e.g. "label id".
    """
    for row, value in enumerate(values):
        for text in ([value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else ()):
            problem = surrogate_problem(text) if isinstance(text, str) else None
            if problem:
                shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
                shown = shown if len(shown) <= 60 else shown[:60] + "..."
                raise DataError(f"{what} {item} {row}: '{shown}' {problem}")


def text_lines(path: str) -> Iterator[str]:
    """One raw text per line (PECOS's X.*.txt; an empty line is an empty text), each checked like a JSONL
    text: a lone surrogate is an error naming the file and line."""
    with open_text(path) as lines:
        for number, line in enumerate(lines, start=1):
            text = line.rstrip("\n")
            problem = surrogate_problem(text)
            if problem:
                raise DataError(f"the text {problem}", path=path, line=number)
            yield text


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
