"""Label trees for hierarchical heads: PIFA label features, balanced 2-means clustering, the level chain."""

from __future__ import annotations

import logging
import time

from tfxc.tree.kmeans import balanced_kmeans_codes, tree_depth
from tfxc.tree.label_tree import LabelTree
from tfxc.tree.pifa import cached_split_pifa, encoder_pifa, pifa, split_pifa

log = logging.getLogger("tfxc.tree")


def cluster_labels(z, *, max_leaf_size: int = 100, nr_splits: int = 16, min_codes: int | None = None,
                   seed: int = 0, max_iter: int = 20, spherical: bool = True) -> LabelTree:
    """The PECOS hierarchical label tree of label features `z` [L, D] (algorithms.md §1.3)."""
    start = time.time()
    codes, depth = balanced_kmeans_codes(z, max_leaf_size=max_leaf_size, seed=seed, max_iter=max_iter,
                                         spherical=spherical)
    tree = LabelTree.from_leaf_codes(codes, 2 ** depth, nr_splits=nr_splits, min_codes=min_codes)
    log.info("label tree: %s, clustered in %.1fs", tree.describe(), time.time() - start)
    return tree


__all__ = ["LabelTree", "balanced_kmeans_codes", "cached_split_pifa", "cluster_labels", "encoder_pifa", "pifa",
           "split_pifa", "tree_depth"]
