"""Which input features each tree node may weigh: the top of its PIFA centroid.

XR-Linear's node classifiers are sparse linear models over the input features
(PECOS prunes weights below a threshold after training; algorithms.md §1.4).
A TensorFlow model needs that sparsity pattern fixed before training, so each
node gets the `size` features with the largest mass in its PIFA centroid, the
sum of the label features (§1.2) of the labels below it: the features its
positive rows use most, where a trained sparse model keeps most of its weight.
The centroid's values there (unit norm per node) are also a starting point for
those weights: a nearest-centroid score, which a label seen once already has
before training has given it a step.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from tfxc.kernels.rows import row_top_k
from tfxc.utils.io import atomic_writer

# Version 2 adds each node's weights on its features (`node_centroid_support`); version 1 files read as zero weights.
SUPPORT_FORMAT = "tfxc-node-support-2"
_FORMATS = ("tfxc-node-support-1", SUPPORT_FORMAT)


def top_features_per_row(m: scipy.sparse.csr_matrix, size: int, with_values: bool = False):
    """int32 [rows, size]: each row's column ids by decreasing value (ties: lower id first), −1 padded.

    Only positive entries count. With `with_values`, also float32 [rows, size]: the
    values at those ids (0 at the padding). One pass over the nonzeros (`tfxc.kernels.rows`).
    """
    ids, values = row_top_k(m, size)
    return (ids, values) if with_values else ids


def node_centroid_support(tree, z, size: int, feature_weights=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The features of every node of every level and the node's centroid on them.

    Args:
      tree: a `LabelTree` over L labels.
      z: label features [L, D] (PIFA; CSR or dense), row l for label l.
      size: features per node.
      feature_weights: None, or float32 [D]: each centroid is weighed by these per feature
        (e.g. the idf) before its top features are picked and it is scaled to unit norm.

    Returns:
      (features, weights), one array per level each: int32 [K_t, size] feature ids (−1
      padded) and float32 [K_t, size], the node's PIFA centroid (the sum of the label
      features below it) at those features, scaled to unit L2 norm per node (0 at the
      padding). A node's weights dotted with a unit-norm row are the cosine of the two
      over the node's features: the nearest-centroid score the sparse term can start from.
    """
    z = weigh_columns(z, feature_weights)
    centroids = z if tree.leaf_labels is None else z[tree.leaf_labels]
    features, weights = [None] * tree.num_levels, [None] * tree.num_levels
    # Bottom up: a node's centroid is the sum of its children's, so each level sums the (fewer, merged) rows of
    # the level below instead of all the leaves again.
    for level in reversed(range(tree.num_levels)):
        if level < tree.num_levels - 1:
            parent = tree.parents[level]
            membership = scipy.sparse.csr_matrix(
                (np.ones(parent.size, np.float32), (parent, np.arange(parent.size))),
                shape=(tree.sizes[level], parent.size))
            centroids = membership @ centroids
        features[level], weights[level] = top_unit_centroids(centroids, size)
    return features, weights


def weigh_columns(z, feature_weights=None) -> scipy.sparse.csr_matrix:
    """z as float32 CSR [L, D] with column j scaled by feature_weights[j] (None: unscaled). The result shares
    z's index arrays, never its values: a cached z stays as it was."""
    z = scipy.sparse.csr_matrix(z, dtype=np.float32)
    if feature_weights is None:
        return z
    scale = np.asarray(feature_weights, np.float32)
    return scipy.sparse.csr_matrix((z.data * scale[z.indices], z.indices, z.indptr), shape=z.shape)


def top_unit_centroids(m, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `size` largest features (`top_features_per_row`) and its values there scaled to unit
    L2 norm: int32 [rows, size] (−1 padded), float32 [rows, size] (0 at the padding)."""
    ids, values = top_features_per_row(m, size, with_values=True)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return ids, (values / np.maximum(norms, 1e-30)).astype(np.float32)


def node_feature_support(tree, z, size: int) -> list[np.ndarray]:
    """The features of every node of every level: one int32 [K_t, size] array per level, −1 padded
    (`node_centroid_support` without the weights)."""
    return node_centroid_support(tree, z, size)[0]


def save_support(path: str, support: list[np.ndarray], weights: list[np.ndarray] | None = None) -> None:
    """Writes the features per level and, if given, the node weights on them (float32, the same shapes)."""
    arrays = {f"level_{t}": s for t, s in enumerate(support)}
    if weights is not None:
        arrays.update({f"weight_{t}": w.astype(np.float32) for t, w in enumerate(weights)})
    with atomic_writer(path, binary=True) as f:
        np.savez(f, format=np.array(SUPPORT_FORMAT), **arrays)


def load_support(path: str, with_weights: bool = False):
    """The features per level (`save_support`); with `with_weights`, (features, weights), zero weights
    where the file has none."""
    from tfxc.errors import DataError

    from tfxc.utils.files import read_npz

    f = read_npz(path, advice="it is part of the trained model: restore it from a backup, or train again")
    if "format" not in f or str(f["format"]) not in _FORMATS:
        raise DataError(f"not a node feature support file (format {SUPPORT_FORMAT})", path=path)
    levels = sum(name.startswith("level_") for name in f)
    support = [f[f"level_{t}"].astype(np.int32) for t in range(levels)]
    for t, s in enumerate(support):
        # The compiled pair kernel stops a node's scan at its first −1 (`tfxc.kernels.pairs.pair_sparse_dots`).
        if s.ndim != 2 or (s.shape[1] > 1 and np.any((s[:, :-1] < 0) & (s[:, 1:] >= 0))):
            raise DataError(f"level {t}: every node's features must come first and its −1 padding last", path=path)
    if not with_weights:
        return support
    weights = [f[f"weight_{t}"].astype(np.float32) if f"weight_{t}" in f
               else np.zeros(s.shape, np.float32) for t, s in enumerate(support)]
    return support, weights
