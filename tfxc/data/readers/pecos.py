"""PECOS-style sparse feature (X) and label (Y) matrices in scipy `.npz` files."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import scipy.sparse

from tfxc.data.files import open_binary, text_lines
from tfxc.data.readers.base import IdSpace, Reader
from tfxc.data.rows import Row
from tfxc.errors import DataError


# Parsing an untrusted archive (zip, zlib, the .npy header's Python-literal syntax) or building a matrix
# from damaged arrays can fail with almost any exception type; the blocks catching this wrap only that.
_CORRUPT = Exception


def load_sparse_npz(path: str, role: str) -> scipy.sparse.csr_matrix:
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
    f = open_binary(path)  # raises DataError for a missing file
    try:
        try:
            loaded = np.load(f, allow_pickle=False)
        except _CORRUPT as e:
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
                except ValueError as e:
                    if "pickle" in str(e):  # an object array
                        raise DataError(f"member {name!r} cannot be read without unpickling ({e})",
                                        path=path, field=role) from None
                    raise DataError(f"member {name!r} is corrupt ({e})", path=path, field=role) from None
                except _CORRUPT as e:
                    raise DataError(f"member {name!r} is corrupt ({type(e).__name__}: {e})", path=path,
                                    field=role) from None

            fmt = member("format")
            fmt = fmt.item() if fmt.ndim == 0 else None
            if isinstance(fmt, bytes):  # files written by SciPy < 1.0
                fmt = fmt.decode("ascii", "replace")
            if fmt not in ("csr", "csc", "coo"):
                raise DataError(f"unsupported sparse format {fmt!r} (expected csr, csc or coo)",
                                path=path, field=role)
            raw_shape = member("shape")
            try:
                shape = tuple(int(s) for s in raw_shape.ravel())
            except (ValueError, TypeError, OverflowError) as e:
                raise DataError(f"the shape member is not a pair of integers ({e})", path=path,
                                field=role) from None
            if len(shape) != 2 or min(shape) < 0:
                raise DataError(f"expected a 2-D matrix, got shape {shape}", path=path,
                                field=role)
            data = member("data")
            if data.dtype.kind not in "biuf":
                raise DataError(f"matrix values must be real numbers, got dtype {data.dtype}",
                                path=path, field=role)
            if fmt == "coo":
                index = (member("coords"),) if "coords" in members else (member("row"), member("col"))
            else:
                index = (member("indices"), member("indptr"))
            try:
                if fmt == "coo":
                    row, col = index if len(index) == 2 else index[0]
                    matrix = scipy.sparse.coo_matrix((data, (row, col)), shape=shape)
                else:
                    cls = scipy.sparse.csr_matrix if fmt == "csr" else scipy.sparse.csc_matrix
                    matrix = cls((data, *index), shape=shape)
                    matrix.check_format(full_check=True)
                matrix = matrix.tocsr()
            except _CORRUPT as e:
                raise DataError(f"invalid {fmt} matrix: {type(e).__name__}: {e}", path=path,
                                field=role) from None
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
      y_path: the label matrix, [num_rows, num_labels]; None for features
        without labels (e.g. inputs to predict): rows then have no labels.
      text_path: PECOS's raw text beside the matrices (X.*.txt of the xmc-base layout: line i is
        row i's text), or None; the rows then carry it (`Row.text`), as XR-Transformer reads it.

    Yields:
      `Row(feat_idx int64 [nnz], feat_val float32 [nnz], labels int64 [pos], text or None)`.

    Raises:
      DataError: a file is missing or not a sparse-matrix .npz, holds non-finite
        values or values outside float32, X and Y have different row counts, or the
        text has another number of lines (naming both files).
    """

    def __init__(self, x_path: str | os.PathLike, y_path: str | os.PathLike | None, *,
                 text_path: str | os.PathLike | None = None):
        self.path = os.fspath(x_path)
        self.labels_path = None if y_path is None else os.fspath(y_path)
        self.text_path = None if text_path is None else os.fspath(text_path)
        x = load_sparse_npz(self.path, "X")
        y = (scipy.sparse.csr_matrix((x.shape[0], 0), dtype=np.float32) if self.labels_path is None
             else load_sparse_npz(self.labels_path, "Y"))
        if x.shape[0] != y.shape[0]:
            raise DataError(f"row counts differ: {os.path.basename(self.path)} has {x.shape[0]} "
                            f"rows but {self.labels_path} has {y.shape[0]}", path=self.path)
        if self.text_path is not None:
            lines = sum(1 for _ in text_lines(self.text_path))  # checks every line's encoding too
            if lines != x.shape[0]:
                raise DataError(f"has {lines} texts (lines) but {self.path} has {x.shape[0]} feature rows: row i "
                                "of the matrices must be line i of the text", path=self.text_path)
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
        self.feature_space = IdSpace("feature", declared=x.shape[1])
        self.label_space = IdSpace("label", declared=None if self.labels_path is None else y.shape[1])
        if self.labels_path is None:
            self.label_space.pass_done()  # no label file: a label space of size 0, which states nothing

    @property
    def num_rows(self) -> int:
        return int(self._x.shape[0])

    def __iter__(self) -> Iterator[Row]:
        x, y = self._x, self._y
        xi, xv = x.indices.astype(np.int64), x.data
        yi = y.indices.astype(np.int64)
        xo, yo = x.indptr.tolist(), y.indptr.tolist()
        texts = text_lines(self.text_path) if self.text_path is not None else None
        for i in range(x.shape[0]):
            yield Row(xi[xo[i]:xo[i + 1]], xv[xo[i]:xo[i + 1]], yi[yo[i]:yo[i + 1]],
                      None if texts is None else next(texts))

