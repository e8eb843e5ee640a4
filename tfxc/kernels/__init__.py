"""Native kernels with pure-NumPy fallbacks of the same signature.

`hits_matrix(pred_ids, indptr, indices) -> uint8 [N, k]` marks which top-k
predictions are true labels, given the labels as CSR (`indptr` int64 [N+1],
`indices` int64 [nnz], each row sorted ascending). The Cython version is used
when the extension is importable (`pip install -e .` builds it, and the
install fails without a C compiler); the fallback is the reference the tests
compare against, and what runs from a source tree that was never built.
"""

from __future__ import annotations

import numpy as np


def hits_matrix_numpy(pred_ids: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Reference implementation of `hits_matrix` (vectorised, no Python loop over rows)."""
    pred_ids = np.asarray(pred_ids, dtype=np.int64)
    n_rows, k = pred_ids.shape
    indptr = np.asarray(indptr, dtype=np.int64)
    indices = np.asarray(indices, dtype=np.int64)
    if indptr.shape[0] != n_rows + 1:
        raise ValueError(f"indptr has {indptr.shape[0]} entries, expected {n_rows + 1}")
    if indices.size == 0 or k == 0:
        return np.zeros((n_rows, k), dtype=np.uint8)
    # Encode (row, label) pairs as one sortable key; rows are sorted, so keys are too.
    width = int(max(indices.max(), pred_ids.max(), 0)) + 1
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr))
    true_keys = row_of * width + indices
    pred_keys = np.arange(n_rows, dtype=np.int64)[:, None] * width + pred_ids
    pos = np.searchsorted(true_keys, pred_keys)
    pos = np.minimum(pos, true_keys.size - 1)
    hit = (true_keys[pos] == pred_keys) & (pred_ids >= 0)
    return hit.astype(np.uint8)


def _compiled_hits_matrix(pred_ids, indptr, indices):
    return _hits.hits_matrix(np.ascontiguousarray(pred_ids, dtype=np.int64),
                             np.ascontiguousarray(indptr, dtype=np.int64),
                             np.ascontiguousarray(indices, dtype=np.int64))


try:
    from tfxc.kernels import _hits
except ImportError:  # pragma: no cover - only without a built extension
    _hits = None

HAVE_COMPILED_KERNELS = _hits is not None
hits_matrix = _compiled_hits_matrix if HAVE_COMPILED_KERNELS else hits_matrix_numpy
