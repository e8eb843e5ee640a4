# cython: language_level=3
"""Compiled per-row selections over CSR matrices (API: tfxc/kernels/rows.py).

The label tree's supports, the sparse term's centroids and the shortlist all keep
the few largest entries of each row of a PIFA matrix [L, D], whose nonzeros run to
the hundreds of millions at Amazon-670K's shape. A sort of every nonzero by
(row, value, column) costs a multi-key sort of that many entries and several arrays
of its size; one pass per row that keeps the best `size` seen in a small sorted
buffer costs the nonzeros once, in place. OpenMP-parallel over rows: each row is
written by one thread, so the result does not depend on the thread count.
"""

import numpy as np

from cython.parallel cimport prange


cdef inline bint _before(float value, int col, float other_value, int other_col) noexcept nogil:
    """Whether (value, col) ranks before (other_value, other_col): larger value first, then lower column."""
    return value > other_value or (value == other_value and col < other_col)


def row_top_k(const long long[::1] indptr, const int[::1] indices, const float[::1] data, int size,
              int[:, ::1] out_ids, float[:, ::1] out_values) -> None:
    """Fills out_ids/out_values [rows, size] (pre-filled with -1 / 0) with each row's `size` largest positive
    entries, by decreasing value, ties by increasing column."""
    cdef Py_ssize_t rows = indptr.shape[0] - 1
    cdef Py_ssize_t r, e, pos
    cdef int filled, col
    cdef float value
    for r in prange(rows, nogil=True, schedule="dynamic", chunksize=256):
        filled = 0
        for e in range(indptr[r], indptr[r + 1]):
            value = data[e]
            col = indices[e]
            if value <= 0:
                continue
            if filled == size:
                if not _before(value, col, out_values[r, size - 1], out_ids[r, size - 1]):
                    continue
                pos = size - 1  # the last entry drops out
            else:
                pos = filled
                filled = filled + 1
            # Insertion: shift the entries this one ranks before one slot down.
            while pos > 0 and _before(value, col, out_values[r, pos - 1], out_ids[r, pos - 1]):
                out_values[r, pos] = out_values[r, pos - 1]
                out_ids[r, pos] = out_ids[r, pos - 1]
                pos = pos - 1
            out_values[r, pos] = value
            out_ids[r, pos] = col
