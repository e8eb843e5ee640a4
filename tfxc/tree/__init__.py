"""Label trees for hierarchical heads: PIFA label features, balanced 2-means clustering, the level chain."""

from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import scipy.sparse

from tfxc.errors import DataError
from tfxc.tree.kmeans import balanced_kmeans_codes, tree_depth
from tfxc.tree.label_tree import LabelTree
from tfxc.tree.pifa import cached_split_pifa, encoder_pifa, pifa, split_pifa
from tfxc.utils.files import read_cache

log = logging.getLogger("tfxc.tree")


def labels_with_features(z) -> np.ndarray:
    """int64 ids of the labels whose feature row is not all zero (PIFA: the labels some training row has)."""
    if scipy.sparse.issparse(z):
        z = scipy.sparse.csr_matrix(z)
        z.eliminate_zeros()
        return np.flatnonzero(np.diff(z.indptr))
    return np.flatnonzero(np.any(np.asarray(z) != 0, axis=1))


def cluster_labels(z, *, max_leaf_size: int = 100, nr_splits: int = 16, min_codes: int | None = None,
                   seed: int = 0, max_iter: int = 20, spherical: bool = True, skip_unseen: bool = False) -> LabelTree:
    """The PECOS hierarchical label tree of label features `z` [L, D] (algorithms.md §1.3).

    With `skip_unseen`, only the labels with a non-zero feature row are clustered
    and the tree stands for those (`LabelTree.leaf_labels`) out of L.
    """
    start = time.time()
    num_labels = z.shape[0]
    kept = labels_with_features(z) if skip_unseen else np.arange(num_labels)
    if kept.size < 2:
        raise DataError(f"{kept.size} of {num_labels} labels have features (training rows): too few for a label tree")
    if kept.size < num_labels:
        log.info("label tree: %d of %d labels occur in the train split; the others are left out", kept.size,
                 num_labels)
        z = z[kept]
    codes, depth = balanced_kmeans_codes(z, max_leaf_size=max_leaf_size, seed=seed, max_iter=max_iter,
                                         spherical=spherical)
    tree = LabelTree.from_leaf_codes(codes, 2 ** depth, nr_splits=nr_splits, min_codes=min_codes)
    log.info("label tree: %s, clustered in %.1fs", tree.describe(), time.time() - start)
    return tree.over_labels(kept, num_labels)


__all__ = ["LabelTree", "balanced_kmeans_codes", "cached_split_pifa", "cluster_labels", "encoder_pifa", "labels_with_features", "pifa",
           "split_pifa", "tree_depth"]


def cached_cluster_labels(info, **options) -> LabelTree:
    """`cluster_labels` of the train split's PIFA features (`cached_split_pifa`), kept in the converted data
    directory per set of `options` and read back afterwards: every new model directory of a tree config
    would otherwise cluster again (8.3 s for wordnet-nextword's 30,000 labels). A re-conversion replaces the
    directory, so a kept tree always belongs to the rows beside it; the clustering is deterministic in its
    options (the seed is one of them)."""
    import hashlib

    key = json.dumps(options, sort_keys=True)
    path = os.path.join(info.dir, f"label_tree-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz")
    tree = read_cache(path, LabelTree.load)
    if tree is not None:
        log.info("label tree: %s, read from %s", tree.describe(), path)
        return tree
    tree = cluster_labels(cached_split_pifa(info), **options)
    try:
        tree.save(path)
    except OSError as exc:  # a read-only data directory: fine, just not kept
        log.warning("could not keep the label tree in %s: %s", info.dir, exc)
    return tree
