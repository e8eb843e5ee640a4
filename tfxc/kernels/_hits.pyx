# cython: language_level=3
"""Compiled kernels for top-k evaluation (see tfxc/kernels/__init__.py for the API)."""

import numpy as np

from cython.parallel cimport prange


def hits_matrix(const long long[:, ::1] pred_ids,
                const long long[::1] indptr,
                const long long[::1] indices):
    """out[n, j] = 1 if pred_ids[n, j] is in row n of the CSR label matrix, else 0.

    Rows of `indices` must be sorted ascending (binary search); ids < 0 never hit.
    """
    cdef Py_ssize_t n_rows = pred_ids.shape[0], k = pred_ids.shape[1]
    if indptr.shape[0] != n_rows + 1:
        raise ValueError(f"indptr has {indptr.shape[0]} entries, expected {n_rows + 1}")
    out = np.zeros((n_rows, k), dtype=np.uint8)
    cdef unsigned char[:, ::1] out_v = out
    cdef Py_ssize_t n, j
    cdef long long lo, hi, mid, target
    for n in prange(n_rows, nogil=True, schedule="static"):
        for j in range(k):
            target = pred_ids[n, j]
            if target < 0:
                continue
            lo = indptr[n]
            hi = indptr[n + 1]
            while lo < hi:
                mid = (lo + hi) >> 1
                if indices[mid] < target:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < indptr[n + 1] and indices[lo] == target:
                out_v[n, j] = 1
    return out
