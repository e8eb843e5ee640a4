"""The bootstrap of a level's head: Newton's squared-hinge fit equals a plain NumPy/SciPy minimisation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse

from tfxc.xr.bootstrap import bootstrap_inherit, bootstrap_linear, fit_squared_hinge


def reference_fit(x, sign, cost):
    """Each problem minimised on its own by L-BFGS to a tight tolerance: float64 [F, d]."""
    out = []
    for f in range(sign.shape[1]):
        def objective(w):
            viol = np.maximum(0.0, 1.0 - sign[:, f] * (x @ w))
            grad = w - 2.0 * x.T @ (cost[:, f] * sign[:, f] * viol)
            return 0.5 * w @ w + np.sum(cost[:, f] * viol ** 2), grad
        result = scipy.optimize.minimize(objective, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B",
                                         options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 20000})
        out.append(result.x)
    return np.array(out)


@pytest.mark.parametrize("c", [1.0, 100.0])
def test_newton_fit_equals_a_reference_minimisation(c):
    rng = np.random.default_rng(0)
    x = np.hstack([rng.normal(size=(60, 5)), np.ones((60, 1))])
    sign = np.where(rng.random((60, 3)) < 0.3, 1.0, -1.0)
    cost = np.where(sign > 0, c * rng.integers(1, 3, size=(60, 3)), c)
    got = fit_squared_hinge(x, sign, cost, max_newton=30, cg_iterations=100)
    np.testing.assert_allclose(got, reference_fit(x, sign, cost), rtol=1e-4, atol=1e-5)


def test_the_default_early_stop_is_within_a_percent_of_the_minimum():
    """Clustered, correlated rows with noisy targets at C = 100, as a level's embeddings are."""
    rng = np.random.default_rng(3)
    n, groups = 600, 6
    group = rng.integers(0, groups, n)
    x = np.hstack([rng.normal(size=(groups, 24))[group] * 0.3 + rng.normal(size=(n, 24)) * 0.2, np.ones((n, 1))])
    sign = np.where(group[:, None] == np.arange(groups), 1.0, -1.0)
    sign[rng.random(sign.shape) < 0.05] *= -1
    cost = np.full(sign.shape, 100.0)

    def objective(w):
        return 0.5 * np.sum(w * w, axis=1) + np.sum(cost * np.maximum(0.0, 1.0 - sign * (x @ w.T)) ** 2, axis=0)

    early, best = objective(fit_squared_hinge(x, sign, cost)), objective(reference_fit(x, sign, cost))
    assert np.all(early >= best * (1 - 1e-9)) and np.all(early <= best * 1.01), early / best


def test_level_bootstrap_fits_each_cluster_on_its_parent_s_rows():
    rng = np.random.default_rng(1)
    n, dim = 50, 4
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    # Level l has 4 clusters under 2 parents (0: clusters 0, 1; 1: clusters 2, 3).
    children = np.array([[0, 1], [2, 3]], np.int32)
    counts = scipy.sparse.random(n, 4, density=0.3, random_state=2, data_rvs=lambda k: rng.integers(1, 3, k)).tocsr()
    matching = scipy.sparse.random(n, 2, density=0.4, random_state=3, data_rvs=np.ones).tocsr()
    kernel, bias = bootstrap_linear(emb, counts, matching, children, weighted=True, cp=100.0, cn=100.0,
                                    exact=True)
    dense_counts, active = counts.toarray(), matching.toarray() > 0
    for p, kids in enumerate(children):
        rows = np.flatnonzero(active[:, p] | (dense_counts[:, kids] > 0).any(axis=1))
        x = np.hstack([emb[rows].astype(np.float64), np.ones((rows.size, 1))])
        y = dense_counts[rows][:, kids]
        expected = reference_fit(x, np.where(y > 0, 1.0, -1.0), np.where(y > 0, 100.0 * y, 100.0))
        np.testing.assert_allclose(kernel[kids], expected[:, :dim], rtol=2e-3, atol=2e-4)
        np.testing.assert_allclose(bias[kids], expected[:, dim], rtol=2e-3, atol=2e-4)


def test_inherit_copies_the_parent_s_vector():
    kernel, bias = bootstrap_inherit(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -0.5]), np.array([1, 0, 1]))
    np.testing.assert_array_equal(kernel, [[3, 4], [1, 2], [3, 4]])
    np.testing.assert_array_equal(bias, [-0.5, 0.5, -0.5])
