"""Bootstrapping a level's head from the previous resolution (XR-Transformer, xr-transformer.md §2).

Before level l is fine-tuned, its new head is fitted to the encoder as it left
level l−1: for each cluster c of level l, a linear squared-hinge SVM on the
previous encoder's raw (not normalised) embeddings of the rows active for c's
parent (its matching matrix M: `tfn` and/or `man`), as PECOS's `MLModel` does
(L2R_L2LOSS_SVC with bias 1, Cp = Cn = 100, no threshold; `matcher.py`):

    min_w  ½‖w‖² + Σ_i C_i · max(0, 1 − y_i · w·[e_i; 1])²

y_i = +1 when row i has a label below c, C_i = Cp (× the row's label count
below c for `weighted-linear`) for a positive and Cn for a negative. The last
component of w is the bias. `inherit` copies each parent's vector to its
children instead.

PECOS solves each problem by LIBLINEAR's dual coordinate descent to a loose
tolerance. This solves it by a truncated Newton's method (the objective is
strictly convex, so both aim at the same w), batched over a parent's children,
which share the parent's rows: every step is one [n, d] × [d, F] product. Dual
coordinate descent needs thousands of passes on dense, correlated embeddings at
C = 100; a few Newton steps, each solved loosely by conjugate gradients, reach
the minimum to a fraction of a percent (tests/xr/test_bootstrap.py).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse

log = logging.getLogger("tfxc.xr")

BOOTSTRAP_METHODS = ("linear", "weighted-linear", "inherit", "no-bootstrap")


class SideBySide:
    """Rows [S ⊕ E] of a sparse block S (CSR [n, d_s]) and a dense one E ([n, d_e]), kept apart so that
    products with E run as dense matrix products (a CSR copy of a dense block is several times slower).

    Supports what the fit needs: `shape`, row selection `x[rows]`, `x @ v` (v [d_s + d_e, F]) and
    `m @ x` through `_left_times`.
    """

    def __init__(self, sparse, dense):
        self.sparse = scipy.sparse.csr_matrix(sparse, dtype=np.float64)
        self.dense = np.asarray(dense, np.float64)
        self.shape = (self.dense.shape[0], self.sparse.shape[1] + self.dense.shape[1])

    def __getitem__(self, rows) -> "SideBySide":
        return SideBySide(self.sparse[rows], self.dense[rows])

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        split = self.sparse.shape[1]
        return np.asarray(self.sparse @ v[:split]) + self.dense @ v[split:]

    def with_bias(self) -> "SideBySide":
        """The rows with a constant 1 appended (the last column)."""
        return SideBySide(self.sparse, np.hstack([self.dense, np.ones((self.shape[0], 1))]))


def _left_times(m: np.ndarray, x) -> np.ndarray:
    """m @ x for dense m [F, n] and x [n, d] (dense, CSR or `SideBySide`): float64 [F, d]."""
    if isinstance(x, SideBySide):
        return np.hstack([_left_times(m, x.sparse), m @ x.dense])
    if scipy.sparse.issparse(x):
        return np.asarray((x.T @ m.T).T)
    return m @ x


def _objective(w, x, sign, cost):
    """Per child: ½‖w_f‖² + Σ_i cost_if · max(0, 1 − sign_if · x_i·w_f)², float64 [F]."""
    viol = np.maximum(0.0, 1.0 - sign * (x @ w.T))
    return 0.5 * np.sum(w * w, axis=1) + np.sum(cost * viol * viol, axis=0)


def _conjugate_gradient(hessian_times, rhs, iterations: int, tol: float):
    """Solves H_f s_f = rhs_f for every row f of rhs [F, d] at once (H_f positive definite)."""
    s = np.zeros_like(rhs)
    r = rhs.copy()
    p = r.copy()
    rr = np.sum(r * r, axis=1)
    stop = tol * tol * np.maximum(rr, 1e-300)
    for _ in range(iterations):
        live = rr > stop
        if not live.any():
            break
        hp = hessian_times(p)
        alpha = np.where(live, rr / np.maximum(np.sum(p * hp, axis=1), 1e-300), 0.0)
        s += alpha[:, None] * p
        r -= alpha[:, None] * hp
        rr_new = np.sum(r * r, axis=1)
        p = r + (rr_new / np.maximum(rr, 1e-300))[:, None] * p
        rr = rr_new
    return s


def fit_squared_hinge(x: np.ndarray, sign: np.ndarray, cost: np.ndarray, *, max_newton: int = 5,
                      cg_iterations: int = 20, tol: float = 1e-6) -> np.ndarray:
    """The F squared-hinge SVMs over shared rows, solved by Newton's method with conjugate gradients.

    Args:
      x: float [n, d], dense, CSR or `SideBySide`, the rows (the bias feature included).
      sign: float [n, F], +1 / −1 per row and problem.
      cost: float [n, F], C_i per row and problem (> 0).

    Returns:
      float64 [F, d], each problem's minimiser of ½‖w‖² + Σ_i C_i max(0, 1 − y_i x_i·w)², to within
      `max_newton` steps of `cg_iterations` each (the defaults stop early, as PECOS's solver does; more of
      both reach the exact minimiser).
    """
    if scipy.sparse.issparse(x):
        x = scipy.sparse.csr_matrix(x, dtype=np.float64)
    elif not isinstance(x, SideBySide):
        x = np.asarray(x, np.float64)
    sign, cost = np.asarray(sign, np.float64), np.asarray(cost, np.float64)
    w = np.zeros((sign.shape[1], x.shape[1]))
    first = None
    for _ in range(max_newton):
        viol = 1.0 - sign * (x @ w.T)
        coef = np.where(viol > 0, cost, 0.0)
        grad = w - 2.0 * _left_times((coef * sign * viol).T, x)
        norm = np.linalg.norm(grad, axis=1)
        first = norm if first is None else first
        if np.all(norm <= tol * np.maximum(first, 1.0)):
            break
        # The generalised Hessian of the squared hinge: I + 2 Σ_{i violated} C_i x_i x_iᵀ.
        step = _conjugate_gradient(lambda v: v + 2.0 * _left_times((coef * (x @ v.T)).T, x), -grad, cg_iterations,
                                   1e-3)
        before, slope, t = _objective(w, x, sign, cost), np.sum(grad * step, axis=1), np.ones(len(w))
        for _ in range(30):  # backtracking per problem (Armijo)
            ok = _objective(w + t[:, None] * step, x, sign, cost) <= before + 0.01 * t * slope
            if ok.all():
                break
            t = np.where(ok, t, t / 2)
        w = w + t[:, None] * step
    return w


def bootstrap_linear(embeddings: np.ndarray, counts: scipy.sparse.csr_matrix, matching: scipy.sparse.csr_matrix,
                     children: np.ndarray, *, weighted: bool, cp: float = 100.0, cn: float = 100.0,
                     exact: bool = False, what: str = "bootstrap"):
    """A level's starting head: one squared-hinge SVM per cluster (module docstring).

    Args:
      embeddings: float32 [N, H], the previous encoder's raw embeddings of the training rows (or any
        features of them, dense, CSR or `SideBySide`: the concat matcher fits [TF-IDF ⊕ E] the same way).
      counts: CSR [N, K_l], how many of row i's labels lie below cluster c of the level.
      matching: CSR [N, K_{l−1}], nonzero where row i is active for parent p (tfn and/or man).
        The parents of a row's positives are added, so that every positive trains its cluster.
      children: int32 [K_{l−1}, F], each parent's clusters (−1 padded).
      weighted: positives cost Cp × their count (`weighted-linear`) instead of Cp.
      exact: solve each SVM to its minimum instead of `fit_squared_hinge`'s early stop.
      what: the fit's name in the log line.

    Returns:
      (kernel float32 [K_l, H], bias float32 [K_l]); a cluster whose parent no row reaches stays zero.
    """
    start = time.time()
    num_rows, dim = embeddings.shape
    counts = scipy.sparse.csr_matrix(counts)
    parent_of = np.full(counts.shape[1], -1, np.int64)
    for p, kids in enumerate(children):
        parent_of[kids[kids >= 0]] = p
    # The parents of the row's positive clusters (tfn) join its matching rows.
    positives = counts.tocoo()
    true_parents = scipy.sparse.csr_matrix((np.ones(positives.nnz), (positives.row, parent_of[positives.col])),
                                           shape=matching.shape)
    active = (scipy.sparse.csr_matrix(matching, dtype=np.float64) + true_parents).tocsc()
    counts_csc = counts.tocsc()
    weights = np.zeros((counts.shape[1], dim + 1))
    if isinstance(embeddings, SideBySide):
        x_all = embeddings.with_bias()
    elif scipy.sparse.issparse(embeddings):
        x_all = scipy.sparse.hstack([embeddings, np.ones((num_rows, 1))], format="csr", dtype=np.float64)
    else:
        x_all = np.hstack([np.asarray(embeddings, np.float64), np.ones((num_rows, 1))])
    solver = {"max_newton": 30, "cg_iterations": 100} if exact else {}
    for p, kids in enumerate(children):
        kids = kids[kids >= 0]
        rows = active.indices[active.indptr[p]:active.indptr[p + 1]]
        if not kids.size or not rows.size:
            continue
        y = counts_csc[:, kids][rows].toarray()
        cost = np.where(y > 0, cp * (y if weighted else 1.0), cn)
        weights[kids] = fit_squared_hinge(x_all[rows], np.where(y > 0, 1.0, -1.0), cost, **solver)
    log.info("%s: %d clusters fitted on %d rows in %.1fs", what, counts.shape[1], num_rows, time.time() - start)
    return weights[:, :dim].astype(np.float32), weights[:, dim].astype(np.float32)


def bootstrap_inherit(parent_kernel: np.ndarray, parent_bias: np.ndarray, parent_of: np.ndarray):
    """Each cluster starts as its parent's vector: (float32 [K_l, H], float32 [K_l])."""
    return parent_kernel[parent_of].astype(np.float32), parent_bias[parent_of].astype(np.float32)
