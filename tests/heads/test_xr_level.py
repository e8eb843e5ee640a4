"""XR-Transformer's level head: active clusters from tfn / man / tfn+man, the cap, the loss against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.heads.xr_level import XrLevelHead
from tfxc.tree import LabelTree

# 8 labels -> 4 clusters (two labels each) -> 2 clusters (two each).
TREE = LabelTree(parents=(np.array([0, 0, 1, 1], np.int32), np.array([0, 0, 1, 1, 2, 2, 3, 3], np.int32)), top_size=2)
DIM = 3


def head(level, negatives="tfn", man=None, max_active=100, loss="weighted_squared_hinge", start=None):
    h = XrLevelHead(TREE, level, negatives=negatives, max_active=max_active, loss=loss, seed=1, man=man,
                    start=start)
    h.build((None, DIM + (1 if h.man is not None else 0)))
    return h


def active_sets(h, labels, rows=None):
    labels = tf.ragged.constant(labels, dtype=tf.int64)
    features = tf.zeros([labels.nrows(), DIM])
    if rows is not None:
        features = tf.concat([features, tf.constant(rows, tf.float32)[:, None]], axis=1)
    nodes, counts = h.active(features, labels)
    return [{int(n): int(c) for n, c in zip(row_n, row_c) if n >= 0} for row_n, row_c in
            zip(nodes.numpy(), counts.numpy())]


def test_teacher_forced_negatives_are_the_true_parents_children():
    # Level 1: label 0 lies in cluster 0 (parent 0, whose children are clusters 0 and 1); labels 0 and 1 both
    # lie in cluster 0, which then holds two of the row's labels; label 7 lies in cluster 3 (parent 1).
    got = active_sets(head(1), [[0], [0, 1], [0, 7]])
    assert got == [{0: 1, 1: 0}, {0: 2, 1: 0}, {0: 1, 1: 0, 2: 0, 3: 1}]
    # Level 2 (the labels): children of the true clusters.
    assert active_sets(head(2), [[0, 5]]) == [{0: 1, 1: 0, 4: 0, 5: 1}]
    # Level 0 scores every cluster.
    assert active_sets(head(0), [[0], []]) == [{0: 1, 1: 0}, {0: 0, 1: 0}]


def test_matcher_aware_negatives_come_from_the_row_s_predictions():
    man = np.array([[1, -1], [0, 1], [-1, -1]], np.int32)  # row i's predicted level-0 clusters
    # tfn+man: row 0 (label 0) adds predicted parent 1's children; row 2 predicted nothing; an unknown row (−1).
    got = active_sets(head(1, "tfn+man", man), [[0], [0], [0], [0]], rows=[0, 1, 2, -1])
    assert got == [{0: 1, 1: 0, 2: 0, 3: 0}, {0: 1, 1: 0, 2: 0, 3: 0}, {0: 1, 1: 0}, {0: 1, 1: 0}]
    # man alone: the predicted parents' children, plus the row's own positives wherever they are.
    got = active_sets(head(1, "man", man), [[0], [7]], rows=[0, 2])
    assert got == [{0: 1, 2: 0, 3: 0}, {3: 1}]


def test_the_cap_keeps_every_positive_and_samples_negatives():
    h = head(2, "tfn+man", np.array([[0, 1, 2, 3]], np.int32), max_active=3)
    labels = tf.ragged.constant([[0, 2, 7]], dtype=tf.int64)
    features = tf.concat([tf.random.normal([1, DIM]), tf.zeros([1, 1])], axis=1)
    from tfxc.heads.label_tree.loss import cap_active

    nodes, counts = h.active(features, labels)
    assert int(tf.reduce_sum(tf.cast(nodes >= 0, tf.int32))) == 8  # every label of every predicted cluster
    seen = set()
    for step in range(20):
        kept, kept_counts = cap_active(nodes, counts, 3, tf.constant([step, 7]))
        kept, kept_counts = kept.numpy()[0], kept_counts.numpy()[0]
        assert {0, 2, 7} <= set(kept.tolist()) and kept_counts.sum() == 3 and kept.size == 3
        seen.update(kept.tolist())
    for step in range(20):
        kept, kept_counts = cap_active(nodes, counts, 5, tf.constant([step, 7]))
        kept = kept.numpy()[0]
        assert {0, 2, 7} <= set(kept.tolist()) and len(set(kept.tolist())) == 5
        seen.update(kept.tolist())
    assert seen == set(range(8))  # the negatives are sampled, not fixed


@pytest.mark.parametrize("loss, power, weighted", [("weighted_squared_hinge", 2, True), ("squared_hinge", 2, False),
                                                   ("hinge", 1, False), ("weighted_hinge", 1, True)])
def test_the_loss_is_pecos_hinge_over_the_padded_width(loss, power, weighted):
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(4, DIM)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    h = head(1, "tfn", max_active=6, loss=loss, start={"kernel": kernel, "bias": bias})
    x = rng.normal(size=(2, DIM)).astype(np.float32)
    got = h.per_example_loss(tf.constant(x), tf.ragged.constant([[0, 1], [0, 7]], dtype=tf.int64)).numpy()
    # Row 0: clusters 0 (two labels) and 1; row 1: clusters 0, 1 (parent 0) and 2, 3 (parent 1).
    expected = []
    for row, active in ((0, {0: 2, 1: 0}), (1, {0: 1, 1: 0, 2: 0, 3: 1})):
        total = 0.0
        for node, count in active.items():
            z = x[row] @ kernel[node] + bias[node]
            sign = 1.0 if count else -1.0
            term = max(0.0, 1.0 - sign * z) ** power
            total += term * (count if (weighted and count) else 1.0)
        expected.append(total / 6)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_top_k_of_the_label_level_ranks_labels_and_gradients_are_row_sparse():
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(8, DIM)).astype(np.float32)
    h = head(2, "tfn", start={"kernel": kernel, "bias": np.zeros(8, np.float32)})
    x = tf.constant(rng.normal(size=(3, DIM)).astype(np.float32))
    scores, ids = h.top_k(x, 3)
    expected = np.argsort(-(x.numpy() @ kernel.T), axis=1)[:, :3]
    np.testing.assert_array_equal(ids.numpy(), expected)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(h.per_example_loss(x, tf.ragged.constant([[0], [1], [2]], dtype=tf.int64)))
    grad = tape.gradient(loss, h.kernel)
    assert isinstance(grad, tf.IndexedSlices)
