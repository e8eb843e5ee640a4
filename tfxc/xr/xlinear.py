"""XR-Linear's node classifiers solved on a label tree: the ranker of an XR-Transformer run, fitted as PECOS fits it.

PECOS trains XR-Transformer's ranker as an XR-Linear model on [X ⊕ E], X the rows' TF-IDF and E
their row-normalised embeddings (xr-transformer.md §3; algorithms.md §1.4): at every level of the
tree, each node is a squared-hinge SVM (C = 1, a bias feature of 1) trained on the rows active for
its parent — the rows with a label below the parent (teacher-forced negatives, `tfn`) — on the full
sparse rows, and its weights below `threshold` in magnitude are dropped. A node's sparse support is
then whatever features its problem kept, a few at the leaves, thousands at the top.

`fit_tree_linear` solves those problems with `tfxc.xr.bootstrap.fit_squared_hinge` (batched
Newton-CG over a parent's children, which share the parent's rows), each on the columns its rows
use only. The result, a `TreeLinear`, is what `tfxc.heads.label_tree.LabelTreeHead` scores: per
level a dense kernel on E, a bias, and a sparse kernel on a per-node support of input features.
Two solutions on the same tree mix linearly (`TreeLinear.mix`): a node's logit under the mix is the
mix of its logits, so the ensemble of the transformer's ranker with the TF-IDF model it contains is
itself one such model, served at the cost of one.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from tfxc.xr.bootstrap import SideBySide, fit_squared_hinge

log = logging.getLogger("tfxc.xr")

# PECOS's XLinear defaults: weights below 0.1 in magnitude are pruned after each node is solved.
THRESHOLD = 0.1
SOLUTION_FORMAT = "tfxc-tree-linear-1"


@dataclass
class TreeLinear:
    """Solved node classifiers of a label tree: node c of level t scores
    v_c = kernel[t][c]·e + bias[t][c] + Σ_j weights[t][c, j] · x[support[t][c, j]].

    Attributes:
      kernel: per level float32 [K_t, H] (H = 0 without an embedding).
      bias: per level float32 [K_t].
      support: per level int32 [K_t, S_t], each node's input features, ascending, −1 padded.
      weights: per level float32 [K_t, S_t], 0 at the padding.
    """

    kernel: list
    bias: list
    support: list
    weights: list

    def mix(self, other: "TreeLinear", alpha: float) -> "TreeLinear":
        """alpha · self + (1 − alpha) · other, on the same tree (an absent embedding counts as zero weights): the
        sparse support of each node is the union of both."""
        kernel, bias, support, weights = [], [], [], []
        for t in range(len(self.bias)):
            dim = max(self.kernel[t].shape[1], other.kernel[t].shape[1])
            kernel.append(alpha * _widen(self.kernel[t], dim) + (1 - alpha) * _widen(other.kernel[t], dim))
            bias.append((alpha * self.bias[t] + (1 - alpha) * other.bias[t]).astype(np.float32))
            a = nodes_as_csr(self.support[t], self.weights[t], 0)
            b = nodes_as_csr(other.support[t], other.weights[t], 0)
            width = max(a.shape[1], b.shape[1])
            a.resize(a.shape[0], width)
            b.resize(b.shape[0], width)
            # A node keeps every entry of both, even where the mix is 0 (alpha 0 or 1): the support is the same for
            # every alpha, so mixes can be tried on one built model.
            pattern = (abs(a) + abs(b)).tocsr()
            s, w = _padded(pattern, (alpha * a + (1 - alpha) * b).tocsr())
            support.append(s)
            weights.append(w)
        return TreeLinear(kernel, bias, support, weights)

    def save(self, path: str) -> None:
        from tfxc.utils.io import atomic_writer

        arrays = {}
        for t in range(len(self.bias)):
            arrays.update({f"kernel_{t}": self.kernel[t], f"bias_{t}": self.bias[t], f"support_{t}": self.support[t],
                           f"weights_{t}": self.weights[t]})
        with atomic_writer(path, binary=True) as f:
            np.savez(f, format=np.array(SOLUTION_FORMAT), **arrays)

    @classmethod
    def load(cls, path: str) -> "TreeLinear":
        from tfxc.errors import DataError
        from tfxc.utils.files import read_npz

        f = read_npz(path, advice="delete it: the ranker is solved again")
        if "format" not in f or str(f["format"]) != SOLUTION_FORMAT:
            raise DataError(f"not a solved ranker file (format {SOLUTION_FORMAT})", path=path)
        levels = sum(name.startswith("bias_") for name in f)
        return cls(*([f[f"{kind}_{t}"] for t in range(levels)] for kind in ("kernel", "bias", "support", "weights")))


def _widen(kernel: np.ndarray, dim: int) -> np.ndarray:
    return kernel if kernel.shape[1] == dim else np.zeros((kernel.shape[0], dim), np.float32)


def nodes_as_csr(support: np.ndarray, weights: np.ndarray, width: int) -> scipy.sparse.csr_matrix:
    """The per-node (feature, weight) lists as CSR float64 [K, max(width, the largest feature + 1)]."""
    keep = support >= 0
    rows = np.nonzero(keep)[0]
    cols = support[keep]
    width = max(width, int(cols.max()) + 1 if cols.size else 0)
    return scipy.sparse.csr_matrix((weights[keep].astype(np.float64), (rows, cols)), shape=(support.shape[0], width))


def _padded(pattern: scipy.sparse.csr_matrix, values: scipy.sparse.csr_matrix):
    """The nonzero pattern of CSR [K, D] as (support int32 [K, S], weights float32 [K, S]): S the longest row,
    features ascending, −1 / 0 padded; the weights read from `values` (same shape) at those features."""
    pattern.sort_indices()
    lengths = np.diff(pattern.indptr)
    width = max(int(lengths.max()) if lengths.size else 0, 1)
    support = np.full((pattern.shape[0], width), -1, np.int32)
    weights = np.zeros((pattern.shape[0], width), np.float32)
    slots = np.arange(pattern.nnz) - np.repeat(pattern.indptr[:-1], lengths)
    rows = np.repeat(np.arange(pattern.shape[0]), lengths)
    support[rows, slots] = pattern.indices
    weights[rows, slots] = _values_at(values, rows, pattern.indices)
    return support, weights


def _values_at(m: scipy.sparse.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """m[rows[i], cols[i]] for every i (0 where m has no entry), float32, by a sorted search of m's entries."""
    coo = m.tocoo()
    keys = coo.row.astype(np.int64) * m.shape[1] + coo.col
    order = np.argsort(keys, kind="stable")
    keys, data = keys[order], coo.data[order]
    wanted = rows.astype(np.int64) * m.shape[1] + cols
    if not keys.size:
        return np.zeros(wanted.size, np.float32)
    at = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return np.where(keys[at] == wanted, data[at], 0.0).astype(np.float32)


def truncate_rows(x: scipy.sparse.csr_matrix, max_nnz: int) -> scipy.sparse.csr_matrix:
    """Each row's `max_nnz` largest values (what `tfxc.encoders.sparse_input` hands the head), CSR float32."""
    from tfxc.kernels.rows import row_top_k

    x = scipy.sparse.csr_matrix(x, dtype=np.float32)
    if not x.nnz or np.diff(x.indptr).max() <= max_nnz:
        return x
    ids, values = row_top_k(x, max_nnz)
    keep = ids >= 0
    rows = np.nonzero(keep)[0]
    out = scipy.sparse.csr_matrix((values[keep], (rows, ids[keep])), shape=x.shape, dtype=np.float32)
    out.sort_indices()
    return out


def _compact_columns(x: scipy.sparse.csr_matrix):
    """x without its all-zero columns: (CSR [n, d'], the kept columns int64 [d'], ascending)."""
    cols = np.unique(x.indices)
    return scipy.sparse.csr_matrix((x.data, np.searchsorted(cols, x.indices), x.indptr), shape=(x.shape[0], cols.size)), cols


def fit_tree_linear(x: scipy.sparse.csr_matrix, embeddings: np.ndarray | None, y: scipy.sparse.csr_matrix, tree, *,
                    threshold: float = THRESHOLD, max_support: int | list[int] = 0, cost: float = 1.0) -> TreeLinear:
    """Solves every node of `tree` (module docstring).

    Args:
      x: CSR [N, D], the rows' sparse features (the TF-IDF), as the model will see them.
      embeddings: float [N, H], the rows' unit-norm embeddings, or None (a model of x alone).
      y: CSR [N, L], the labels.
      tree: a `tfxc.tree.LabelTree` over the L labels.
      threshold: sparse weights with |w| below it are dropped (PECOS: 0.1).
      max_support: > 0 keeps at most this many sparse weights per node, the largest |w|; a list: one such
        bound per level.
      cost: C for positives and negatives alike.

    Returns:
      the `TreeLinear`; nodes that no training row reaches score 0.
    """
    from tfxc.xr.levels import level_counts

    start = time.time()
    x = scipy.sparse.csr_matrix(x, dtype=np.float64)
    x.sort_indices()
    num_rows = x.shape[0]
    dense = np.zeros((num_rows, 0)) if embeddings is None else np.asarray(embeddings, np.float64)
    kernel, bias, support, weights = [], [], [], []
    caps = list(max_support) if isinstance(max_support, (list, tuple)) else [max_support] * len(tree.sizes)
    for level, size in enumerate(tree.sizes):
        cap = caps[level]
        counts = level_counts(y, tree, level).tocsc()
        if level == 0:
            children = np.arange(size, dtype=np.int64)[None, :]
            active = scipy.sparse.csc_matrix(np.ones((num_rows, 1)))
        else:
            children = tree.children(level)
            active = level_counts(y, tree, level - 1).tocsc()
        level_kernel = np.zeros((size, dense.shape[1]), np.float32)
        level_bias = np.zeros(size, np.float32)
        rows_of, cols_of, vals_of = [], [], []
        for p, kids in enumerate(children):
            kids = kids[kids >= 0]
            rows = active.indices[active.indptr[p]:active.indptr[p + 1]]
            if not kids.size or not rows.size:
                continue
            sub, cols = _compact_columns(x[rows])
            label = counts[:, kids][rows].toarray() > 0
            w = fit_squared_hinge(SideBySide(sub, dense[rows]).with_bias(), np.where(label, 1.0, -1.0),
                                  np.full(label.shape, cost))
            level_kernel[kids] = w[:, cols.size:-1]
            level_bias[kids] = w[:, -1]
            sparse_w = w[:, :cols.size]
            keep = np.abs(sparse_w) >= threshold
            if cap:
                keep &= _top_per_row(np.abs(sparse_w), cap)
            r, c = np.nonzero(keep)
            rows_of.append(kids[r])
            cols_of.append(cols[c])
            vals_of.append(sparse_w[r, c])
        cat = (lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))
        solved = scipy.sparse.csr_matrix((cat(vals_of, np.float64), (cat(rows_of, np.int64), cat(cols_of, np.int64))),
                                         shape=(size, x.shape[1]))
        s, w = _padded(solved, solved)
        kernel.append(level_kernel)
        bias.append(level_bias)
        support.append(s)
        weights.append(w)
        log.info("XR-Linear level %d: %d nodes, sparse weights per node %.1f on average (at most %d)", level, size,
                 solved.nnz / max(size, 1), s.shape[1])
    log.info("XR-Linear on %s: %d levels solved on %d rows in %.1fs",
             ("[TF-IDF (+) E]" if x.shape[1] else "E") if embeddings is not None else "the TF-IDF", len(tree.sizes),
             num_rows,
             time.time() - start)
    return TreeLinear(kernel, bias, support, weights)


def _top_per_row(values: np.ndarray, k: int) -> np.ndarray:
    """bool [F, d]: each row's k largest entries."""
    if values.shape[1] <= k:
        return np.ones(values.shape, bool)
    top = np.argpartition(-values, k - 1, axis=1)[:, :k]
    mask = np.zeros(values.shape, bool)
    np.put_along_axis(mask, top, True, axis=1)
    return mask


def cached_fit(path: str, fit) -> TreeLinear:
    """`fit()`'s solution, saved at `path` once (a resumed run reads it back instead of solving again)."""
    if os.path.exists(path):
        return TreeLinear.load(path)
    solution = fit()
    solution.save(path)
    return solution
