"""Which input features each tree node may weigh: the top of its PIFA centroid.

XR-Linear's node classifiers are sparse linear models over the input features
(PECOS prunes weights below a threshold after training; algorithms.md §1.4).
A TensorFlow model needs that sparsity pattern fixed before training, so each
node gets the `size` features with the largest mass in its PIFA centroid, the
sum of the label features (§1.2) of the labels below it: the features its
positive rows use most, where a trained sparse model keeps most of its weight.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from tfxc.utils.io import atomic_writer

SUPPORT_FORMAT = "tfxc-node-support-1"


def top_features_per_row(m: scipy.sparse.csr_matrix, size: int) -> np.ndarray:
    """int32 [rows, size]: each row's column ids by decreasing value (ties: lower id first), −1 padded.

    Only positive entries count.
    """
    m = scipy.sparse.csr_matrix(m)
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    keep = m.data > 0
    rows, cols, values = rows[keep], m.indices[keep], m.data[keep]
    order = np.lexsort((cols, -values, rows))
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, np.arange(m.shape[0]))
    rank = np.arange(rows.size) - starts[rows]
    out = np.full((m.shape[0], size), -1, np.int32)
    picked = rank < size
    out[rows[picked], rank[picked]] = cols[picked]
    return out


def node_feature_support(tree, z, size: int) -> list[np.ndarray]:
    """The features of every node of every level: one int32 [K_t, size] array per level, −1 padded.

    Args:
      tree: a `LabelTree` over L labels.
      z: label features [L, D] (PIFA; CSR or dense), row l for label l.
      size: features per node.
    """
    z = scipy.sparse.csr_matrix(z, dtype=np.float32)
    leaves = z if tree.leaf_labels is None else z[tree.leaf_labels]
    support = []
    for level, count in enumerate(tree.sizes):
        below = tree.ancestors(level)  # the level's node above each leaf
        membership = scipy.sparse.csr_matrix(
            (np.ones(below.size, np.float32), (below, np.arange(below.size))), shape=(count, below.size))
        support.append(top_features_per_row(membership @ leaves, size))
    return support


def save_support(path: str, support: list[np.ndarray]) -> None:
    with atomic_writer(path, binary=True) as f:
        np.savez(f, format=np.array(SUPPORT_FORMAT), **{f"level_{t}": s for t, s in enumerate(support)})


def load_support(path: str) -> list[np.ndarray]:
    from tfxc.errors import DataError

    with np.load(path, allow_pickle=False) as f:
        if "format" not in f or str(f["format"]) != SUPPORT_FORMAT:
            raise DataError(f"not a node feature support file (format {SUPPORT_FORMAT})", path=path)
        return [f[f"level_{t}"].astype(np.int32) for t in range(len(f.files) - 1)]
