"""Readers for the input formats tfxc accepts; each yields `Row`s in file order.

Formats (the `open_reader` name in brackets):

* `XcBowReader` [``xc``]: Extreme Classification Repository bag-of-words text,
  plain or gzipped, with or without the ``N D L`` header line.
* `PecosNpzReader` [``pecos``]: PECOS ``X.*.npz`` / ``Y.*.npz`` scipy sparse
  matrices.
* `JsonlReader` [``jsonl``]: one JSON object ``{"id", "text", "labels"}`` per
  line, label names mapped through a `LabelVocab`.
* `DenseReader` [``dense``]: a 2-D ``.npy`` feature matrix plus labels in a
  ``.npz`` / ``.npy`` / text file.

Every reader is re-iterable (each ``iter()`` starts a new pass over the file)
and exposes ``num_features``, ``num_labels`` and ``num_rows`` (see `Reader`).
Bad input raises `tfxc.errors.DataError` naming the file and, where it applies,
the 1-based line and the field. No reader ever unpickles.

Conventions shared by all readers: feature values are float32 and explicit
zero values are dropped (a row holds its nonzero features only); feature ids
of a row come out sorted; a repeated feature id or label within a row is an
error; a row may have no features and/or no labels.
"""

from __future__ import annotations

import difflib
import gzip
import inspect
import io
import itertools
import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

import numpy as np
import scipy.sparse

from tfxc.data.label_vocab import LabelVocab
from tfxc.data.rows import Row
from tfxc.errors import ConfigError, DataError

__all__ = [
    "DenseReader",
    "JsonlReader",
    "JsonlRecord",
    "LabelVocab",
    "PecosNpzReader",
    "Reader",
    "XcBowReader",
    "iter_jsonl",
    "open_reader",
    "open_text",
]

_EMPTY_IDX = np.zeros(0, np.int64)
_EMPTY_VAL = np.zeros(0, np.float32)


# =====================================================================================
# Shared helpers
# =====================================================================================


def _open_binary(path: str) -> IO[bytes]:
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
    raw: IO[bytes] = _open_binary(path)
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


def _read_lines(f: IO[str], path: str, count: int | None, next_lineno: int) -> list[str]:
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


def _count_remaining_lines(f: IO[str], path: str, next_lineno: int) -> int:
    """Counts the lines left in `f` without keeping them in memory."""
    total = 0
    while True:
        lines = _read_lines(f, path, 65536, next_lineno + total)
        if not lines:
            return total
        total += len(lines)


def _check_bound(name: str, value: int | None) -> int | None:
    """Validates an explicit `num_features` / `num_labels` argument."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{name} must be a non-negative int or None, got {value!r}")
    return int(value)


def _row_offsets(counts: np.ndarray) -> list[int]:
    """[0, c0, c0+c1, ...] as a Python list (fast to index in a loop)."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets.tolist()


class Reader:
    """Interface of every reader: a re-iterable stream of `Row`s.

    Attributes:
      path: the (main) file read.
      num_features: size of the feature space: a header/matrix shape or an
        explicit argument when there is one, else 1 + the largest feature id seen
        so far (complete after a full pass); None before any id is known.
      num_labels: likewise for labels.
      num_rows: number of rows of the last complete pass; before one, the
        row count the file declares (header, matrix shape) or None.
    """

    path: str

    def __iter__(self) -> Iterator[Row]:
        raise NotImplementedError

    @property
    def num_features(self) -> int | None:
        raise NotImplementedError

    @property
    def num_labels(self) -> int | None:
        raise NotImplementedError

    @property
    def num_rows(self) -> int | None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path!r}, num_rows={self.num_rows}, "
                f"num_features={self.num_features}, num_labels={self.num_labels})")


# =====================================================================================
# Extreme Classification Repository bag-of-words text
# =====================================================================================

# The grammar of one XC data line (after stripping the line break):
#   [labels] (WS id:value)* WS*      labels = id(,id)*, WS = spaces/tabs
# so a line without labels starts with whitespace (or is empty). Ids are limited
# to 15 digits so that parsing them through float64 is exact (10**15 < 2**53).
# Values must be finite decimal numbers; `nan`/`inf` fail here and are then
# diagnosed with a specific message. re.ASCII keeps \d from matching non-ASCII
# digits that numpy could not parse.
_ID = r"\d{1,15}"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_XC_LINE = re.compile(rf"({_ID}(?:,{_ID})*)?((?:[ \t]+{_ID}:{_NUMBER})*)[ \t]*", re.ASCII)
_DIGITS = re.compile(r"\d+", re.ASCII)
_NEG_DIGITS = re.compile(r"-\d+", re.ASCII)
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)
_HEADER_FIELD = re.compile(r"\d+", re.ASCII)


def _shorten(text: str, limit: int = 60) -> str:
    """`text`, cut to about `limit` characters for an error message."""
    return text if len(text) <= limit else text[:limit] + "..."


def _diagnose_id(token: str, what: str, context: str) -> str | None:
    """Explains why `token` is not a valid id, or returns None if it is one."""
    if _DIGITS.fullmatch(token):
        if len(token) > 15:
            return f"{what} id {_shorten(token)} is too large{context}"
        return None
    if _NEG_DIGITS.fullmatch(token):
        return f"negative {what} id {_shorten(token)}{context}"
    if not token:
        return f"empty {what} id{context}"
    return f"malformed {what} id {_shorten(token)!r}{context}"


def _diagnose_xc_line(line: str) -> tuple[str, str]:
    """Finds the first bad token of a line that failed `_XC_LINE`.

    Returns:
      (field, message) for a DataError.
    """
    if line[:1] in (" ", "\t"):
        label_field, rest = "", line
    else:
        parts = line.split(None, 1)
        label_field, rest = parts[0], (parts[1] if len(parts) > 1 else "")
    if label_field:
        shown = _shorten(label_field)
        if ":" in label_field:
            return "labels", (f"malformed label field {shown!r} (a line without labels "
                              "must start with a space)")
        context = f" in {shown!r}"  # built once: label fields can be very long
        for tok in label_field.split(","):
            problem = _diagnose_id(tok, "label", context)
            if problem:
                return "labels", problem
    for tok in rest.split():
        id_s, colon, val_s = tok.partition(":")
        tok = _shorten(tok)
        if not colon or ":" in val_s:
            return "features", f"malformed feature token {tok!r} (expected id:value)"
        problem = _diagnose_id(id_s, "feature", f" in token {tok!r}")
        if problem:
            return "features", problem
        if not _NUMBER_RE.fullmatch(val_s):
            try:
                finite = math.isfinite(float(val_s))
            except ValueError:
                finite = True
            if not finite:
                return "features", f"non-finite value {_shorten(val_s)!r} in token {tok!r}"
            return "features", f"malformed value {_shorten(val_s)!r} in token {tok!r}"
    # Reached only for odd whitespace (e.g. a vertical tab) between tokens.
    return "features", f"malformed line {_shorten(line)!r}"


class _XcChunk(NamedTuple):
    """Parsed arrays of consecutive XC lines (before splitting into rows)."""

    feat_idx: np.ndarray  # int64 [nnz]
    feat_val: np.ndarray  # float32 [nnz]
    feat_counts: np.ndarray  # int64 [rows]
    labels: np.ndarray  # int64 [num_pos]
    label_counts: np.ndarray  # int64 [rows]


class XcBowReader(Reader):
    """Reads Extreme Classification Repository bag-of-words text files.

    Format, one point per line after an optional header::

        N D L                      <- header: points, features, labels (optional)
        l1,l2,... f:v f:v ...      <- labels, then feature id:value pairs
         f:v f:v                   <- no labels: the line starts with a space
        l1,l2                      <- no features

    The header is recognised when the first line has at least two
    whitespace-separated fields and no ``:`` (no valid data line looks like
    that); it must then be exactly three non-negative integers. Unsorted
    feature ids and labels are sorted; explicit zero values are dropped; an
    empty line is a point with neither labels nor features. Gzipped files are
    read transparently. The file is streamed in chunks of lines, each parsed
    with vectorised numpy (about 1 s for a 65k-line, 12 MB file).

    Args:
      path: the text file (plain or gzip).
      index_base: 0 or 1, the base of the feature ids as written; 1 subtracts 1
        (LIBSVM style). Applies to features only, see `label_index_base`.
      label_index_base: 0 or 1, the base of the label ids as written. XC and
        LIBSVM multi-label files (e.g. napkinXC's yeast) use 0-based labels even
        when features are 1-based, hence a separate option.
      num_features: if given, feature ids (after re-basing) must lie in
        [0, num_features) and `num_features` reports it; else the header's D
        bounds them, else they are only checked to be non-negative.
      num_labels: likewise for label ids, overriding the header's L.

    Yields:
      `Row(feat_idx int64 [nnz], feat_val float32 [nnz], labels int64 [pos], None)`.

    Raises:
      DataError: on construction for a missing/empty file or a bad header; while
        iterating for a malformed line, a non-finite value, an id out of range,
        a duplicate id, or a row count that differs from the header's.

    Example:
      >>> reader = XcBowReader("bibtex/train.txt")        # doctest: +SKIP
      >>> rows = list(reader); reader.num_rows, reader.num_labels  # doctest: +SKIP
      (4880, 159)
    """

    # Lines parsed per vectorised step: large enough to amortise the numpy calls,
    # small enough to keep memory bounded. Tests lower it to cross chunk borders.
    _CHUNK_LINES = 4096

    def __init__(self, path: str | os.PathLike, *, index_base: int = 0,
                 label_index_base: int = 0, num_features: int | None = None,
                 num_labels: int | None = None):
        self.path = os.fspath(path)
        for name, base in (("index_base", index_base), ("label_index_base", label_index_base)):
            if base not in (0, 1) or isinstance(base, bool):
                raise ConfigError(f"{name} must be 0 or 1, got {base!r}")
        self.index_base = int(index_base)
        self.label_index_base = int(label_index_base)
        self._explicit_features = _check_bound("num_features", num_features)
        self._explicit_labels = _check_bound("num_labels", num_labels)
        self.header: tuple[int, int, int] | None = self._read_header()
        self._seen_features: int | None = None
        self._seen_labels: int | None = None
        self._rows_read: int | None = None

    # --- Properties ---

    @property
    def num_features(self) -> int | None:
        if self._explicit_features is not None:
            return self._explicit_features
        if self.header is not None:
            return self.header[1]
        return self._seen_features

    @property
    def num_labels(self) -> int | None:
        if self._explicit_labels is not None:
            return self._explicit_labels
        if self.header is not None:
            return self.header[2]
        return self._seen_labels

    @property
    def num_rows(self) -> int | None:
        if self._rows_read is not None:
            return self._rows_read
        return self.header[0] if self.header is not None else None

    # --- Parsing ---

    def _read_header(self) -> tuple[int, int, int] | None:
        with open_text(self.path) as f:
            first = _read_lines(f, self.path, 1, 1)
        if not first:
            raise DataError("file is empty", path=self.path)
        line = first[0].rstrip("\r\n")
        fields = line.split()
        if len(fields) < 2 or ":" in line:
            return None  # a data line: no header
        if len(fields) != 3:
            raise DataError(f"expected 3 fields 'num_points num_features num_labels', got "
                            f"{len(fields)}: {_shorten(line)!r}", path=self.path, line=1,
                            field="header")
        if not all(_HEADER_FIELD.fullmatch(x) for x in fields):
            raise DataError(f"fields must be non-negative integers, got {_shorten(line)!r}",
                            path=self.path, line=1, field="header")
        n, d, l = (int(x) for x in fields)
        return n, d, l

    def __iter__(self) -> Iterator[Row]:
        path, header = self.path, self.header
        feature_bound = self.num_features if (self._explicit_features is not None
                                              or header is not None) else None
        label_bound = self.num_labels if (self._explicit_labels is not None
                                          or header is not None) else None
        max_feature = max_label = -1
        rows_done = 0
        lineno = 1  # the number of the next line to read
        with open_text(path) as f:
            if header is not None:
                _read_lines(f, path, 1, 1)
                lineno = 2
            while True:
                lines = _read_lines(f, path, self._CHUNK_LINES, lineno)
                if not lines:
                    break
                excess = 0
                if header is not None and rows_done + len(lines) > header[0]:
                    # More rows than declared: parse the allowed ones first so that an
                    # earlier malformed line is reported before the count mismatch.
                    excess = rows_done + len(lines) - header[0]
                    lines = lines[:len(lines) - excess]
                chunk = self._parse_lines(lines, lineno, feature_bound, label_bound)
                if chunk.feat_idx.size:
                    max_feature = max(max_feature, int(chunk.feat_idx.max()))
                if chunk.labels.size:
                    max_label = max(max_label, int(chunk.labels.max()))
                self._seen_features = max_feature + 1 if max_feature >= 0 else None
                self._seen_labels = max_label + 1 if max_label >= 0 else None
                if excess:
                    total = (rows_done + len(lines) + excess
                             + _count_remaining_lines(f, path, lineno + len(lines) + excess))
                    raise DataError(f"header says {header[0]} rows but the file has {total}",
                                    path=path, line=1, field="header")
                fo = _row_offsets(chunk.feat_counts)
                lo = _row_offsets(chunk.label_counts)
                fi, fv, lb = chunk.feat_idx, chunk.feat_val, chunk.labels
                for i in range(len(lines)):
                    yield Row(fi[fo[i]:fo[i + 1]], fv[fo[i]:fo[i + 1]], lb[lo[i]:lo[i + 1]], None)
                rows_done += len(lines)
                lineno += len(lines)
        if header is not None and rows_done != header[0]:
            raise DataError(f"header says {header[0]} rows but the file has {rows_done}",
                            path=path, line=1, field="header")
        if self._seen_features is None:
            self._seen_features = 0
        if self._seen_labels is None:
            self._seen_labels = 0
        self._rows_read = rows_done

    def _error(self, message: str, lineno: int, field: str) -> DataError:
        return DataError(message, path=self.path, line=lineno, field=field)

    def _parse_lines(self, lines: list[str], first_lineno: int, feature_bound: int | None,
                     label_bound: int | None) -> _XcChunk:
        """Parses consecutive data lines into flat arrays, validating everything.

        If several lines are bad, the error names the first of them.
        """
        n = len(lines)
        label_strs: list[str] = []
        feat_strs: list[str] = []
        match = _XC_LINE.fullmatch
        for i, line in enumerate(lines):
            line = line.rstrip("\r\n")
            m = match(line)
            if m is None:
                # Lines before this one may hold an earlier (semantic) error.
                self._parse_lines(lines[:i], first_lineno, feature_bound, label_bound)
                field, message = _diagnose_xc_line(line)
                raise self._error(message, first_lineno + i, field)
            labels_s, feats_s = m.group(1, 2)
            label_strs.append(labels_s or "")
            feat_strs.append(feats_s)

        # problems: (row, field, message); the one on the earliest row is raised.
        problems: list[tuple[int, str, str]] = []

        # --- Features ---
        feat_counts = np.fromiter((s.count(":") for s in feat_strs), np.int64, n)
        feat_row = np.repeat(np.arange(n), feat_counts)
        if feat_row.size:
            # The grammar guarantees "id value id value ..." after this replace.
            flat = np.fromstring(" ".join(feat_strs).replace(":", " "), sep=" ")
            if flat.size != 2 * feat_row.size:  # pragma: no cover - grammar guarantees it
                raise self._error("internal parse error", first_lineno, "features")
            written = flat[0::2].astype(np.int64)
            values64 = flat[1::2]
            feat_idx = written - self.index_base
            with np.errstate(over="ignore"):  # overflow is reported below, per line
                feat_val = values64.astype(np.float32)
        else:
            written = feat_idx = _EMPTY_IDX
            values64 = np.zeros(0)
            feat_val = _EMPTY_VAL
        base = self.index_base
        if base and feat_idx.size and feat_idx.min() < 0:
            k = int(np.argmax(feat_idx < 0))
            problems.append((int(feat_row[k]), "features",
                             f"feature id {written[k]} is below index_base {base}"))
        if feature_bound is not None and feat_idx.size and feat_idx.max() >= feature_bound:
            k = int(np.argmax(feat_idx >= feature_bound))
            problems.append((int(feat_row[k]), "features",
                             f"feature id {written[k]} is out of range "
                             f"[{base}, {feature_bound + base})"))
        bad_val = ~np.isfinite(feat_val)
        if bad_val.any():
            # Only float32 overflow gets here: nan/inf text fails the grammar.
            k = int(np.argmax(bad_val))
            problems.append((int(feat_row[k]), "features",
                             f"value {float(values64[k])!r} of feature {written[k]} is not finite "
                             "in float32"))
        feat_idx, feat_val = self._sort_within_rows(feat_idx, feat_val, feat_row, written,
                                                    "feature", problems)

        # --- Labels ---
        label_counts = np.fromiter((s.count(",") + 1 if s else 0 for s in label_strs),
                                   np.int64, n)
        label_row = np.repeat(np.arange(n), label_counts)
        if label_row.size:
            written_l = np.fromstring(",".join(s for s in label_strs if s), sep=",",
                                      dtype=np.int64)
            if written_l.size != label_row.size:  # pragma: no cover
                raise self._error("internal parse error", first_lineno, "labels")
            labels = written_l - self.label_index_base
        else:
            written_l = labels = _EMPTY_IDX
        lbase = self.label_index_base
        if lbase and labels.size and labels.min() < 0:
            k = int(np.argmax(labels < 0))
            problems.append((int(label_row[k]), "labels",
                             f"label id {written_l[k]} is below label_index_base {lbase}"))
        if label_bound is not None and labels.size and labels.max() >= label_bound:
            k = int(np.argmax(labels >= label_bound))
            problems.append((int(label_row[k]), "labels",
                             f"label id {written_l[k]} is out of range "
                             f"[{lbase}, {label_bound + lbase})"))
        labels, _ = self._sort_within_rows(labels, None, label_row, written_l, "label",
                                           problems)

        if problems:
            row, field, message = min(problems, key=lambda p: p[0])
            raise self._error(message, first_lineno + row, field)

        # --- Drop explicit zeros (rows hold nonzero features only) ---
        keep = feat_val != 0
        if not keep.all():
            feat_idx, feat_val = feat_idx[keep], feat_val[keep]
            feat_counts = np.bincount(feat_row[keep], minlength=n).astype(np.int64)
        return _XcChunk(feat_idx, feat_val, feat_counts, labels, label_counts)

    @staticmethod
    def _sort_within_rows(ids: np.ndarray, vals: np.ndarray | None, row_of: np.ndarray,
                          written: np.ndarray, what: str,
                          problems: list[tuple[int, str, str]]
                          ) -> tuple[np.ndarray, np.ndarray | None]:
        """Sorts ids within each row (with their values) and flags duplicates.

        Works on a whole chunk at once: ids are already sorted in almost every
        file, so the common case costs one vectorised comparison.
        """
        if ids.size < 2:
            return ids, vals
        same_row = row_of[1:] == row_of[:-1]
        step = np.diff(ids)
        if ((step <= 0) & same_row).any():
            # Stable sort by (row, id); rows stay in place, so row_of is unchanged.
            order = np.lexsort((ids, row_of))
            ids, written = ids[order], written[order]
            vals = vals[order] if vals is not None else None
            dup = (np.diff(ids) == 0) & same_row
            if dup.any():
                k = int(np.argmax(dup)) + 1
                field = "features" if what == "feature" else "labels"
                problems.append((int(row_of[k]), field, f"duplicate {what} id {written[k]}"))
        return ids, vals


# =====================================================================================
# Sparse matrices in scipy .npz files (PECOS)
# =====================================================================================


def _load_sparse_npz(path: str, role: str) -> scipy.sparse.csr_matrix:
    """Loads a scipy `save_npz` file as canonical CSR, never unpickling.

    `scipy.sparse.load_npz` passes ``allow_pickle=False`` in current scipy, but
    older releases did not; loading the members ourselves keeps the guarantee
    independent of the installed version and lets every failure become a
    DataError. Accepts the csr, csc and coo layouts.

    Args:
      path: the .npz file.
      role: "X" or "Y", used in messages only.

    Returns:
      A CSR matrix with sorted indices and no duplicate entries (duplicates are
      summed, scipy's semantics).
    """
    f = _open_binary(path)  # raises DataError for a missing file
    try:
        try:
            loaded = np.load(f, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"not a readable .npz file ({e})", path=path, field=role) from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError("not a scipy sparse-matrix .npz (it holds a single .npy array)",
                            path=path, field=role)
        with loaded:
            members = set(loaded.files)
            if "format" not in members:
                raise DataError("not a scipy sparse-matrix .npz (no 'format' member; members: "
                                f"{', '.join(sorted(members)) or 'none'})", path=path, field=role)

            def member(name: str) -> np.ndarray:
                if name not in members:
                    raise DataError(f"sparse .npz is missing the {name!r} member", path=path,
                                    field=role)
                try:
                    return loaded[name]
                except ValueError as e:  # e.g. an object array, which would need pickle
                    raise DataError(f"member {name!r} cannot be read without unpickling ({e})",
                                    path=path, field=role) from None

            fmt = member("format")
            fmt = fmt.item() if fmt.ndim == 0 else None
            if isinstance(fmt, bytes):  # files written by SciPy < 1.0
                fmt = fmt.decode("ascii", "replace")
            if fmt not in ("csr", "csc", "coo"):
                raise DataError(f"unsupported sparse format {fmt!r} (expected csr, csc or coo)",
                                path=path, field=role)
            shape = tuple(int(s) for s in member("shape").ravel())
            if len(shape) != 2:
                raise DataError(f"expected a 2-D matrix, got shape {shape}", path=path,
                                field=role)
            data = member("data")
            if data.dtype.kind not in "biuf":
                raise DataError(f"matrix values must be real numbers, got dtype {data.dtype}",
                                path=path, field=role)
            try:
                if fmt == "coo":
                    if "coords" in members:
                        row, col = member("coords")
                    else:
                        row, col = member("row"), member("col")
                    matrix = scipy.sparse.coo_matrix((data, (row, col)), shape=shape)
                else:
                    cls = scipy.sparse.csr_matrix if fmt == "csr" else scipy.sparse.csc_matrix
                    matrix = cls((data, member("indices"), member("indptr")), shape=shape)
                    matrix.check_format(full_check=True)
                matrix = matrix.tocsr()
            except (ValueError, TypeError, IndexError) as e:
                raise DataError(f"invalid {fmt} matrix: {e}", path=path, field=role) from None
    finally:
        f.close()
    matrix.sum_duplicates()  # also sorts the indices of every row
    bad = ~np.isfinite(matrix.data)
    if bad.any():
        k = int(np.argmax(bad))
        row = int(np.searchsorted(matrix.indptr, k, side="right")) - 1
        raise DataError(f"non-finite value {float(matrix.data[k])!r} at row {row}, column "
                        f"{matrix.indices[k]} (0-based)", path=path, field=role)
    return matrix


class PecosNpzReader(Reader):
    """Reads PECOS-style feature (X) and label (Y) sparse matrices.

    Both files are scipy ``save_npz`` archives (csr, csc or coo; converted to
    CSR). Row i of X holds the features of point i; the nonzero columns of row i
    of Y are its labels (the stored values, e.g. relevance scores, are ignored,
    and explicitly stored zeros are not labels). The matrices are loaded whole;
    rows are then yielded one by one.

    Args:
      x_path: the feature matrix, float [num_rows, num_features].
      y_path: the label matrix, [num_rows, num_labels].

    Yields:
      `Row(feat_idx int64 [nnz], feat_val float32 [nnz], labels int64 [pos], None)`.

    Raises:
      DataError: a file is missing or not a sparse-matrix .npz, holds non-finite
        values or values outside float32, or X and Y have different row counts.
    """

    def __init__(self, x_path: str | os.PathLike, y_path: str | os.PathLike):
        self.path = os.fspath(x_path)
        self.labels_path = os.fspath(y_path)
        x = _load_sparse_npz(self.path, "X")
        y = _load_sparse_npz(self.labels_path, "Y")
        if x.shape[0] != y.shape[0]:
            raise DataError(f"row counts differ: {os.path.basename(self.path)} has {x.shape[0]} "
                            f"rows but {self.labels_path} has {y.shape[0]}", path=self.path)
        with np.errstate(over="ignore"):  # overflow is reported just below
            values = x.data.astype(np.float32)
        overflow = ~np.isfinite(values)
        if overflow.any():
            k = int(np.argmax(overflow))
            row = int(np.searchsorted(x.indptr, k, side="right")) - 1
            raise DataError(f"value {float(x.data[k])!r} at row {row} overflows float32",
                            path=self.path, field="X")
        x.data = values
        x.eliminate_zeros()
        y.eliminate_zeros()
        self._x, self._y = x, y

    @property
    def num_features(self) -> int:
        return int(self._x.shape[1])

    @property
    def num_labels(self) -> int:
        return int(self._y.shape[1])

    @property
    def num_rows(self) -> int:
        return int(self._x.shape[0])

    def __iter__(self) -> Iterator[Row]:
        x, y = self._x, self._y
        xi, xv = x.indices.astype(np.int64), x.data
        yi = y.indices.astype(np.int64)
        xo, yo = x.indptr.tolist(), y.indptr.tolist()
        for i in range(x.shape[0]):
            yield Row(xi[xo[i]:xo[i + 1]], xv[xo[i]:xo[i + 1]], yi[yo[i]:yo[i + 1]], None)


# =====================================================================================
# JSON lines with text and label names
# =====================================================================================


class JsonlRecord(NamedTuple):
    """One validated line of a JSONL text file.

    Attributes:
      line: 1-based line number.
      id: the record's "id" (any JSON value) or None if absent.
      text: the "text" string.
      labels: the "labels" names, as written.
    """

    line: int
    id: Any
    text: str
    labels: list[str]


def iter_jsonl(path: str | os.PathLike) -> Iterator[JsonlRecord]:
    """Streams and validates the records of a JSONL text file (plain or gzip).

    Each line must be a JSON object with a string "text" and a list of strings
    "labels" (the "id" is optional and not checked). Useful to build a
    `LabelVocab` or fit a featurizer before reading rows::

        vocab = LabelVocab.build(r.labels for r in iter_jsonl("train.jsonl"))

    Raises:
      DataError: missing or empty file, invalid JSON, or a missing/ill-typed field.
    """
    path = os.fspath(path)
    with open_text(path) as f:
        lineno = 0
        while True:
            lines = _read_lines(f, path, 1024, lineno + 1)
            if not lines:
                break
            for line in lines:
                lineno += 1
                yield _parse_jsonl_line(line, path, lineno)
    if lineno == 0:
        raise DataError("file is empty", path=path)


def _parse_jsonl_line(line: str, path: str, lineno: int) -> JsonlRecord:
    if not line.strip():
        raise DataError("blank line (expected a JSON object)", path=path, line=lineno)
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} (column {e.colno})", path=path,
                        line=lineno) from None
    except RecursionError:
        raise DataError("invalid JSON: nested too deeply", path=path, line=lineno) from None
    if not isinstance(obj, dict):
        raise DataError(f"expected a JSON object, got {type(obj).__name__}", path=path,
                        line=lineno)
    if "text" not in obj:
        raise DataError("missing", path=path, line=lineno, field="text")
    text = obj["text"]
    if not isinstance(text, str):
        raise DataError(f"must be a string, got {type(text).__name__}", path=path, line=lineno,
                        field="text")
    if "labels" not in obj:
        raise DataError("missing", path=path, line=lineno, field="labels")
    labels = obj["labels"]
    if not isinstance(labels, list):
        raise DataError(f"must be a list of label names, got {type(labels).__name__}",
                        path=path, line=lineno, field="labels")
    for name in labels:
        if not isinstance(name, str):
            raise DataError(f"label names must be strings, got {name!r}", path=path,
                            line=lineno, field="labels")
        if not name or "\n" in name or "\r" in name:
            raise DataError(f"label name {name!r} is empty or contains a line break", path=path,
                            line=lineno, field="labels")
    return JsonlRecord(lineno, obj.get("id"), text, labels)


class JsonlReader(Reader):
    """Reads JSONL text records and maps their label names to ids.

    Each line is ``{"id": ..., "text": "...", "labels": ["name", ...]}``
    (plain or gzip). Label names go through `label_vocab`: a frozen vocabulary
    rejects (``unknown_labels="error"``) or drops (``"drop"``) unknown names;
    an open one grows with each new name, in order of first appearance.

    Args:
      path: the .jsonl (or .jsonl.gz) file.
      label_vocab: the `LabelVocab` that maps names to ids.
      featurizer: optional object with ``transform(text) -> (feat_idx int64,
        feat_val float32)`` and ``num_features`` (e.g.
        `tfxc.data.text_features.TfidfFeaturizer`); without one, rows have no
        features and ``num_features`` is 0.
      unknown_labels: "error" or "drop", for names not in a frozen vocabulary.

    Yields:
      `Row(feat_idx, feat_val, labels int64 [pos], text)`.

    Raises:
      DataError: missing/empty file, invalid JSON, a missing or ill-typed
        "text"/"labels", a repeated label in one record, or an unknown label
        with ``unknown_labels="error"``.
    """

    def __init__(self, path: str | os.PathLike, *, label_vocab: LabelVocab,
                 featurizer: Any = None, unknown_labels: str = "error"):
        self.path = os.fspath(path)
        if not isinstance(label_vocab, LabelVocab):
            raise ConfigError(f"label_vocab must be a LabelVocab, got {type(label_vocab).__name__}")
        if unknown_labels not in ("error", "drop"):
            raise ConfigError(f"unknown_labels must be 'error' or 'drop', got {unknown_labels!r}")
        self.label_vocab = label_vocab
        self.featurizer = featurizer
        self.unknown_labels = unknown_labels
        self._rows_read: int | None = None
        with open_text(self.path) as f:  # fail early on a missing or empty file
            if not _read_lines(f, self.path, 1, 1):
                raise DataError("file is empty", path=self.path)

    @property
    def num_features(self) -> int:
        return int(self.featurizer.num_features) if self.featurizer is not None else 0

    @property
    def num_labels(self) -> int:
        return len(self.label_vocab)

    @property
    def num_rows(self) -> int | None:
        return self._rows_read

    def __iter__(self) -> Iterator[Row]:
        vocab, drop = self.label_vocab, self.unknown_labels == "drop"
        featurizer = self.featurizer
        count = 0
        for rec in iter_jsonl(self.path):
            ids = []
            for name in rec.labels:
                idx = vocab.get(name)
                if idx is None:
                    if not vocab.frozen:
                        try:
                            idx = vocab.add(name)
                        except ValueError as e:
                            raise DataError(str(e), path=self.path, line=rec.line,
                                            field="labels") from None
                    elif drop:
                        continue
                    else:
                        raise DataError(f"unknown label {name!r} (not in the frozen "
                                        f"vocabulary of {len(vocab)} labels; pass "
                                        "unknown_labels='drop' to skip such labels)",
                                        path=self.path, line=rec.line, field="labels")
                ids.append(idx)
            labels = np.array(sorted(ids), np.int64) if ids else _EMPTY_IDX
            if labels.size > 1 and (np.diff(labels) == 0).any():
                k = int(np.argmax(np.diff(labels) == 0))
                raise DataError(f"duplicate label {vocab.name(int(labels[k]))!r}",
                                path=self.path, line=rec.line, field="labels")
            if featurizer is not None:
                feat_idx, feat_val = featurizer.transform(rec.text)
            else:
                feat_idx, feat_val = _EMPTY_IDX, _EMPTY_VAL
            count += 1
            yield Row(feat_idx, feat_val, labels, rec.text)
        self._rows_read = count


# =====================================================================================
# Dense features in .npy
# =====================================================================================


def _load_npy(path: str, role: str, mmap: bool) -> np.ndarray:
    """np.load for a single .npy array with allow_pickle=False and DataErrors."""
    f = _open_binary(path)
    f.close()
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"not a readable .npy array ({e})", path=path, field=role) from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        arr.close()
        raise DataError("expected a .npy array, got an .npz archive", path=path, field=role)
    return arr


class DenseReader(Reader):
    """Reads a dense feature matrix with labels from a second file.

    Features: a 2-D ``.npy`` array (bool, int or float), memory-mapped and read
    in chunks of rows, so files larger than memory stream. Only nonzero
    entries are kept; values become float32.

    Labels, chosen by the file name:

    * ``*.npz``: a PECOS-style sparse Y matrix (nonzero columns = labels);
    * ``*.npy``: a 1-D integer array, one label per row (multi-class);
    * anything else: a text file (optionally gzip) with one line per row of
      comma-separated label ids; an empty line means no labels.

    Args:
      x_path: the features, [num_rows, num_features].
      labels_path: the labels, as above.
      num_labels: if given, label ids must lie in [0, num_labels) (for
        ``.npz`` labels, the matrix width is used when this is None).

    Yields:
      `Row(feat_idx int64 [nnz], feat_val float32 [nnz], labels int64 [pos], None)`.

    Raises:
      DataError: a missing file, features that are not 2-D or hold non-finite
        values, a bad label line or array, or differing row counts.
    """

    _CHUNK_ROWS = 4096

    def __init__(self, x_path: str | os.PathLike, labels_path: str | os.PathLike, *,
                 num_labels: int | None = None):
        self.path = os.fspath(x_path)
        self.labels_path = os.fspath(labels_path)
        self._explicit_labels = _check_bound("num_labels", num_labels)
        x = _load_npy(self.path, "X", mmap=True)
        if x.ndim != 2:
            raise DataError(f"features must be a 2-D array, got shape {x.shape}", path=self.path,
                            field="X")
        if x.dtype.kind not in "biuf":
            raise DataError(f"features must be numeric, got dtype {x.dtype}", path=self.path,
                            field="X")
        self._x = x
        self._y_sparse: scipy.sparse.csr_matrix | None = None
        self._y_dense: np.ndarray | None = None
        self._seen_labels: int | None = None
        self._rows_read: int | None = None
        lower = self.labels_path.lower()
        if lower.endswith(".npz"):
            self._y_sparse = _load_sparse_npz(self.labels_path, "Y")
            self._y_sparse.eliminate_zeros()
            self._check_rows(self._y_sparse.shape[0])
            bound = self._explicit_labels
            if bound is not None and self._y_sparse.shape[1] > bound:
                cols = self._y_sparse.indices
                if cols.size and cols.max() >= bound:
                    raise DataError(f"label id {int(cols.max())} is out of range "
                                    f"[0, {self._explicit_labels})", path=self.labels_path,
                                    field="labels")
        elif lower.endswith(".npy"):
            y = _load_npy(self.labels_path, "labels", mmap=False)
            if y.ndim != 1 or y.dtype.kind not in "iu":
                raise DataError(f"a .npy label file must be a 1-D integer array, got shape "
                                f"{y.shape} and dtype {y.dtype}", path=self.labels_path,
                                field="labels")
            self._check_rows(y.shape[0])
            y = y.astype(np.int64)
            if y.size and y.min() < 0:
                k = int(np.argmax(y < 0))
                raise DataError(f"negative label id {y[k]} at row {k}", path=self.labels_path,
                                field="labels")
            bound = self._explicit_labels
            if bound is not None and y.size and y.max() >= bound:
                k = int(np.argmax(y >= bound))
                raise DataError(f"label id {y[k]} at row {k} is out of range [0, {bound})",
                                path=self.labels_path, field="labels")
            self._y_dense = y
            self._seen_labels = int(y.max()) + 1 if y.size else 0
        else:
            with open_text(self.labels_path):  # fail early on a missing file
                pass

    def _check_rows(self, label_rows: int) -> None:
        if label_rows != self._x.shape[0]:
            raise DataError(f"row counts differ: {os.path.basename(self.path)} has "
                            f"{self._x.shape[0]} rows but {self.labels_path} has {label_rows}",
                            path=self.path)

    @property
    def num_features(self) -> int:
        return int(self._x.shape[1])

    @property
    def num_labels(self) -> int | None:
        if self._explicit_labels is not None:
            return self._explicit_labels
        if self._y_sparse is not None:
            return int(self._y_sparse.shape[1])
        return self._seen_labels

    @property
    def num_rows(self) -> int:
        return int(self._x.shape[0])

    def __iter__(self) -> Iterator[Row]:
        labels = self._iter_labels()
        for start in range(0, self._x.shape[0], self._CHUNK_ROWS):
            chunk = self._dense_chunk(start)
            rows, cols = np.nonzero(chunk)
            vals = chunk[rows, cols]
            offsets = _row_offsets(np.bincount(rows, minlength=chunk.shape[0]))
            cols = cols.astype(np.int64)
            for i in range(chunk.shape[0]):
                a, b = offsets[i], offsets[i + 1]
                yield Row(cols[a:b], vals[a:b], next(labels), None)
        # Let the label stream check that nothing is left over.
        for _ in labels:
            pass
        self._rows_read = int(self._x.shape[0])

    def _dense_chunk(self, start: int) -> np.ndarray:
        """Rows [start, start + _CHUNK_ROWS) as float32, checked for finiteness."""
        raw = np.asarray(self._x[start:start + self._CHUNK_ROWS])
        if raw.dtype.kind == "f":
            bad = ~np.isfinite(raw)
            if bad.any():
                r, c = (int(v[0]) for v in np.nonzero(bad))
                raise DataError(f"non-finite value {float(raw[r, c])!r} at row {start + r}, "
                                f"column {c} (0-based)", path=self.path, field="X")
        with np.errstate(over="ignore"):  # overflow is reported just below
            chunk = raw.astype(np.float32)
        bad = ~np.isfinite(chunk)
        if bad.any():
            r, c = (int(v[0]) for v in np.nonzero(bad))
            raise DataError(f"value {float(raw[r, c])!r} at row {start + r}, column {c} overflows "
                            "float32", path=self.path, field="X")
        return chunk

    def _iter_labels(self) -> Iterator[np.ndarray]:
        """Label ids (int64, sorted) of each row, then checks the row count."""
        if self._y_sparse is not None:
            y = self._y_sparse
            yi, yo = y.indices.astype(np.int64), y.indptr.tolist()
            for i in range(y.shape[0]):
                yield yi[yo[i]:yo[i + 1]]
            return
        if self._y_dense is not None:
            for v in self._y_dense.reshape(-1, 1):
                yield v
            return
        yield from self._iter_text_labels()

    def _iter_text_labels(self) -> Iterator[np.ndarray]:
        path, bound, n = self.labels_path, self._explicit_labels, int(self._x.shape[0])
        max_label = -1
        with open_text(path) as f:
            lineno = 0
            while True:
                lines = _read_lines(f, path, 4096, lineno + 1)
                if not lines:
                    break
                for k, line in enumerate(lines):
                    lineno += 1
                    if lineno > n:
                        # Count this chunk's rest and the rest of the file for the message.
                        after = len(lines) - k - 1
                        total = (lineno + after
                                 + _count_remaining_lines(f, path, lineno + after + 1))
                        raise DataError(f"row counts differ: {os.path.basename(self.path)} has "
                                        f"{n} rows but {path} has {total} lines", path=self.path)
                    labels = self._parse_label_line(line, lineno, bound)
                    if labels.size:
                        max_label = max(max_label, int(labels[-1]))
                        self._seen_labels = max_label + 1
                    yield labels
        if lineno != n:
            raise DataError(f"row counts differ: {os.path.basename(self.path)} has {n} rows but "
                            f"{path} has {lineno} lines", path=self.path)
        if self._seen_labels is None:
            self._seen_labels = 0

    def _parse_label_line(self, line: str, lineno: int, bound: int | None) -> np.ndarray:
        text = line.strip()
        if not text:
            return _EMPTY_IDX
        ids = []
        for tok in text.split(","):
            tok = tok.strip()
            problem = _diagnose_id(tok, "label", "")
            if problem:
                raise DataError(f"bad label line {_shorten(text)!r}: {problem}",
                                path=self.labels_path, line=lineno, field="labels")
            value = int(tok)
            if bound is not None and value >= bound:
                raise DataError(f"label id {value} is out of range [0, {bound})",
                                path=self.labels_path, line=lineno, field="labels")
            ids.append(value)
        labels = np.array(sorted(ids), np.int64)
        if labels.size > 1 and (np.diff(labels) == 0).any():
            k = int(np.argmax(np.diff(labels) == 0))
            raise DataError(f"duplicate label id {labels[k]}", path=self.labels_path, line=lineno,
                            field="labels")
        return labels


# =====================================================================================
# Factory
# =====================================================================================

_FORMATS: dict[str, type[Reader]] = {
    "xc": XcBowReader,
    "pecos": PecosNpzReader,
    "jsonl": JsonlReader,
    "dense": DenseReader,
}
_NEEDS_LABELS_PATH = {"pecos", "dense"}


def open_reader(fmt: str, path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
                **options: Any) -> Reader:
    """Creates the reader for a format name.

    Args:
      fmt: "xc" (`XcBowReader`), "pecos" (`PecosNpzReader`), "jsonl"
        (`JsonlReader`) or "dense" (`DenseReader`).
      path: the main file (features, or the whole data for xc/jsonl).
      labels_path: the label file; required for "pecos" and "dense", refused
        for the others.
      **options: keyword arguments of that reader, e.g. ``index_base=1`` for
        "xc" or ``label_vocab=...`` for "jsonl".

    Returns:
      The `Reader`.

    Raises:
      ConfigError: unknown format (with the closest known name), a missing or
        unexpected `labels_path`, or an option the reader does not take.
      DataError: from the reader's constructor.
    """
    cls = _FORMATS.get(fmt)
    if cls is None:
        known = sorted(_FORMATS)
        close = difflib.get_close_matches(str(fmt), known, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown data format {fmt!r}{hint} (known: {', '.join(known)})")
    if fmt in _NEEDS_LABELS_PATH and labels_path is None:
        raise ConfigError(f"format {fmt!r} needs labels_path (the label file)")
    if fmt not in _NEEDS_LABELS_PATH and labels_path is not None:
        raise ConfigError(f"format {fmt!r} keeps labels in the data file; labels_path must be "
                          "None")
    params = inspect.signature(cls.__init__).parameters
    allowed = sorted(name for name, p in params.items() if p.kind is p.KEYWORD_ONLY)
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"format {fmt!r} has no option {key!r}{hint} (options: "
                              f"{', '.join(allowed) or 'none'})")
    missing = [name for name in allowed
               if params[name].default is inspect.Parameter.empty and name not in options]
    if missing:
        raise ConfigError(f"format {fmt!r} needs option(s) {', '.join(missing)}")
    if fmt in _NEEDS_LABELS_PATH:
        return cls(path, labels_path, **options)  # type: ignore[call-arg]
    return cls(path, **options)  # type: ignore[call-arg]

