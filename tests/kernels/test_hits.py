"""The Cython `hits_matrix` kernel agrees with its NumPy reference."""

import importlib.util

import numpy as np
import pytest

from tfxc import kernels
from tfxc.kernels import hits_matrix, hits_matrix_numpy

IMPLEMENTATIONS = [pytest.param(hits_matrix_numpy, id="numpy")]
if kernels.HAVE_COMPILED_KERNELS:
    IMPLEMENTATIONS.append(pytest.param(kernels._compiled_hits_matrix, id="cython"))


def _random_problem(rng, n_rows, k, num_labels, max_per_row, empty_frac=0.2, neg_frac=0.2):
    """Random CSR labels (sorted rows, some empty) and predictions with hits, misses and negatives."""
    counts = rng.integers(0, max_per_row + 1, size=n_rows)
    counts[rng.random(n_rows) < empty_frac] = 0
    rows = [np.sort(rng.choice(num_labels, size=min(c, num_labels), replace=False)) for c in counts]
    indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows + [np.zeros(0)]).astype(np.int64)
    pred = rng.integers(0, num_labels + 3, size=(n_rows, k))  # ids >= L never hit
    for i, r in enumerate(rows):  # plant some true labels so hits happen
        if r.size:
            cols = rng.random(k) < 0.5
            pred[i, cols] = rng.choice(r, size=cols.sum())
    pred[rng.random((n_rows, k)) < neg_frac] = -1
    pred[rng.random((n_rows, k)) < 0.05] = -7
    return pred.astype(np.int64), indptr, indices


def _brute_force(pred, indptr, indices):
    out = np.zeros(pred.shape, dtype=np.uint8)
    for i in range(pred.shape[0]):
        truth = set(indices[indptr[i]:indptr[i + 1]].tolist())
        for j in range(pred.shape[1]):
            out[i, j] = pred[i, j] >= 0 and int(pred[i, j]) in truth
    return out


def test_compiled_extension_is_used_when_built():
    if importlib.util.find_spec("tfxc.kernels._hits") is None:
        pytest.skip("tfxc.kernels._hits is not built (no compiler at install time); NumPy fallback in use")
    assert kernels.HAVE_COMPILED_KERNELS is True
    assert kernels.hits_matrix is kernels._compiled_hits_matrix


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_hand_example(impl):
    # row 0: labels {1, 4, 7}; row 1: no labels; row 2: labels {0}
    indptr = np.array([0, 3, 3, 4])
    indices = np.array([1, 4, 7, 0])
    pred = np.array([[7, 2, 1],     # hit, miss, hit
                     [1, 4, -1],    # empty row: nothing hits
                     [-1, 0, 9]])   # padding, hit, miss
    expected = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]], dtype=np.uint8)
    out = impl(pred, indptr, indices)
    assert out.dtype == np.uint8 and out.shape == (3, 3)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("k", [1, 2, 5, 17])
@pytest.mark.parametrize("seed", range(4))
def test_random_against_brute_force(impl, k, seed):
    rng = np.random.default_rng(seed)
    pred, indptr, indices = _random_problem(rng, n_rows=60, k=k, num_labels=40, max_per_row=8)
    expected = _brute_force(pred, indptr, indices)
    np.testing.assert_array_equal(impl(pred, indptr, indices), expected)
    assert expected.any() and not expected.all()  # the problem exercises both outcomes


@pytest.mark.parametrize("seed", range(3))
def test_cython_matches_numpy(seed):
    if not kernels.HAVE_COMPILED_KERNELS:
        pytest.skip("compiled extension not built")
    rng = np.random.default_rng(100 + seed)
    for k in (1, 3, 10):
        pred, indptr, indices = _random_problem(rng, n_rows=500, k=k, num_labels=1000, max_per_row=20)
        np.testing.assert_array_equal(kernels._compiled_hits_matrix(pred, indptr, indices),
                                      hits_matrix_numpy(pred, indptr, indices))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_edge_shapes(impl):
    # all rows empty
    out = impl(np.array([[0, 1], [2, -1]]), np.array([0, 0, 0]), np.array([], dtype=np.int64))
    np.testing.assert_array_equal(out, np.zeros((2, 2), np.uint8))
    # no rows
    out = impl(np.zeros((0, 3), np.int64), np.array([0]), np.array([], dtype=np.int64))
    assert out.shape == (0, 3) and out.dtype == np.uint8
    # k = 0
    out = impl(np.zeros((2, 0), np.int64), np.array([0, 1, 2]), np.array([5, 6]))
    assert out.shape == (2, 0)
    # all predictions negative
    out = impl(np.full((2, 3), -1), np.array([0, 1, 2]), np.array([0, 0]))
    np.testing.assert_array_equal(out, np.zeros((2, 3), np.uint8))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_accepts_other_int_dtypes_and_layouts(impl):
    rng = np.random.default_rng(7)
    pred, indptr, indices = _random_problem(rng, n_rows=30, k=4, num_labels=25, max_per_row=6)
    expected = _brute_force(pred, indptr, indices)
    out = impl(np.asfortranarray(pred.astype(np.int32)), indptr.astype(np.int32), indices.astype(np.int32))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("bad_len", [2, 4])
def test_wrong_indptr_length_raises(impl, bad_len):
    pred = np.zeros((2, 3), dtype=np.int64)  # needs indptr of length 3
    with pytest.raises(ValueError, match="indptr"):
        impl(pred, np.arange(bad_len, dtype=np.int64), np.arange(bad_len, dtype=np.int64))


def test_public_alias_matches_reference():
    rng = np.random.default_rng(3)
    pred, indptr, indices = _random_problem(rng, n_rows=50, k=5, num_labels=30, max_per_row=6)
    np.testing.assert_array_equal(hits_matrix(pred, indptr, indices), hits_matrix_numpy(pred, indptr, indices))
