"""Per-row top-k of CSR matrices (`tfxc.kernels.rows`): the compiled pass against the NumPy sort and against
a plain per-row Python ranking."""

import numpy as np
import pytest
import scipy.sparse

from tfxc.kernels import rows

needs_compiled = pytest.mark.skipif(not rows.HAVE_COMPILED_ROWS, reason="the row kernels were not built")


def ranked(m, size):
    """Each row ranked in plain Python: (−value, column) ascending, positive entries only."""
    m = scipy.sparse.csr_matrix(m)
    ids = np.full((m.shape[0], size), -1, np.int32)
    values = np.zeros((m.shape[0], size), np.float32)
    for r in range(m.shape[0]):
        entries = sorted((-v, c) for c, v in zip(m.indices[m.indptr[r]:m.indptr[r + 1]],
                                                  m.data[m.indptr[r]:m.indptr[r + 1]]) if v > 0)[:size]
        for slot, (v, c) in enumerate(entries):
            ids[r, slot], values[r, slot] = c, -v
    return ids, values


def tied_matrix(seed=0, shape=(60, 40), density=0.3):
    """Values from a few levels (so ties are common), some negative, some rows empty, columns unsorted."""
    rng = np.random.default_rng(seed)
    m = scipy.sparse.random(*shape, density=density, format="csr", random_state=seed, dtype=np.float32)
    m.data = rng.choice(np.array([-1.0, 0.5, 1.0, 2.0], np.float32), m.nnz)
    m[5] = 0
    m.eliminate_zeros()
    shuffled = m.copy()
    for r in range(m.shape[0]):  # a non-canonical column order within each row
        lo, hi = m.indptr[r], m.indptr[r + 1]
        perm = rng.permutation(hi - lo)
        shuffled.indices[lo:hi], shuffled.data[lo:hi] = m.indices[lo:hi][perm], m.data[lo:hi][perm]
    shuffled.has_sorted_indices = False
    return shuffled


@pytest.mark.parametrize("size", [1, 3, 8, 50])
@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_compiled), False])
def test_row_top_k_ranks_by_value_then_column(size, compiled):
    m = tied_matrix()
    ids, values = rows.row_top_k(m, size, compiled=compiled)
    want_ids, want_values = ranked(m, size)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(values, want_values)


def test_row_top_k_keeps_only_positive_entries_and_pads():
    m = scipy.sparse.csr_matrix(np.array([[0.0, -2.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 1.0, 2.0]]))
    ids, values = rows.row_top_k(m, 3)
    np.testing.assert_array_equal(ids, [[2, -1, -1], [-1, -1, -1], [0, 3, 1]])
    np.testing.assert_allclose(values, [[0.5, 0, 0], [0, 0, 0], [3.0, 2.0, 1.0]])


@needs_compiled
def test_compiled_matches_numpy_on_a_large_random_matrix():
    m = scipy.sparse.random(3000, 5000, density=0.02, format="csr", random_state=1, dtype=np.float32)
    for size in (4, 32):
        for got, want in zip(rows.row_top_k(m, size, compiled=True), rows.row_top_k(m, size, compiled=False)):
            np.testing.assert_array_equal(got, want)
