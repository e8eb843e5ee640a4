"""Per-row selections over CSR matrices: compiled kernel, NumPy fallback.

`row_top_k(m, size)` keeps each row's `size` largest positive entries of a SciPy
CSR matrix, by decreasing value with ties to the lower column: the supports of
the label tree's nodes, the sparse term's centroids and the shortlist's index are
the tops of PIFA rows ([L, D], up to hundreds of millions of nonzeros).

`HAVE_COMPILED_ROWS` says whether the OpenMP kernel `tfxc.kernels._rows` was
built (`pip install -e .`): one pass over the nonzeros, in place. The NumPy
version sorts every positive entry by (row, value, column), a few times the
matrix's size in memory and minutes at 10^8 nonzeros; it is the reference the
tests compare against.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

try:
    from tfxc.kernels import _rows
except ImportError:  # pragma: no cover - only without a built extension
    _rows = None

HAVE_COMPILED_ROWS = _rows is not None


def row_top_k(m, size: int, compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `size` largest positive entries.

    Args:
      m: a SciPy sparse matrix [R, D] (anything `csr_matrix` accepts).
      size: S, entries kept per row.
      compiled: force the compiled kernel (True) or the NumPy version (False); default: the kernel when built.

    Returns:
      (ids int32 [R, S], −1 padded; values float32 [R, S], 0 at the padding), by decreasing value, ties by
      increasing column id.
    """
    m = scipy.sparse.csr_matrix(m)
    if compiled is None:
        compiled = HAVE_COMPILED_ROWS
    if compiled and _rows is None:
        raise RuntimeError("tfxc.kernels._rows is not built (pip install -e .)")
    ids = np.full((m.shape[0], size), -1, np.int32)
    values = np.zeros((m.shape[0], size), np.float32)
    if size <= 0 or m.nnz == 0:
        return ids, values
    if compiled:
        _rows.row_top_k(np.ascontiguousarray(m.indptr, np.int64), np.ascontiguousarray(m.indices, np.int32),
                        np.ascontiguousarray(m.data, np.float32), size, ids, values)
        return ids, values
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    data = m.data.astype(np.float32)
    keep = data > 0
    rows, cols, data = rows[keep], m.indices[keep], data[keep]
    order = np.lexsort((cols, -data, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, np.arange(m.shape[0]))[rows]
    picked = rank < size
    ids[rows[picked], rank[picked]] = cols[picked]
    values[rows[picked], rank[picked]] = data[picked]
    return ids, values
