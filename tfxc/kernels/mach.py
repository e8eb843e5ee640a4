"""MACH score reconstruction and top-k: compiled kernel, NumPy fallback, approximate variant.

MACH (Medini, Huang, Wang, Shrivastava, "Extreme Classification in Log Memory
using Count-Min Sketch: A Case Study of Amazon Search with 50M Products",
NeurIPS 2019) trains R independent B-way classifiers on hashed labels
``h_r(c) = lookup[r, c]``. At test time the score of label c is

    score(c | x) = sum_{r=0}^{R-1} bucket_scores[r, h_r(c)]

(the reference code sums raw logits; any per-repetition monotone transform can
be applied to ``bucket_scores`` beforehand), and the prediction is the top k
(design doc ``algorithms.md`` §2.5).

* :func:`mach_top_k` - exact, every label scored. Uses the OpenMP Cython kernel
  ``tfxc.kernels._mach`` when it was built (``pip install -e .``), else
  :func:`mach_top_k_numpy`. ``HAVE_COMPILED_MACH`` says which.
* :func:`mach_top_k_numpy` - the vectorised fallback with identical results.
* :func:`mach_candidate_top_k` - the reference code's approximate evaluation
  (``approx_eval.py``): only labels in each repetition's ``top_buckets`` best
  buckets are scored.

Conventions shared by all three: scores are summed in float32 in repetition
order r = 0..R-1 (so the compiled and NumPy versions agree bit for bit); ranks
are best first with ties broken by the smaller label id; ``k`` must be in
``[1, L]`` (``ValueError`` otherwise, no clipping). Labels whose score is NaN
are never returned; if fewer than k labels remain, the row is padded with id
-1 and score -inf.
"""

from __future__ import annotations

import numpy as np

from tfxc.hashing import MachLookup

try:
    from tfxc.kernels import _mach
except ImportError:  # pragma: no cover - only without a built extension
    _mach = None

__all__ = ["HAVE_COMPILED_MACH", "mach_top_k", "mach_top_k_numpy", "mach_top_k_compiled",
           "mach_candidate_top_k", "default_num_threads"]

HAVE_COMPILED_MACH = _mach is not None

# The NumPy fallback scores `chunk` rows at a time with chunk * L <= this many floats
# (two such float32 buffers live at once: 2 * 128 MiB at the default).
NUMPY_CHUNK_ELEMENTS = 1 << 25
# Labels are accumulated in blocks of NUMPY_LABEL_BLOCK // chunk labels (1 MiB of sums).
NUMPY_LABEL_BLOCK = 1 << 18


# ----------------------------------------------------------------------------- validation
def _check_inputs(bucket_scores, lookup, k) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate and convert to (float32 C [N, R, B], int32 C [R, L], k)."""
    bs = np.asarray(bucket_scores)
    if bs.ndim != 3:
        raise ValueError(f"bucket_scores must be 3-D [N, R, B], got shape {bs.shape}")
    if not np.issubdtype(bs.dtype, np.floating):
        raise TypeError(f"bucket_scores must be floating point, got dtype {bs.dtype}")
    bs = np.ascontiguousarray(bs, dtype=np.float32)
    _, R, B = bs.shape
    if isinstance(lookup, MachLookup):
        if lookup.num_buckets != B:
            raise ValueError(f"lookup has num_buckets={lookup.num_buckets}, "
                             f"bucket_scores has B={B}")
        lut = lookup.buckets  # int32, C-contiguous, values checked at build/load
        checked = True
    else:
        lut = np.asarray(lookup)
        if lut.ndim != 2:
            raise ValueError(f"lookup must be 2-D [R, L], got shape {lut.shape}")
        if not np.issubdtype(lut.dtype, np.integer):
            raise TypeError(f"lookup must be an integer array, got dtype {lut.dtype}")
        checked = False
    if lut.shape[0] != R:
        raise ValueError(f"lookup has {lut.shape[0]} repetitions, bucket_scores has R={R}")
    if R < 1 or B < 1:
        raise ValueError(f"need R >= 1 and B >= 1, got bucket_scores shape {bs.shape}")
    if not checked and lut.size:
        lo, hi = lut.min(), lut.max()
        if lo < 0 or hi >= B:
            raise ValueError(f"lookup values must lie in [0, B={B}), got [{lo}, {hi}]")
    lut = np.ascontiguousarray(lut, dtype=np.int32)
    L = lut.shape[1]
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {k!r}")
    k = int(k)
    if not 1 <= k <= L:
        raise ValueError(f"k must be in [1, L={L}], got {k}")
    return bs, lut, k


def _empty(n, k):
    return np.full((n, k), -np.inf, dtype=np.float32), np.full((n, k), -1, dtype=np.int64)


# ----------------------------------------------------------------------------- top-k helper
def _top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each row of ``scores`` [m, L] (best first, ties -> smaller column).

    ``np.partition`` finds each row's k-th largest value t; every column with a
    score >= t is a candidate (k of them unless there are ties at t), and the
    candidates are sorted by (-score, column), so ties are broken exactly as in the
    compiled kernel. Rows with NaN fall back to a per-row path that drops the NaNs.

    Returns:
        (values float32 [m, k], columns int64 [m, k]).
    """
    m, L = scores.shape
    out_v, out_i = _empty(m, k)
    if m == 0:
        return out_v, out_i
    if k < L:
        kth = np.partition(scores, L - k, axis=1)[:, L - k]
    else:
        kth = scores.min(axis=1)
    rows, cols = np.nonzero(scores >= kth[:, None])
    vals = scores[rows, cols]
    counts = np.bincount(rows, minlength=m)
    order = np.lexsort((cols, -vals, rows))  # rows ascending, then best first
    starts = np.zeros(m, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    good = counts >= k  # rows without NaN trouble
    sel = order[(starts[good, None] + np.arange(k)).ravel()].reshape(-1, k)
    out_v[good] = vals[sel]
    out_i[good] = cols[sel]
    for i in np.flatnonzero(~good):  # NaN somewhere in the row: rank the non-NaN labels
        idx = np.flatnonzero(~np.isnan(scores[i]))
        v = scores[i, idx]
        best = np.lexsort((idx, -v))[:k]
        out_v[i, :best.size] = v[best]
        out_i[i, :best.size] = idx[best]
    return out_v, out_i


# ----------------------------------------------------------------------------- exact top-k
def mach_top_k_numpy(bucket_scores, lookup, k: int, num_threads: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised NumPy version of :func:`mach_top_k` (same signature and results).

    Rows are processed in chunks of ``max(1, NUMPY_CHUNK_ELEMENTS // L)`` so memory
    stays bounded (two float32 [chunk, L] buffers, 256 MiB at most by default); per
    chunk the class scores are accumulated as [L, chunk], label block by label block
    so the partial sums stay in cache, with row gathers (``np.take(axis=0)`` on the
    chunk transposed to [R, B, chunk]), then
    :func:`_top_k_rows` (partition + sort of the k) picks the winners. Single-threaded;
    ``num_threads`` is accepted for signature compatibility and ignored.

    Args:
        bucket_scores: float [N, R, B] per-repetition bucket scores (cast to float32).
        lookup: int [R, L] label -> bucket table, or a :class:`~tfxc.hashing.MachLookup`.
        k: number of labels to return, 1 <= k <= L.
        num_threads: ignored.

    Returns:
        (scores float32 [N, k], ids int64 [N, k]), best first.
    """
    bs, lut, k = _check_inputs(bucket_scores, lookup, k)
    N, R, _ = bs.shape
    L = lut.shape[1]
    out_s, out_i = _empty(N, k)
    chunk = max(1, min(N, NUMPY_CHUNK_ELEMENTS // max(L, 1)))
    acc_buf = np.empty(L * chunk, dtype=np.float32)
    for n0 in range(0, N, chunk):
        m = min(chunk, N - n0)
        # [R, B, m]: gathering whole rows of m floats is much faster than gathering
        # single floats along the label axis of [m, B].
        block = np.ascontiguousarray(bs[n0:n0 + m].transpose(1, 2, 0))
        acc = acc_buf[:L * m].reshape(L, m)
        lb = max(1, NUMPY_LABEL_BLOCK // m)  # label block whose [lb, m] sum stays in cache
        tmp = np.empty((lb, m), dtype=np.float32)
        for l0 in range(0, L, lb):
            l1 = min(L, l0 + lb)
            a, t = acc[l0:l1], tmp[:l1 - l0]
            np.take(block[0], lut[0, l0:l1], axis=0, out=a)
            for r in range(1, R):
                np.take(block[r], lut[r, l0:l1], axis=0, out=t)
                a += t
        out_s[n0:n0 + m], out_i[n0:n0 + m] = _top_k_rows(np.ascontiguousarray(acc.T), k)
    return out_s, out_i


def mach_top_k_compiled(bucket_scores, lookup, k: int, num_threads: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The OpenMP Cython kernel behind :func:`mach_top_k` (requires the built extension)."""
    if _mach is None:
        raise RuntimeError("tfxc.kernels._mach is not built; run `pip install -e .`")
    bs, lut, k = _check_inputs(bucket_scores, lookup, k)
    if num_threads is not None and int(num_threads) < 1:
        raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
    return _mach.mach_top_k(bs, lut, k, int(num_threads or 0))


def mach_top_k(bucket_scores, lookup, k: int, num_threads: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Exact MACH prediction: score every label, return the k best per row.

    ``score[n, c] = sum_r bucket_scores[n, r, lookup[r, c]]`` (float32, r in order),
    then the k best labels per row, best first, ties broken by the smaller label id.
    The compiled kernel (used when built) runs OpenMP threads over tiles of 4 rows;
    each thread owns one [4, 16384] float32 accumulator (256 KiB) and each row a
    size-k heap kept in the output arrays, so memory is O(N*k + threads) and no
    [N, L] array is allocated. Cost: N * R * L gathers; the lookup table is streamed
    once per 4 rows.

    Args:
        bucket_scores: float [N, R, B] per-repetition bucket scores (raw logits in the
            reference code); cast to C-contiguous float32. Must be finite for a
            well-defined ranking (NaN labels are skipped).
        lookup: int [R, L] label -> bucket table with values in [0, B), or a
            :class:`~tfxc.hashing.MachLookup` (its ``buckets``; not re-validated).
        k: labels per row, 1 <= k <= L (``ValueError`` otherwise; no clipping).
        num_threads: OpenMP threads; ``None`` = OpenMP's default (all cores, or
            ``OMP_NUM_THREADS``). Results do not depend on it.

    Returns:
        (scores float32 [N, k], ids int64 [N, k]), best first.

    Raises:
        ValueError: bad shapes, lookup values out of range, k out of range.
        TypeError: non-floating bucket_scores or non-integer lookup.
    """
    if HAVE_COMPILED_MACH:
        return mach_top_k_compiled(bucket_scores, lookup, k, num_threads)
    return mach_top_k_numpy(bucket_scores, lookup, k, num_threads)


# ----------------------------------------------------------------------------- approximate
def mach_candidate_top_k(bucket_scores, lookup: MachLookup, k: int, top_buckets: int = 50,
                         min_freq: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Approximate MACH prediction over candidate labels (reference ``approx_eval.py``).

    For each row and repetition r, take the ``top_buckets`` best buckets (ties ->
    smaller bucket id). Candidates are the union of their labels (via
    ``lookup.inverse(r)``); ``score(c)`` is the float32 sum, in repetition order,
    of the selected buckets' scores that contain c, and ``freq(c)`` the number of
    repetitions whose selection reached c. Candidates with ``freq >= min_freq - i``
    are kept, with i = 0, 1, ... increased until at least k remain (or the
    threshold reaches 1), and ranked by score (ties -> smaller id). With
    ``top_buckets = B`` and ``min_freq <= R`` this equals :func:`mach_top_k`.

    Cost (NumPy, one row at a time, single-threaded): per row O(R*B) for the
    bucket selection (done for all rows at once with ``np.partition``), plus
    O(R * top_buckets * L / B) to gather and accumulate the candidates, plus a sort
    of the kept candidates; memory O(L) for one reusable accumulator (reset
    sparsely after each row). About
    R * top_buckets / B of the exact kernel's gather work (16 % at R=32,
    top_buckets=50, B=10000), but with NumPy per-call overhead (~10 calls per
    repetition per row).

    Args:
        bucket_scores: float [N, R, B] per-repetition bucket scores.
        lookup: :class:`~tfxc.hashing.MachLookup` with R repetitions and B buckets
            (its inverse tables are built and cached on first use).
        k: labels per row, 1 <= k <= L.
        top_buckets: buckets kept per repetition, 1 <= top_buckets <= B.
        min_freq: starting frequency threshold (reference: 2), >= 1.

    Returns:
        (scores float32 [N, k], ids int64 [N, k]), best first; padded with score
        -inf and id -1 where fewer than k candidates exist at all.
    """
    if not isinstance(lookup, MachLookup):
        raise TypeError("mach_candidate_top_k needs a tfxc.hashing.MachLookup "
                        "(it uses the inverse bucket -> labels tables)")
    bs, lut, k = _check_inputs(bucket_scores, lookup, k)
    N, R, B = bs.shape
    L = lut.shape[1]
    top_buckets, min_freq = int(top_buckets), int(min_freq)
    if not 1 <= top_buckets <= B:
        raise ValueError(f"top_buckets must be in [1, B={B}], got {top_buckets}")
    if min_freq < 1:
        raise ValueError(f"min_freq must be >= 1, got {min_freq}")
    out_s, out_i = _empty(N, k)
    if N == 0:
        return out_s, out_i
    inverses = [lookup.inverse(r) for r in range(R)]
    # [N*R, top_buckets] selected buckets (order irrelevant: sums run over r).
    _, sel = _top_k_rows(bs.reshape(N * R, B), top_buckets)
    sel = sel.reshape(N, R, top_buckets)
    acc = np.zeros(L, dtype=np.float32)
    freq = np.zeros(L, dtype=np.int32)
    for n in range(N):
        reached = []  # labels seen for the first time, per repetition
        for r in range(R):
            class_order, offsets = inverses[r]
            b = sel[n, r]
            b = b[b >= 0]  # only NaN rows can have fewer than top_buckets buckets
            starts = offsets[b]
            lens = offsets[b + 1] - starts
            total = int(lens.sum())
            if total == 0:
                continue
            # positions class_order[starts[j] : starts[j] + lens[j]] for every j
            shift = np.repeat(starts - (np.cumsum(lens) - lens), lens)
            cls = class_order[shift + np.arange(total)]
            acc[cls] += np.repeat(bs[n, r, b], lens)  # labels are distinct within r
            f = freq[cls]
            freq[cls] = f + 1
            reached.append(cls[f == 0])
        if not reached:
            continue
        cand = np.concatenate(reached)  # unsorted; the final lexsort breaks ties by id
        f = freq[cand]
        s = acc[cand]
        acc[cand] = 0.0
        freq[cand] = 0
        thr = min_freq
        keep = f >= thr
        while thr > 1 and np.count_nonzero(keep) < k:
            thr -= 1
            keep = f >= thr
        cand, s = cand[keep], s[keep]
        ok = ~np.isnan(s)
        cand, s = cand[ok], s[ok]
        best = np.lexsort((cand, -s))[:k]
        out_s[n, :best.size] = s[best]
        out_i[n, :best.size] = cand[best]
    return out_s, out_i


def default_num_threads() -> int:
    """Threads the compiled kernel uses when ``num_threads=None`` (1 without it)."""
    if _mach is None:
        return 1
    return int(_mach.max_threads())
