"""Rows <-> SciPy CSR matrices, the in-memory format of PECOS, napkinXC, omikuji and scikit-learn."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse

from tfxc.data.rows import Row
from tfxc.errors import DataError


def rows_to_csr(rows: Iterable[Row], num_features: int, num_labels: int) -> tuple[scipy.sparse.csr_matrix,
                                                                                   scipy.sparse.csr_matrix]:
    """(X float32 [n, num_features], Y float32 [n, num_labels] of ones) from `Row`s."""
    rows = list(rows)

    def matrix(attr: str, values, width: int) -> scipy.sparse.csr_matrix:
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([getattr(r, attr).size for r in rows], out=indptr[1:])
        indices = np.concatenate([getattr(r, attr) for r in rows]) if rows else np.zeros(0, np.int64)
        return scipy.sparse.csr_matrix((values(indices), indices.astype(np.int32), indptr), shape=(len(rows), width))

    x = matrix("feat_idx", lambda idx: np.concatenate([r.feat_val for r in rows]).astype(np.float32)
               if rows else np.zeros(0, np.float32), num_features)
    y = matrix("labels", lambda idx: np.ones(idx.size, np.float32), num_labels)
    return x, y


def as_csr(x, name: str = "X") -> scipy.sparse.csr_matrix:
    """A SciPy sparse matrix or a dense 2-D array as canonical float32 CSR (sorted, summed duplicates, no zeros).

    Raises:
      DataError: a value is NaN or infinite once in float32 (a float64 beyond ±3.4e38 included), naming
        the first such row and column: the models would rank garbage from it without an error.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow to inf is what the check below reports
        if scipy.sparse.issparse(x):
            matrix = scipy.sparse.csr_matrix(x, dtype=np.float32)
        else:
            array = np.asarray(x)
            if array.ndim != 2 or array.dtype.kind not in "biuf":
                raise ValueError(f"{name} must be a SciPy sparse matrix or a 2-D numeric array, got "
                                 f"{type(x).__name__} of shape {getattr(array, 'shape', None)}")
            matrix = scipy.sparse.csr_matrix(array.astype(np.float32))
        matrix.sum_duplicates()
    matrix.eliminate_zeros()
    _require_finite(matrix, name)
    return matrix


def _require_finite(matrix: scipy.sparse.csr_matrix, name: str) -> None:
    bad = np.flatnonzero(~np.isfinite(matrix.data))
    if bad.size:
        at = int(bad[0])
        row = int(np.searchsorted(matrix.indptr, at, side="right")) - 1
        original = "NaN" if np.isnan(matrix.data[at]) else "infinite (or beyond float32's ±3.4e38)"
        raise DataError(f"{name}: row {row}, column {int(matrix.indices[at])}: the value is {original}; "
                        f"{bad.size} value(s) in all are not finite numbers")
