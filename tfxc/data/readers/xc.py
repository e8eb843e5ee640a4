"""Extreme Classification Repository bag-of-words text (plain or gzip, with or without a header)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from tfxc.data.files import count_remaining_lines, open_text, read_lines
from tfxc.data.readers.base import EMPTY_IDX, EMPTY_VAL, IdSpace, Reader, diagnose_id, row_offsets, shorten
from tfxc.data.rows import Row
from tfxc.errors import ConfigError, DataError

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
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)
_HEADER_FIELD = re.compile(r"\d+", re.ASCII)

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
        shown = shorten(label_field)
        if ":" in label_field:
            return "labels", (f"malformed label field {shown!r} (a line without labels "
                              "must start with a space)")
        context = f" in {shown!r}"  # built once: label fields can be very long
        for tok in label_field.split(","):
            problem = diagnose_id(tok, "label", context)
            if problem:
                return "labels", problem
    for tok in rest.split():
        id_s, colon, val_s = tok.partition(":")
        tok = shorten(tok)
        if not colon or ":" in val_s:
            return "features", f"malformed feature token {tok!r} (expected id:value)"
        problem = diagnose_id(id_s, "feature", f" in token {tok!r}")
        if problem:
            return "features", problem
        if not _NUMBER_RE.fullmatch(val_s):
            try:
                finite = math.isfinite(float(val_s))
            except ValueError:
                finite = True
            if not finite:
                return "features", f"non-finite value {shorten(val_s)!r} in token {tok!r}"
            return "features", f"malformed value {shorten(val_s)!r} in token {tok!r}"
    # Reached only for odd whitespace (e.g. a vertical tab) between tokens.
    return "features", f"malformed line {shorten(line)!r}"


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
        features = IdSpace("feature", num_features)  # validates the arguments before reading the file
        labels = IdSpace("label", num_labels)
        self.header: tuple[int, int, int] | None = self._read_header()
        if self.header is not None:
            features.declared, labels.declared = self.header[1], self.header[2]
        self.feature_space, self.label_space = features, labels
        self._rows_read: int | None = None

    # --- Properties ---

    @property
    def num_rows(self) -> int | None:
        if self._rows_read is not None:
            return self._rows_read
        return self.header[0] if self.header is not None else None

    # --- Parsing ---

    def _read_header(self) -> tuple[int, int, int] | None:
        with open_text(self.path) as f:
            first = read_lines(f, self.path, 1, 1)
        if not first:
            raise DataError("file is empty", path=self.path)
        line = first[0].rstrip("\r\n")
        fields = line.split()
        if len(fields) < 2 or ":" in line:
            return None  # a data line: no header
        if len(fields) != 3:
            raise DataError(f"expected 3 fields 'num_points num_features num_labels', got "
                            f"{len(fields)}: {shorten(line)!r}", path=self.path, line=1,
                            field="header")
        if not all(_HEADER_FIELD.fullmatch(x) for x in fields):
            raise DataError(f"fields must be non-negative integers, got {shorten(line)!r}",
                            path=self.path, line=1, field="header")
        n, d, l = (int(x) for x in fields)
        return n, d, l

    def __iter__(self) -> Iterator[Row]:
        path, header = self.path, self.header
        rows_done = 0
        lineno = 1  # the number of the next line to read
        with open_text(path) as f:
            if header is not None:
                read_lines(f, path, 1, 1)
                lineno = 2
            while True:
                lines = read_lines(f, path, self._CHUNK_LINES, lineno)
                if not lines:
                    break
                excess = 0
                if header is not None and rows_done + len(lines) > header[0]:
                    # More rows than declared: parse the allowed ones first so that an
                    # earlier malformed line is reported before the count mismatch.
                    excess = rows_done + len(lines) - header[0]
                    lines = lines[:len(lines) - excess]
                chunk = self._parse_lines(lines, lineno)
                self.feature_space.see(chunk.feat_idx)
                self.label_space.see(chunk.labels)
                if excess:
                    total = (rows_done + len(lines) + excess
                             + count_remaining_lines(f, path, lineno + len(lines) + excess))
                    raise DataError(f"header says {header[0]} rows but the file has {total}",
                                    path=path, line=1, field="header")
                fo = row_offsets(chunk.feat_counts)
                lo = row_offsets(chunk.label_counts)
                fi, fv, lb = chunk.feat_idx, chunk.feat_val, chunk.labels
                for i in range(len(lines)):
                    yield Row(fi[fo[i]:fo[i + 1]], fv[fo[i]:fo[i + 1]], lb[lo[i]:lo[i + 1]], None)
                rows_done += len(lines)
                lineno += len(lines)
        if header is not None and rows_done != header[0]:
            raise DataError(f"header says {header[0]} rows but the file has {rows_done}",
                            path=path, line=1, field="header")
        self.feature_space.pass_done()
        self.label_space.pass_done()
        self._rows_read = rows_done

    def _error(self, message: str, lineno: int, field: str) -> DataError:
        return DataError(message, path=self.path, line=lineno, field=field)

    def _parse_lines(self, lines: list[str], first_lineno: int) -> _XcChunk:
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
                self._parse_lines(lines[:i], first_lineno)
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
            written = feat_idx = EMPTY_IDX
            values64 = np.zeros(0)
            feat_val = EMPTY_VAL
        base = self.index_base
        if base and feat_idx.size and feat_idx.min() < 0:
            k = int(np.argmax(feat_idx < 0))
            problems.append((int(feat_row[k]), "features",
                             f"feature id {written[k]} is below index_base {base}"))
        k = self.feature_space.first_beyond(feat_idx)
        if k is not None:
            problems.append((int(feat_row[k]), "features", self.feature_space.out_of_range(written[k], base=base)))
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
            written_l = labels = EMPTY_IDX
        lbase = self.label_index_base
        if lbase and labels.size and labels.min() < 0:
            k = int(np.argmax(labels < 0))
            problems.append((int(label_row[k]), "labels",
                             f"label id {written_l[k]} is below label_index_base {lbase}"))
        k = self.label_space.first_beyond(labels)
        if k is not None:
            problems.append((int(label_row[k]), "labels", self.label_space.out_of_range(written_l[k], base=lbase)))
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

