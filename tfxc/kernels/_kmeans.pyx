# cython: language_level=3
"""Compiled balanced spherical 2-means of one tree depth (API: tfxc/tree/kmeans.py, `balanced_kmeans_codes`).

The same splits as the vectorised NumPy version, node by node: a node's labels are
scored against its direction, sorted by (score, label id), and the first floor(n/2)
go left; the direction is re-estimated from the two halves until the left half
stops changing or `max_iter` passes. The NumPy version keeps one centroid slot per
distinct (node, feature) pair, which costs a sort of every nonzero of the label
features per depth and several arrays of their size: at Amazon-670K's shape
(~10^8 nonzeros, 16 depths) that is most of an hour and ~15 GB. Here each thread
keeps its node's centroids in dense buffers of D doubles, touched only at the
node's distinct features (listed once per node), so a pass costs two reads of the
node's nonzeros (scores, sums) and a few of its distinct features, and nothing is
copied. float32 label features are read as they are (exactly widened to double).

OpenMP-parallel over the nodes of the depth (a node is split by one thread, in a
fixed order): the result does not depend on the thread count.
"""

import numpy as np

from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdlib cimport calloc, free, malloc, qsort


cdef struct Entry:
    double score
    long long label
    long long pos


cdef int _by_score_then_label(const void* a, const void* b) noexcept nogil:
    cdef const Entry* x = <const Entry*>a
    cdef const Entry* y = <const Entry*>b
    if x.score < y.score:
        return -1
    if x.score > y.score:
        return 1
    if x.label < y.label:
        return -1
    if x.label > y.label:
        return 1
    return 0


ctypedef fused real:
    float
    double


cdef int _split_node(const long long* indptr, const int* indices, const real* data, const long long* members,
                     long long n, long long r, long long l, int max_iter, bint spherical,
                     double* direction, double* sum_left, double* sum_right, long long* mark, int* touched,
                     long long* stamp, long long* out) noexcept nogil:
    """Splits one node (its labels `members` [n], in their current order); writes them to `out` [n] in the
    final sorted order (left half first). The buffers [D] are zero (`mark`: below `stamp`) on entry and on
    return; `touched` [D] is scratch.
    Returns 0, or -1 when memory ran out."""
    cdef Entry* entries = <Entry*>malloc(n * sizeof(Entry))
    cdef char* is_left = <char*>calloc(n, sizeof(char))
    cdef long long half = n // 2, i, rank, row, e, width = 0, t
    cdef int iteration, col
    cdef bint changed, side
    cdef double score, scale_left, scale_right
    if entries == NULL or is_left == NULL:
        free(entries)
        free(is_left)
        return -1
    # The node's distinct features, once: the centroid passes below run over them, not over its nonzeros.
    stamp[0] += 1
    for i in range(n):
        row = members[i]
        for e in range(indptr[row], indptr[row + 1]):
            col = indices[e]
            if mark[col] != stamp[0]:
                mark[col] = stamp[0]
                touched[width] = col
                width = width + 1
    for e in range(indptr[members[r]], indptr[members[r] + 1]):
        direction[indices[e]] += data[e]
    for e in range(indptr[members[l]], indptr[members[l] + 1]):
        direction[indices[e]] -= data[e]
    for iteration in range(max_iter):
        for i in range(n):
            row = members[i]
            score = 0.0
            for e in range(indptr[row], indptr[row + 1]):
                score += data[e] * direction[indices[e]]
            entries[i].score = score
            entries[i].label = row
            entries[i].pos = i
        qsort(entries, n, sizeof(Entry), _by_score_then_label)
        changed = False
        for rank in range(n):
            side = rank < half
            if side != is_left[entries[rank].pos]:
                changed = True
            is_left[entries[rank].pos] = side
            out[rank] = entries[rank].label
        if iteration > 0 and not changed:
            break
        # The halves' sums, then the direction from them (and the sums back to zero).
        for i in range(n):
            row = members[i]
            if is_left[i]:
                for e in range(indptr[row], indptr[row + 1]):
                    sum_left[indices[e]] += data[e]
            else:
                for e in range(indptr[row], indptr[row + 1]):
                    sum_right[indices[e]] += data[e]
        if spherical:
            scale_left = 0.0
            scale_right = 0.0
            for t in range(width):
                col = touched[t]
                scale_left += sum_left[col] * sum_left[col]
                scale_right += sum_right[col] * sum_right[col]
            scale_left = sqrt(scale_left)
            scale_right = sqrt(scale_right)
        else:
            scale_left = <double>half
            scale_right = <double>(n - half)
        scale_left = scale_left if scale_left > 1e-30 else 1e-30
        scale_right = scale_right if scale_right > 1e-30 else 1e-30
        for t in range(width):
            col = touched[t]
            direction[col] = sum_right[col] / scale_right - sum_left[col] / scale_left
            sum_left[col] = 0.0
            sum_right[col] = 0.0
    for t in range(width):
        direction[touched[t]] = 0.0
    free(entries)
    free(is_left)
    return 0


def split_level(const long long[::1] indptr, const int[::1] indices, const real[::1] data,
                const long long[::1] order, const long long[::1] starts, const long long[::1] first,
                const long long[::1] second, int max_iter, bint spherical, long long dim):
    """Splits every node of one depth: node j holds labels order[starts[j]:starts[j + 1]] (rows of the CSR
    label features), first/second [nodes] its initial pair (positions within the node). Returns the labels
    int64 [L], each node's in its final order (left half first)."""
    cdef Py_ssize_t nodes = starts.shape[0] - 1, j
    out_array = np.empty(order.shape[0], np.int64)
    cdef long long[::1] out = out_array
    cdef double* direction
    cdef double* sum_left
    cdef double* sum_right
    cdef long long* mark
    cdef int* touched
    cdef long long stamp = 0
    failures = np.zeros(1, np.intc)  # written through a memoryview: shared by the threads
    cdef int[::1] failed = failures
    with nogil, parallel():
        direction = <double*>calloc(dim, sizeof(double))
        sum_left = <double*>calloc(dim, sizeof(double))
        sum_right = <double*>calloc(dim, sizeof(double))
        mark = <long long*>calloc(dim, sizeof(long long))
        touched = <int*>malloc(dim * sizeof(int))
        stamp = 0
        if direction == NULL or sum_left == NULL or sum_right == NULL or mark == NULL or touched == NULL:
            failed[0] = 1
        else:
            for j in prange(nodes, schedule="dynamic", chunksize=1):
                if _split_node(&indptr[0], &indices[0], &data[0], &order[starts[j]], starts[j + 1] - starts[j],
                               first[j], second[j], max_iter, spherical, direction, sum_left, sum_right, mark,
                               touched, &stamp, &out[starts[j]]) != 0:
                    failed[0] = 1
        free(direction)
        free(sum_left)
        free(sum_right)
        free(mark)
        free(touched)
    if failures[0]:
        raise MemoryError(f"2-means of {nodes} nodes: out of memory for the per-thread centroid buffers "
                          f"({dim} features)")
    return out_array
