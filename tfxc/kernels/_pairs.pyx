# cython: language_level=3
"""Compiled (row, node) pair products of the label tree's training step (API: tfxc/kernels/pairs.py).

A training row scores only its active nodes, a few hundred of a level's K. As
TensorFlow ops that is a gather of [B, C, d] node vectors, a product and, on the
way back, the same [B, C, d] again as an IndexedSlices that the optimizer sorts
and sums: memory passes of B·C·d floats that run far below the machine's
arithmetic. These loops read each node vector once per pair from the (cached)
table and never materialise [B, C, d]. OpenMP-parallel over rows (forward,
input gradient) or over distinct nodes (table gradients), so every output
element is summed by one thread in a fixed order: the results do not depend
on the thread count.
"""

import numpy as np

from tfxc.utils import aligned

cimport openmp
from cython.parallel cimport parallel, prange
from libc.stdlib cimport calloc, free


def max_threads() -> int:
    return openmp.omp_get_max_threads()


cdef inline float _dot(const float* a, const float* b, Py_ssize_t d) noexcept nogil:
    """a · b with eight partial sums (vectorisable without reassociating a single sum)."""
    cdef float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0
    cdef Py_ssize_t k = 0
    while k + 8 <= d:
        s0 += a[k] * b[k]
        s1 += a[k + 1] * b[k + 1]
        s2 += a[k + 2] * b[k + 2]
        s3 += a[k + 3] * b[k + 3]
        s4 += a[k + 4] * b[k + 4]
        s5 += a[k + 5] * b[k + 5]
        s6 += a[k + 6] * b[k + 6]
        s7 += a[k + 7] * b[k + 7]
        k += 8
    while k < d:
        s0 += a[k] * b[k]
        k += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline void _axpy(float alpha, const float* x, float* y, Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(d):
        y[k] += alpha * x[k]


cdef inline Py_ssize_t _lower_bound(const int* row, Py_ssize_t width, int value) noexcept nogil:
    """The first slot of `row` (ascending) whose id is >= value."""
    cdef Py_ssize_t lo = 0, hi = width, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if row[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


def pair_dots(const float[:, ::1] h, const float[:, ::1] table, const int[:, ::1] nodes, int num_threads):
    """out[b, c] = h[b] · table[nodes[b, c]] (0 where nodes[b, c] < 0): float32 [B, C]."""
    cdef Py_ssize_t rows = nodes.shape[0], width = nodes.shape[1], dim = h.shape[1]
    out = aligned.zeros((rows, width), np.float32)
    cdef float[:, ::1] o = out
    cdef Py_ssize_t b, c
    cdef int node
    if rows == 0 or width == 0:
        return out
    with nogil:
        for b in prange(rows, num_threads=num_threads, schedule="static"):
            for c in range(width):
                node = nodes[b, c]
                if node >= 0:
                    o[b, c] = _dot(&h[b, 0], &table[node, 0], dim)
    return out


def pair_input_grads(const float[:, ::1] grads, const float[:, ::1] table, const int[:, ::1] nodes,
                     int num_threads):
    """dh[b] = Σ_c grads[b, c] · table[nodes[b, c]]: float32 [B, d], the gradient of `pair_dots` for h."""
    cdef Py_ssize_t rows = nodes.shape[0], width = nodes.shape[1], dim = table.shape[1]
    out = aligned.zeros((rows, dim), np.float32)
    cdef float[:, ::1] o = out
    cdef Py_ssize_t b, c
    cdef int node
    cdef float g
    if rows == 0 or width == 0:
        return out
    with nogil:
        for b in prange(rows, num_threads=num_threads, schedule="static"):
            for c in range(width):
                node = nodes[b, c]
                g = grads[b, c]
                if node >= 0 and g != 0:
                    _axpy(g, &table[node, 0], &o[b, 0], dim)
    return out


def grouped_row_sums(const float[::1] grads, const float[:, ::1] vectors, const long long[::1] order,
                     const long long[::1] starts, Py_ssize_t vector_of_every, int num_threads):
    """out[u] = Σ_{n in starts[u]..starts[u+1]} grads[order[n]] · vectors[order[n] // vector_of_every]: float32 [U, d].

    The gradient of a table from pairs grouped by node: `order` lists the flat pair slots sorted by node,
    `starts` the first slot of each distinct node (U + 1 entries). With `vector_of_every` = C (the pairs
    per row) the vectors are the rows' h; with 1 they are the pairs' own (the looked-up inputs).
    """
    cdef Py_ssize_t groups = starts.shape[0] - 1, dim = vectors.shape[1]
    out = aligned.zeros((max(groups, 0), dim), np.float32)
    cdef float[:, ::1] o = out
    cdef Py_ssize_t u, n
    cdef long long slot
    cdef float g
    if groups <= 0 or dim == 0:
        return out
    with nogil:
        for u in prange(groups, num_threads=num_threads, schedule="dynamic", chunksize=16):
            for n in range(starts[u], starts[u + 1]):
                slot = order[n]
                g = grads[slot]
                if g != 0:
                    _axpy(g, &vectors[slot // vector_of_every, 0], &o[u, 0], dim)
    return out


def pair_sparse_dots(const int[:, ::1] ids, const float[:, ::1] values, const int[:, ::1] support,
                     const float[:, ::1] weights, const int[:, ::1] nodes, Py_ssize_t num_features, int num_threads,
                     bint keep_looked=True):
    """The sparse term of pairs: out[b, c] = Σ_j weights[n, j] · x_b[support[n, j]], n = nodes[b, c].

    Args:
      ids, values: int32 / float32 [B, W], each row's feature ids ascending (padding ids sort last) and values.
      support, weights: int32 / float32 [K, S], each node's features and their weights; a row shorter than S
        is padded with −1 at its end (`tfxc.tree.support`), where its scan stops: a pair costs the node's own
        width, not the level's widest.
      nodes: int32 [B, C] (−1: none).
      num_features: D > 0: each thread spreads its row over a dense [D] buffer and reads every support
        feature in one load (D floats a thread); 0: each is found by binary search in the row.

      keep_looked: False for scores alone (a beam search's): `looked` is then empty, [B, C, 0].

    Returns (out float32 [B, C], looked float32 [B, C, S]: the x values found, the gradient's inputs).
    """
    cdef Py_ssize_t rows = nodes.shape[0], width = nodes.shape[1], span = support.shape[1]
    cdef Py_ssize_t row_width = ids.shape[1]
    out = aligned.zeros((rows, width), np.float32)
    looked = aligned.zeros((rows, width, span if keep_looked else 0), np.float32)
    cdef float[:, ::1] o = out
    cdef float[:, :, ::1] x = looked
    cdef Py_ssize_t b, c, j, slot
    cdef int node, feature
    cdef float acc, value
    cdef float* dense
    if rows == 0 or width == 0 or span == 0:
        return out, looked
    with nogil, parallel(num_threads=num_threads):
        # Without the buffer (no D, or no memory for it) each lookup searches the row instead.
        dense = <float*> calloc(num_features, sizeof(float)) if num_features > 0 else NULL
        for b in prange(rows, schedule="static"):
            if dense != NULL:
                for slot in range(row_width):
                    if 0 <= ids[b, slot] < num_features:
                        dense[ids[b, slot]] = values[b, slot]
            for c in range(width):
                node = nodes[b, c]
                if node < 0:
                    continue
                acc = 0
                for j in range(span):
                    feature = support[node, j]
                    if feature < 0:  # the padding, at the end of a node's row: its features are all read
                        break
                    if dense != NULL:
                        value = dense[feature] if feature < num_features else 0
                    else:
                        slot = _lower_bound(&ids[b, 0], row_width, feature)
                        value = values[b, slot] if slot < row_width and ids[b, slot] == feature else 0
                    if keep_looked:
                        x[b, c, j] = value
                    acc = acc + weights[node, j] * value
                o[b, c] = acc
            if dense != NULL:
                for slot in range(row_width):
                    if 0 <= ids[b, slot] < num_features:
                        dense[ids[b, slot]] = 0
        free(dense)
    return out, looked


def group_by_node(const int[::1] flat, Py_ssize_t num_nodes):
    """The valid slots (flat[n] >= 0) of `flat` grouped by node, by counting sort (O(P + K), stable).

    Returns (distinct nodes int32 [U] ascending, order int64 [P'], starts int64 [U + 1]); see
    `tfxc.kernels.pairs.group_by_node`. Every id must be < num_nodes.
    """
    cdef Py_ssize_t size = flat.shape[0], n, distinct = 0, total = 0, u
    counts_array = np.zeros(num_nodes + 1, np.int64)
    cdef long long[::1] counts = counts_array
    cdef int node
    with nogil:
        for n in range(size):
            node = flat[n]
            if node >= 0:
                counts[node + 1] += 1
        for u in range(num_nodes):
            if counts[u + 1]:
                distinct += 1
    nodes_array = np.empty(distinct, np.int32)
    starts_array = np.empty(distinct + 1, np.int64)
    cdef int[::1] nodes = nodes_array
    cdef long long[::1] starts = starts_array
    with nogil:
        distinct = 0
        for u in range(num_nodes):  # counts[u + 1] becomes where node u's slots start
            if counts[u + 1]:
                nodes[distinct] = <int> u
                starts[distinct] = total
                distinct += 1
            n = counts[u + 1]
            counts[u + 1] = total
            total += n
        starts[distinct] = total
    order_array = np.empty(total, np.int64)
    cdef long long[::1] order = order_array
    with nogil:
        for n in range(size):
            node = flat[n]
            if node >= 0:
                order[counts[node + 1]] = n
                counts[node + 1] += 1
    return nodes_array, order_array, starts_array

