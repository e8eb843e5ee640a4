"""MACH top-k kernels: Cython vs NumPy fallback vs a dense brute-force reference."""

import numpy as np
import pytest

import tfxc.kernels.mach as mach
from tfxc.hashing import MachLookup
from tfxc.kernels.mach import (HAVE_COMPILED_MACH, mach_candidate_top_k, mach_top_k,
                               mach_top_k_compiled, mach_top_k_numpy)

IMPLEMENTATIONS = [pytest.param(mach_top_k_numpy, id="numpy"),
                   pytest.param(mach_top_k, id="dispatch")]
if HAVE_COMPILED_MACH:
    IMPLEMENTATIONS.append(pytest.param(mach_top_k_compiled, id="cython"))
needs_compiled = pytest.mark.skipif(not HAVE_COMPILED_MACH, reason="_mach extension not built")


def dense_scores(bs, lut):
    """[N, L] class scores, summed in float32 in repetition order (the kernels' convention)."""
    bs = np.asarray(bs, np.float32)
    acc = bs[:, 0, :][:, lut[0]].copy()
    for r in range(1, lut.shape[0]):
        acc += bs[:, r, :][:, lut[r]]
    return acc


def brute_top_k(bs, lut, k):
    acc = dense_scores(bs, lut)
    labels = np.arange(acc.shape[1])
    ids = np.stack([np.lexsort((labels, -row))[:k] for row in acc]).reshape(len(acc), k)
    return np.take_along_axis(acc, ids, 1), ids.astype(np.int64)


def random_case(seed, N, R, B, L, ties):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct values -> many tied label scores
        bs = rng.integers(-2, 3, size=(N, R, B)).astype(np.float32)
    else:
        bs = rng.standard_normal((N, R, B)).astype(np.float32)
    lut = rng.integers(0, B, size=(R, L)).astype(np.int32)
    return bs, lut


CASES = [  # N, R, B, L, k, ties
    (5, 4, 7, 23, 3, False),
    (9, 4, 7, 23, 3, True),
    (3, 1, 5, 17, 1, True),      # R = 1, k = 1
    (4, 1, 13, 13, 13, False),   # k = L
    (17, 3, 4, 101, 5, True),    # heavy ties, L prime
    (2, 5, 1, 9, 4, False),      # B = 1: every label ties -> smallest ids
    (6, 2, 31, 1, 1, False),     # L = 1
    (11, 6, 50, 4099, 7, True),  # several class blocks in the compiled kernel
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_matches_brute_force(impl, case):
    N, R, B, L, k, ties = case
    bs, lut = random_case(sum(case[:5]), N, R, B, L, ties)
    s, i = impl(bs, lut, k)
    assert s.dtype == np.float32 and i.dtype == np.int64
    assert s.shape == i.shape == (N, k)
    ref_s, ref_i = brute_top_k(bs, lut, k)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(s, ref_s)


def test_numpy_chunking(monkeypatch):
    bs, lut = random_case(1, 23, 3, 9, 97, True)
    ref = brute_top_k(bs, lut, 4)
    monkeypatch.setattr(mach, "NUMPY_CHUNK_ELEMENTS", 97 * 5)  # chunks of 5 rows
    monkeypatch.setattr(mach, "NUMPY_LABEL_BLOCK", 5 * 7)      # label blocks of 7
    s, i = mach_top_k_numpy(bs, lut, 4)
    np.testing.assert_array_equal(i, ref[1])
    np.testing.assert_array_equal(s, ref[0])


@needs_compiled
@pytest.mark.parametrize("row_tile, class_block", [(1, 1), (3, 5), (8, 2048), (64, 96)])
def test_compiled_tiling(row_tile, class_block):
    from tfxc.kernels import _mach
    bs, lut = random_case(2, 19, 4, 11, 197, True)
    s, i = _mach.mach_top_k(bs, lut, 6, 2, row_tile, class_block)
    ref_s, ref_i = brute_top_k(bs, lut, 6)
    np.testing.assert_array_equal(i, ref_i)
    np.testing.assert_array_equal(s, ref_s)


@needs_compiled
def test_thread_count_independent():
    bs, lut = random_case(3, 37, 5, 16, 1003, True)
    base = mach_top_k_compiled(bs, lut, 5, num_threads=1)
    for threads in (2, 3, None):
        s, i = mach_top_k_compiled(bs, lut, 5, num_threads=threads)
        np.testing.assert_array_equal(i, base[1])
        np.testing.assert_array_equal(s, base[0])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_accepts_machlookup_float64_and_empty_batch(impl):
    lk = MachLookup.build(300, 16, range(3))
    rng = np.random.default_rng(4)
    bs = rng.standard_normal((4, 3, 16))  # float64 is cast to float32
    s, i = impl(bs, lk, 3)
    ref = brute_top_k(bs.astype(np.float32), lk.buckets, 3)
    np.testing.assert_array_equal(i, ref[1])
    s0, i0 = impl(np.zeros((0, 3, 16), np.float32), lk, 3)
    assert s0.shape == i0.shape == (0, 3) and i0.dtype == np.int64


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_nan_labels_are_skipped(impl):
    bs = np.zeros((2, 1, 4), np.float32)
    bs[0, 0] = [np.nan, 1.0, np.nan, -np.inf]
    bs[1, 0] = [np.nan, np.nan, np.nan, 2.0]
    lut = np.array([[0, 1, 2, 3, 3, 0]], np.int32)  # labels 0,5 -> NaN bucket 0; 2 -> NaN
    s, i = impl(bs, lut, 3)
    np.testing.assert_array_equal(i, [[1, 3, 4], [3, 4, -1]])
    np.testing.assert_array_equal(s, np.array([[1, -np.inf, -np.inf], [2, 2, -np.inf]], np.float32))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_errors(impl):
    lut = np.zeros((2, 10), np.int32)
    bs = np.zeros((3, 2, 4), np.float32)
    with pytest.raises(ValueError, match="3-D"):
        impl(bs[0], lut, 1)
    with pytest.raises(TypeError, match="floating"):
        impl(bs.astype(np.int32), lut, 1)
    with pytest.raises(TypeError, match="integer"):
        impl(bs, lut.astype(np.float32), 1)
    with pytest.raises(ValueError, match="2-D"):
        impl(bs, lut[0], 1)
    with pytest.raises(ValueError, match="repetitions"):
        impl(bs, np.zeros((3, 10), np.int32), 1)
    with pytest.raises(ValueError, match=r"\[0, B=4\)"):
        impl(bs, lut + 4, 1)
    with pytest.raises(ValueError, match=r"\[0, B=4\)"):
        impl(bs, lut - 1, 1)
    for bad_k in (0, 11, -1):
        with pytest.raises(ValueError, match="k must be"):
            impl(bs, lut, bad_k)
    with pytest.raises(TypeError):
        impl(bs, lut, 2.0)
    with pytest.raises(ValueError, match="num_buckets"):
        impl(bs, MachLookup.build(10, 5, range(2)), 1)


# --------------------------------------------------------------------------- candidate version
def brute_candidate(bs, lk, k, top_buckets, min_freq):
    N, R, B = bs.shape
    out_s = np.full((N, k), -np.inf, np.float32)
    out_i = np.full((N, k), -1, np.int64)
    for n in range(N):
        score, freq = {}, {}
        for r in range(R):
            chosen = sorted(range(B), key=lambda b: (-bs[n, r, b], b))[:top_buckets]
            for b in chosen:
                for c in np.flatnonzero(lk.buckets[r] == b).tolist():
                    score[c] = np.float32(score.get(c, np.float32(0)) + bs[n, r, b])
                    freq[c] = freq.get(c, 0) + 1
        thr = min_freq
        while thr > 1 and sum(f >= thr for f in freq.values()) < k:
            thr -= 1
        kept = sorted((c for c in freq if freq[c] >= thr), key=lambda c: (-score[c], c))[:k]
        out_i[n, :len(kept)] = kept
        out_s[n, :len(kept)] = [score[c] for c in kept]
    return out_s, out_i


@pytest.mark.parametrize("min_freq", [1, 2, 3])
def test_candidate_equals_exact_with_all_buckets(min_freq):
    lk = MachLookup.build(401, 12, range(3))
    for ties in (False, True):
        bs, _ = random_case(5 + ties, 8, 3, 12, 401, ties)
        exact = mach_top_k_numpy(bs, lk, 5)
        s, i = mach_candidate_top_k(bs, lk, 5, top_buckets=12, min_freq=min_freq)
        np.testing.assert_array_equal(i, exact[1])
        np.testing.assert_array_equal(s, exact[0])


@pytest.mark.parametrize("top_buckets, min_freq, k", [(1, 2, 5), (2, 2, 3), (3, 3, 4), (5, 1, 1)])
def test_candidate_matches_reference(top_buckets, min_freq, k):
    lk = MachLookup.build(150, 10, range(4))
    for ties in (False, True):
        bs, _ = random_case(top_buckets + 10 * ties, 6, 4, 10, 150, ties)
        s, i = mach_candidate_top_k(bs, lk, k, top_buckets, min_freq)
        ref_s, ref_i = brute_candidate(bs, lk, k, top_buckets, min_freq)
        np.testing.assert_array_equal(i, ref_i)
        np.testing.assert_array_equal(s, ref_s)


def test_candidate_threshold_lowering_and_padding():
    lk = MachLookup.build(20, 10, [0])  # R = 1: freq is 1 everywhere
    bs = np.random.default_rng(7).standard_normal((3, 1, 10)).astype(np.float32)
    s, i = mach_candidate_top_k(bs, lk, 5, top_buckets=1, min_freq=2)
    for n in range(3):
        b = int(np.argmax(bs[n, 0]))
        members = np.flatnonzero(lk.buckets[0] == b)
        assert members.size < 5
        np.testing.assert_array_equal(i[n, :members.size], members)  # ties -> ascending id
        assert np.all(i[n, members.size:] == -1) and np.all(np.isneginf(s[n, members.size:]))
        assert np.all(s[n, :members.size] == bs[n, 0, b])


def test_candidate_errors():
    lk = MachLookup.build(30, 6, range(2))
    bs = np.zeros((2, 2, 6), np.float32)
    with pytest.raises(TypeError, match="MachLookup"):
        mach_candidate_top_k(bs, lk.buckets, 3, 2, 2)
    with pytest.raises(ValueError, match="top_buckets"):
        mach_candidate_top_k(bs, lk, 3, 7, 2)
    with pytest.raises(ValueError, match="top_buckets"):
        mach_candidate_top_k(bs, lk, 3, 0, 2)
    with pytest.raises(ValueError, match="min_freq"):
        mach_candidate_top_k(bs, lk, 3, 2, 0)
    with pytest.raises(ValueError, match="k must be"):
        mach_candidate_top_k(bs, lk, 31, 2, 2)
