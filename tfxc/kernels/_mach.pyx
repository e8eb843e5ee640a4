# cython: language_level=3
"""Compiled MACH score reconstruction + top-k (see tfxc/kernels/mach.py for the API).

For every row n and label c: score(c) = sum_r bucket_scores[n, r, lookup[r, c]]
(summed in float32, r = 0..R-1 in order), then the k best labels, best first,
ties broken by the smaller label id. OpenMP-parallel over tiles of batch rows;
each thread owns one [row_tile, class_block] float32 accumulator and keeps one
size-k heap per row inside the output arrays, so nothing of size [N, L] exists.

Medini et al., "Extreme Classification in Log Memory using Count-Min Sketch",
NeurIPS 2019 (reference kernel: `util.gather_batch`).
"""

import numpy as np

cimport openmp
from cython.parallel cimport prange, threadid
from libc.math cimport INFINITY


cdef inline bint _better(float s, long long c, float t, long long d) noexcept nogil:
    """(s, c) ranks before (t, d): higher score, then smaller id. NaN is never better."""
    return s > t or (s == t and c < d)


cdef inline void _sift_down(float* hs, long long* hi, Py_ssize_t size,
                            Py_ssize_t pos) noexcept nogil:
    """Restore the heap below `pos`; the root holds the *worst* entry of the heap."""
    cdef float s = hs[pos]
    cdef long long c = hi[pos]
    cdef Py_ssize_t child
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and _better(hs[child], hi[child], hs[child + 1], hi[child + 1]):
            child += 1  # the worse of the two children
        if _better(s, c, hs[child], hi[child]):
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hs[pos] = s
    hi[pos] = c


cdef void _tile(const float* bs, const int* lut, Py_ssize_t R, Py_ssize_t B, Py_ssize_t L,
                Py_ssize_t k, Py_ssize_t n0, Py_ssize_t nt, Py_ssize_t cblock, float* acc,
                float* out_s, long long* out_i) noexcept nogil:
    """Rows n0 .. n0+nt-1: accumulate class scores block by block and feed the heaps."""
    cdef Py_ssize_t j, c, c0, cb, r, pos
    cdef const int* lut_r
    cdef const float* row
    cdef float* a
    cdef float* hs
    cdef long long* hi
    cdef float s, root
    # Heaps start full of sentinels (-inf, L + ...), laid out as a valid heap
    # (root = largest sentinel id = worst); every real label beats every sentinel.
    for j in range(nt):
        hs = out_s + (n0 + j) * k
        hi = out_i + (n0 + j) * k
        for pos in range(k):
            hs[pos] = -INFINITY
            hi[pos] = L + k - 1 - pos
    c0 = 0
    while c0 < L:
        cb = cblock if L - c0 > cblock else L - c0
        for r in range(R):
            lut_r = lut + r * L + c0
            for j in range(nt):
                row = bs + ((n0 + j) * R + r) * B
                a = acc + j * cblock
                if r == 0:
                    for c in range(cb):
                        a[c] = row[lut_r[c]]
                else:
                    for c in range(cb):
                        a[c] += row[lut_r[c]]
        for j in range(nt):
            hs = out_s + (n0 + j) * k
            hi = out_i + (n0 + j) * k
            a = acc + j * cblock
            root = hs[0]
            for c in range(cb):
                s = a[c]
                if s < root:
                    continue
                if _better(s, c0 + c, hs[0], hi[0]):
                    hs[0] = s
                    hi[0] = c0 + c
                    _sift_down(hs, hi, k, 0)
                    root = hs[0]
        c0 += cb
    # Heapsort: repeatedly move the worst entry to the end -> best first.
    for j in range(nt):
        hs = out_s + (n0 + j) * k
        hi = out_i + (n0 + j) * k
        for pos in range(k - 1, 0, -1):
            s = hs[0]; hs[0] = hs[pos]; hs[pos] = s
            c = hi[0]; hi[0] = hi[pos]; hi[pos] = c
            _sift_down(hs, hi, pos, 0)
        for pos in range(k):
            if hi[pos] >= L:  # only possible when scores are NaN
                hi[pos] = -1
                hs[pos] = -INFINITY


def max_threads():
    """OpenMP's default thread count (omp_get_max_threads)."""
    return openmp.omp_get_max_threads()


def mach_top_k(const float[:, :, ::1] bucket_scores, const int[:, ::1] lookup, Py_ssize_t k,
               int num_threads=0, Py_ssize_t row_tile=4, Py_ssize_t class_block=16384):
    """Exact MACH top-k. Inputs are validated by the Python wrapper (lookup values in [0, B)).

    Each thread takes tiles of `row_tile` rows and walks the labels in blocks of
    `class_block`: for every repetition r, the lookup block is read once and reused
    for the tile's rows, whose [row_tile, class_block] partial sums stay in L2. Small
    class blocks re-stream the tile's [row_tile, R, B] bucket scores once per block,
    which thrashes a shared cache with 2 threads (measured: 8 x 2048 was 3x slower
    with 2 threads than 4 x 16384 on the 2-core dev VM), hence the defaults.

    Returns (scores float32 [N, k], ids int64 [N, k]).
    """
    cdef Py_ssize_t N = bucket_scores.shape[0], R = bucket_scores.shape[1]
    cdef Py_ssize_t B = bucket_scores.shape[2], L = lookup.shape[1]
    if lookup.shape[0] != R:
        raise ValueError(f"lookup has {lookup.shape[0]} repetitions, bucket_scores has {R}")
    if R < 1 or B < 1:
        raise ValueError("need R >= 1 and B >= 1")
    if not 1 <= k <= L:
        raise ValueError(f"k must be in [1, L={L}], got {k}")
    if row_tile < 1 or class_block < 1:
        raise ValueError("row_tile and class_block must be >= 1")
    out_scores = np.empty((N, k), dtype=np.float32)
    out_ids = np.empty((N, k), dtype=np.int64)
    if N == 0:
        return out_scores, out_ids
    cdef float[:, ::1] os_v = out_scores
    cdef long long[:, ::1] oi_v = out_ids
    cdef const float* bs = &bucket_scores[0, 0, 0]
    cdef const int* lut = &lookup[0, 0]
    cdef float* o_s = &os_v[0, 0]
    cdef long long* o_i = &oi_v[0, 0]
    cdef Py_ssize_t T = row_tile if row_tile < N else N
    cdef Py_ssize_t CB = class_block if class_block < L else L
    cdef Py_ssize_t n_tiles = (N + T - 1) // T
    cdef Py_ssize_t t, n0, nt
    if num_threads <= 0:
        num_threads = openmp.omp_get_max_threads()
    if num_threads > n_tiles:
        num_threads = <int>n_tiles
    # One [T, CB] float32 accumulator per thread, indexed by the OpenMP thread id.
    acc_all = np.empty((num_threads, T * CB), dtype=np.float32)
    cdef float[:, ::1] acc_v = acc_all
    cdef float* acc0 = &acc_v[0, 0]
    with nogil:
        for t in prange(n_tiles, schedule="dynamic", num_threads=num_threads):
            n0 = t * T
            nt = T if N - n0 > T else N - n0
            _tile(bs, lut, R, B, L, k, n0, nt, CB, acc0 + threadid() * T * CB, o_s, o_i)
    return out_scores, out_ids
