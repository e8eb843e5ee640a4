"""Dense feature matrices in `.npy` with labels in `.npz`, `.npy` or text."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import scipy.sparse

from tfxc.data.files import numbered_lines, open_binary, open_text
from tfxc.data.readers.base import EMPTY_IDX, IdSpace, Reader, diagnose_id, row_offsets, shorten
from tfxc.data.readers.pecos import load_sparse_npz
from tfxc.data.rows import Row
from tfxc.errors import DataError


def load_npy(path: str, role: str, mmap: bool) -> np.ndarray:
    """np.load for a single .npy array with allow_pickle=False and DataErrors."""
    f = open_binary(path)
    f.close()
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as e:  # a damaged header fails in numpy's literal parser with any exception type
        raise DataError(f"not a readable .npy array ({type(e).__name__}: {e})", path=path, field=role) from None
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
        self.label_space = IdSpace("label", num_labels)
        x = load_npy(self.path, "X", mmap=True)
        if x.ndim != 2:
            raise DataError(f"features must be a 2-D array, got shape {x.shape}", path=self.path,
                            field="X")
        if x.dtype.kind not in "biuf":
            raise DataError(f"features must be numeric, got dtype {x.dtype}", path=self.path,
                            field="X")
        self._x = x
        self.feature_space = IdSpace("feature", declared=x.shape[1])
        self._y_sparse: scipy.sparse.csr_matrix | None = None
        self._y_dense: np.ndarray | None = None
        self._rows_read: int | None = None
        lower = self.labels_path.lower()
        if lower.endswith(".npz"):
            self._y_sparse = load_sparse_npz(self.labels_path, "Y")
            self._y_sparse.eliminate_zeros()
            self._check_rows(self._y_sparse.shape[0])
            self.label_space.declared = self._y_sparse.shape[1]  # an explicit num_labels still bounds
            cols = self._y_sparse.indices
            if self.label_space.first_beyond(cols) is not None:
                raise DataError(self.label_space.out_of_range(int(cols.max())), path=self.labels_path,
                                field="labels")
        elif lower.endswith(".npy"):
            y = load_npy(self.labels_path, "labels", mmap=False)
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
            k = self.label_space.first_beyond(y)
            if k is not None:
                raise DataError(self.label_space.out_of_range(y[k], where=f" at row {k}"),
                                path=self.labels_path, field="labels")
            self._y_dense = y
            self.label_space.see(y)
            self.label_space.pass_done()
        else:
            with open_text(self.labels_path):  # fail early on a missing file
                pass

    def _check_rows(self, label_rows: int) -> None:
        if label_rows != self._x.shape[0]:
            raise DataError(f"row counts differ: {os.path.basename(self.path)} has "
                            f"{self._x.shape[0]} rows but {self.labels_path} has {label_rows}",
                            path=self.path)

    @property
    def num_rows(self) -> int:
        return int(self._x.shape[0])

    def __iter__(self) -> Iterator[Row]:
        labels = self._iter_labels()
        for start in range(0, self._x.shape[0], self._CHUNK_ROWS):
            chunk = self._dense_chunk(start)
            rows, cols = np.nonzero(chunk)
            vals = chunk[rows, cols]
            offsets = row_offsets(np.bincount(rows, minlength=chunk.shape[0]))
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
        path, n = self.labels_path, int(self._x.shape[0])
        lineno = 0
        with open_text(path) as f:
            lines = numbered_lines(f, path)
            for lineno, line in lines:
                if lineno > n:
                    total = lineno + sum(1 for _ in lines)  # the rest of the file, for the message
                    raise DataError(f"row counts differ: {os.path.basename(self.path)} has "
                                    f"{n} rows but {path} has {total} lines", path=self.path)
                labels = self._parse_label_line(line, lineno)
                self.label_space.see(labels)
                yield labels
        if lineno != n:
            raise DataError(f"row counts differ: {os.path.basename(self.path)} has {n} rows but "
                            f"{path} has {lineno} lines", path=self.path)
        self.label_space.pass_done()

    def _parse_label_line(self, line: str, lineno: int) -> np.ndarray:
        text = line.strip()
        if not text:
            return EMPTY_IDX
        ids = []
        for tok in text.split(","):
            tok = tok.strip()
            problem = diagnose_id(tok, "label", "")
            if problem:
                raise DataError(f"bad label line {shorten(text)!r}: {problem}",
                                path=self.labels_path, line=lineno, field="labels")
            value = int(tok)
            bound = self.label_space.bound  # explicit only: a text file states no label count
            if bound is not None and value >= bound:
                raise DataError(self.label_space.out_of_range(value), path=self.labels_path, line=lineno,
                                field="labels")
            ids.append(value)
        labels = np.array(sorted(ids), np.int64)
        if labels.size > 1 and (np.diff(labels) == 0).any():
            k = int(np.argmax(np.diff(labels) == 0))
            raise DataError(f"duplicate label id {labels[k]}", path=self.labels_path, line=lineno,
                            field="labels")
        return labels

