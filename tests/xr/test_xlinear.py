"""XR-Linear's node problems on a label tree (`tfxc.xr.xlinear`), on medical's real BoW rows: every node is
liblinear's squared-hinge SVM (scikit-learn's LinearSVC, the solver PECOS builds on) on its parent's rows,
pruned as PECOS prunes; a mix of two solutions scores the mix of their logits; a solution survives a save."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import scipy.sparse

from tfxc.api import load_xc
from tfxc.tree import cluster_labels
from tfxc.tree.pifa import normalize_rows, pifa
from tfxc.xr.levels import level_counts
from tfxc.xr.xlinear import TreeLinear, fit_tree_linear, truncate_rows


@pytest.fixture(scope="module")
def medical(shared_data):
    x, y = load_xc(os.path.join(shared_data, "medical", "train.txt"))
    x = normalize_rows(scipy.sparse.csr_matrix(x, dtype=np.float32))
    tree = cluster_labels(pifa(x, y.astype(np.float32)), max_leaf_size=4, nr_splits=4, skip_unseen=True)
    embeddings = normalize_rows(np.random.default_rng(0).normal(size=(x.shape[0], 8)).astype(np.float32))
    return x, y, tree, embeddings


def node_logits(solution: TreeLinear, level: int, x, embeddings=None) -> np.ndarray:
    """float64 [N, K_level]: every row's logit at every node of the level, from the solution's arrays."""
    support, weights = solution.support[level], solution.weights[level]
    keep = support >= 0
    u = scipy.sparse.csr_matrix((weights[keep], (np.nonzero(keep)[0], support[keep])),
                                shape=(support.shape[0], x.shape[1]))
    out = np.asarray((x @ u.T).todense(), np.float64) + solution.bias[level]
    if embeddings is not None and solution.kernel[level].shape[1]:
        out += embeddings @ solution.kernel[level].T
    return out


def liblinear_objective(w, b, x, label):
    """½(‖w‖² + b²) + Σ max(0, 1 − y(w·x + b))², C = 1: the problem LinearSVC and PECOS solve per node."""
    margin = 1.0 - np.where(label, 1.0, -1.0) * (x @ w + b)
    return 0.5 * (w @ w + b * b) + np.sum(np.maximum(0.0, margin) ** 2)


def test_every_node_is_liblinear_s_svm_on_its_parent_s_rows(medical):
    from sklearn.svm import LinearSVC

    x, y, tree, _ = medical
    solution = fit_tree_linear(x, None, y, tree, threshold=0.0)
    dense_x = x.toarray().astype(np.float64)
    checked = 0
    for level in range(tree.num_levels):
        counts = level_counts(y, tree, level).toarray() > 0
        parent_rows = (np.ones((x.shape[0], 1), bool) if level == 0
                       else level_counts(y, tree, level - 1).toarray() > 0)
        parent_of = (np.zeros(tree.sizes[0], np.int64) if level == 0 else tree.parents[level - 1])
        logits = node_logits(solution, level, x)
        for node in range(0, tree.sizes[level], max(1, tree.sizes[level] // 6)):  # a spread of nodes a level
            rows = parent_rows[:, parent_of[node]]
            label = counts[rows, node]
            if label.all() or not label.any():
                continue
            svm = LinearSVC(C=1.0, loss="squared_hinge", dual=True, intercept_scaling=1.0, tol=1e-8,
                            max_iter=100_000).fit(dense_x[rows], label)
            reference = liblinear_objective(svm.coef_[0], svm.intercept_[0], dense_x[rows], label)
            w = np.zeros(x.shape[1])
            s = solution.support[level][node]
            w[s[s >= 0]] = solution.weights[level][node][s >= 0]
            ours = liblinear_objective(w, solution.bias[level][node], dense_x[rows], label)
            # PECOS's solver stops loosely too: within a percent of the minimum, and the same ranking of the rows.
            assert reference * (1 - 1e-6) <= ours <= reference * 1.01, (level, node, ours, reference)
            np.testing.assert_allclose(logits[rows, node], svm.decision_function(dense_x[rows]), atol=0.05)
            checked += 1
    assert checked >= 8


def test_pruning_keeps_the_large_weights_and_caps_each_node(medical):
    x, y, tree, embeddings = medical
    full = fit_tree_linear(x, embeddings, y, tree, threshold=0.0)
    pruned = fit_tree_linear(x, embeddings, y, tree, threshold=0.1)
    capped = fit_tree_linear(x, embeddings, y, tree, threshold=0.1, max_support=5)
    for level in range(tree.num_levels):
        np.testing.assert_array_equal(pruned.kernel[level], full.kernel[level])
        kept = pruned.support[level] >= 0
        assert np.all(np.abs(pruned.weights[level][kept]) >= 0.1)
        assert kept.sum() < (full.support[level] >= 0).sum()
        assert capped.support[level].shape[1] <= 5
        # Each capped node keeps its 5 largest pruned weights.
        for node in range(tree.sizes[level]):
            big = np.sort(np.abs(pruned.weights[level][node][kept[node]]))[::-1][:5]
            got = np.sort(np.abs(capped.weights[level][node][capped.support[level][node] >= 0]))[::-1]
            np.testing.assert_allclose(got, big)


def test_a_cap_per_level_binds_each_level_at_its_own_width(medical):
    from tfxc.xr.ranker import LEVEL_SUPPORT_ENTRIES, support_caps

    x, y, tree, embeddings = medical
    pruned = fit_tree_linear(x, embeddings, y, tree, threshold=0.1)
    widths = [s.shape[1] for s in pruned.support]
    caps = [widths[0], 3] + [2] * (tree.num_levels - 2)
    capped = fit_tree_linear(x, embeddings, y, tree, threshold=0.1, max_support=caps)
    assert [s.shape[1] for s in capped.support] == [min(w, c) for w, c in zip(widths, caps)]
    np.testing.assert_array_equal(capped.support[0], pruned.support[0])
    # The few nodes at the top keep all their weights; the floor holds on the wide levels.
    assert support_caps([4, 64, 1 << 20], 4096) == [LEVEL_SUPPORT_ENTRIES // 4, LEVEL_SUPPORT_ENTRIES // 64, 4096]


def test_a_mix_scores_the_mix_of_the_logits_and_survives_a_save(medical, tmp_path):
    x, y, tree, embeddings = medical
    joint = fit_tree_linear(x, embeddings, y, tree)
    tfidf = fit_tree_linear(x, None, y, tree)
    for alpha in (0.0, 0.3, 1.0):
        mix = joint.mix(tfidf, alpha)
        for level in range(tree.num_levels):
            # The support is the union of both, whatever α: one model serves every mix.
            assert mix.support[level].shape == joint.mix(tfidf, 0.5).support[level].shape
            np.testing.assert_allclose(node_logits(mix, level, x, embeddings),
                                       alpha * node_logits(joint, level, x, embeddings)
                                       + (1 - alpha) * node_logits(tfidf, level, x), atol=1e-4)
    joint.save(str(tmp_path / "s.npz"))
    back = TreeLinear.load(str(tmp_path / "s.npz"))
    for mine, theirs in zip((joint.kernel, joint.bias, joint.support, joint.weights),
                            (back.kernel, back.bias, back.support, back.weights)):
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a, b)


def test_rows_are_truncated_as_the_model_reads_them():
    x = scipy.sparse.csr_matrix(np.array([[0.1, 0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 0.7, 0.0, 0.0]], np.float32))
    got = truncate_rows(x, 2).toarray()
    np.testing.assert_array_equal(got, np.array([[0.0, 0.5, 0.0, 0.3, 0.0], [0.0, 0.0, 0.7, 0.0, 0.0]], np.float32))


def test_without_sparse_features_the_nodes_are_solved_on_the_embedding_alone(medical, caplog):
    # sparse_support 0 (the ablation's ranker without the TF-IDF): rows with no sparse columns.
    x, y, tree, embeddings = medical
    empty = scipy.sparse.csr_matrix((x.shape[0], 0), dtype=np.float32)
    with caplog.at_level(logging.INFO, logger="tfxc.xr"):
        solution = fit_tree_linear(empty, embeddings, y, tree)
    for level in range(tree.num_levels):
        assert np.all(solution.support[level] < 0) and np.any(solution.kernel[level] != 0)
    assert any(message.startswith("XR-Linear on E:") for message in caplog.messages), caplog.messages
