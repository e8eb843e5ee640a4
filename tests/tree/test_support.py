"""Node feature supports: the top of each node's PIFA centroid, by hand."""

import numpy as np
import scipy.sparse

from tfxc.tree import LabelTree
from tfxc.tree.support import (load_support, node_centroid_support, node_feature_support, save_support,
                               top_features_per_row)


def test_top_features_by_value_then_id_and_positive_only():
    m = scipy.sparse.csr_matrix(np.array([[0.2, 0.0, 0.5, 0.2, -1.0], [0.0, 0.0, 0.0, 0.0, 0.3]], np.float32))
    np.testing.assert_array_equal(top_features_per_row(m, 3), [[2, 0, 3], [4, -1, -1]])


def test_every_level_weighs_the_top_features_of_the_labels_below(tmp_path):
    # 4 labels in 2 clusters {0, 1} and {2, 3}.
    tree = LabelTree.from_leaf_codes(np.array([0, 0, 1, 1]), 2, nr_splits=2)
    z = np.array([[0.8, 0.6, 0.0, 0.0],
                  [0.0, 0.6, 0.8, 0.0],
                  [0.0, 0.0, 0.0, 1.0],
                  [0.6, 0.0, 0.0, 0.8]], np.float32)
    support = node_feature_support(tree, z, 2)
    assert tree.sizes == [2, 4]
    # Cluster 0 sums to [0.8, 1.2, 0.8, 0]: feature 1, then 0 before 2 (a tie goes to the lower id).
    np.testing.assert_array_equal(support[0], [[1, 0], [3, 0]])
    np.testing.assert_array_equal(support[1], [[0, 1], [2, 1], [3, -1], [3, 0]])
    # The weights: each node's centroid on its features, unit norm (cluster 1 sums to [0.6, 0, 0, 1.8]).
    _, weights = node_centroid_support(tree, z, 2)
    np.testing.assert_allclose(weights[0], [[1.2 / np.sqrt(1.44 + 0.64), 0.8 / np.sqrt(1.44 + 0.64)],
                                            [1.8 / np.sqrt(3.24 + 0.36), 0.6 / np.sqrt(3.24 + 0.36)]], rtol=1e-6)
    np.testing.assert_allclose(weights[1], [[0.8, 0.6], [0.8, 0.6], [1.0, 0.0], [0.8, 0.6]], rtol=1e-6)
    # Feature weights (the idf) reweigh the centroids first: feature 2 weighed 3 × leads cluster 0
    # ([0.8, 1.2, 2.4, 0]), and label 1 ([0, 0.6, 2.4, 0]).
    idf_support, idf_weights = node_centroid_support(tree, z, 2, feature_weights=np.array([1, 1, 3, 1], np.float32))
    np.testing.assert_array_equal(idf_support[0][0], [2, 1])
    np.testing.assert_array_equal(idf_support[1][1], [2, 1])
    np.testing.assert_allclose(idf_weights[1][1], np.array([2.4, 0.6]) / np.hypot(2.4, 0.6), rtol=1e-6)
    save_support(str(tmp_path / "s.npz"), support, weights)
    for got, want in zip(load_support(str(tmp_path / "s.npz")), support):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(load_support(str(tmp_path / "s.npz"), with_weights=True)[1], weights):
        np.testing.assert_array_equal(got, want)


def test_a_support_file_without_weights_reads_as_zero_weights(tmp_path):
    path = str(tmp_path / "v1.npz")
    np.savez(path, format=np.array("tfxc-node-support-1"), level_0=np.array([[1, 0]], np.int32),
             level_1=np.array([[0, -1], [2, 1]], np.int32))
    support, weights = load_support(path, with_weights=True)
    assert [s.shape for s in support] == [(1, 2), (2, 2)]
    assert all(w.shape == s.shape and not w.any() for w, s in zip(weights, support))


def test_a_tree_over_some_labels_reads_their_rows():
    tree = LabelTree.from_leaf_codes(np.array([0, 1]), 2, nr_splits=2).over_labels(np.array([1, 3]), 4)
    z = np.eye(4, dtype=np.float32)
    np.testing.assert_array_equal(node_feature_support(tree, z, 1)[-1], [[1], [3]])


def test_deep_trees_sum_each_level_from_the_one_below_as_from_all_its_labels():
    # 64 labels, 16 leaves of 4, 4-way splits: levels of 4, 16 and 64 nodes; random sparse label features.
    rng = np.random.default_rng(0)
    tree = LabelTree.from_leaf_codes(rng.permutation(np.repeat(np.arange(16), 4)), 16, nr_splits=4)
    assert tree.sizes == [4, 16, 64]
    z = scipy.sparse.random(64, 40, density=0.2, format="csr", dtype=np.float32, random_state=1)
    before = z.data.copy()
    idf = rng.uniform(0.5, 2.0, 40).astype(np.float32)
    features, weights = node_centroid_support(tree, z, 5, feature_weights=idf)
    np.testing.assert_array_equal(z.data, before)  # the (cached) features are read, never scaled in place
    dense = z.toarray() * idf
    for level, size in enumerate(tree.sizes):
        centroids = np.zeros((size, 40), np.float32)
        np.add.at(centroids, tree.ancestors(level), dense)  # every label under each node, directly
        want = top_features_per_row(scipy.sparse.csr_matrix(centroids), 5)
        np.testing.assert_array_equal(features[level], want)
        picked = np.take_along_axis(centroids, np.maximum(want, 0), axis=1) * (want >= 0)
        np.testing.assert_allclose(weights[level], picked / np.linalg.norm(picked, axis=1, keepdims=True),
                                   rtol=1e-5, atol=1e-7)


def test_a_support_padded_before_its_features_is_refused_with_the_level_and_file(tmp_path):
    import pytest

    from tfxc.errors import DataError

    path = str(tmp_path / "s.npz")
    save_support(path, [np.array([[4, 2, -1]], np.int32), np.array([[0, -1, 3], [1, 2, 5]], np.int32)])
    with pytest.raises(DataError, match=r"s\.npz: level 1: every node's features must come first"):
        load_support(path)
