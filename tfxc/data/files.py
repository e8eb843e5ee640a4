"""Opening and reading input files with errors that name the file and line.

A leaf module (it imports nothing from tfxc but the error types), so that every
reader and `LabelVocab` can share it without import cycles.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import zlib
from collections.abc import Iterator
from typing import IO

from tfxc.errors import DataError

__all__ = ["count_remaining_lines", "numbered_lines", "open_binary", "open_text", "read_lines"]


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


def open_text(path: str | os.PathLike) -> IO[str]:
    """Opens a UTF-8 text file for reading, transparently un-gzipping it.

    Gzip is recognised by the file's magic bytes (``1f 8b``), not its name, so
    a ``.gz`` file renamed without the suffix still works. Line endings
    ``\\n``, ``\\r\\n`` and ``\\r`` are all read as ``\\n``, and a leading
    UTF-8 byte-order mark is skipped.

    Args:
      path: the file to open.

    Returns:
      A text file object; use it as a context manager.

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
        # GzipFile does not close a fileobj it was handed; make closing the text
        # wrapper close the underlying file too.
        raw.myfileobj = raw.fileobj  # type: ignore[attr-defined]
    # utf-8-sig: a leading byte-order mark (as some editors write) is dropped.
    return io.TextIOWrapper(raw, encoding="utf-8-sig")  # type: ignore[arg-type]


def read_lines(f: IO[str], path: str, count: int | None, next_lineno: int) -> list[str]:
    """Reads up to `count` lines (all if None), turning decode/gzip errors into DataError."""
    try:
        return list(itertools.islice(f, count))
    except UnicodeDecodeError as e:
        # The decoder works on blocks, so the line is only known approximately.
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

