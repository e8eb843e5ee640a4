"""MHC: the cascade's loss against NumPy (teacher-forced candidates), ranking against brute force, the contract."""

from __future__ import annotations

import numpy as np
import pytest
from head_harness import HARNESS_TIME, run_head_test

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.heads.mhc import MhcHead, MhcHeadConfig


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


def make_head(num_labels=23, radices=(5, 5), topk=2):
    head = MhcHead(num_labels, radices, candidates_topk=topk, hidden_dim=4, seed=3, name="head")
    head.build((None, 6))
    return head


def numpy_parts(head, features):
    h = features.numpy()
    g = h @ head.group_kernel.numpy() + head.group_bias.numpy()
    e = h @ head.projection_1.numpy() + head.projection_bias_1.numpy()
    return g, e @ head.node_embedding_1.numpy().T          # group logits [B, G], every label's logit [B, L]


def test_two_level_loss_is_bce_over_groups_plus_bce_over_the_forced_candidates():
    head = make_head(num_labels=23, radices=(5, 5), topk=2)   # groups of 5 codes; group 4 holds labels 20-22
    features = tf.random.stateless_normal([3, 6], seed=[1, 2])
    labels = [[0, 7, 13, 21], [4], []]                         # row 0 has 4 positive groups > T = 2
    got = head.per_example_loss(features, tf.ragged.constant(labels, dtype=tf.int64)).numpy()
    g, u = numpy_parts(head, features)
    width = 4                                                  # raised to the batch's most positive groups
    want = []
    for b, row in enumerate(labels):
        y = np.zeros(5)
        y[[c // 5 for c in row]] = 1
        loss = np.mean(softplus(g[b]) - g[b] * y)
        forced = sigmoid(g[b]) + y
        parents = np.argsort(-forced, kind="stable")[:width]
        candidates = np.array([p * 5 + j for p in parents for j in range(5)])
        valid = candidates < 23
        c = candidates[valid]
        t = np.isin(c, row).astype(float)
        loss += np.mean(softplus(u[b, c]) - u[b, c] * t)
        want.append(loss)
        assert set(row) <= set(c.tolist())                   # every positive is a candidate
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def logsumexp(x):
    return np.log(np.sum(np.exp(x - x.max()))) + x.max()


def test_softmax_loss_is_each_levels_cross_entropy_against_its_positives():
    head = make_head(num_labels=23, radices=(5, 5), topk=2)
    head.loss = "softmax"
    features = tf.random.stateless_normal([3, 6], seed=[7, 8])
    labels = [[0, 3, 13], [21], []]
    got = head.per_example_loss(features, tf.ragged.constant(labels, dtype=tf.int64)).numpy()
    g, u = numpy_parts(head, features)
    want = []
    for b, row in enumerate(labels):
        groups = sorted({c // 5 for c in row})
        if not row:
            want.append(0.0)                                    # nothing to be the softmax's target
            continue
        loss = logsumexp(g[b]) - g[b, groups].mean()
        parents = np.argsort(-(sigmoid(g[b]) + np.isin(np.arange(5), groups)), kind="stable")[:2]
        c = np.array([p * 5 + j for p in parents for j in range(5) if p * 5 + j < 23])
        loss += logsumexp(u[b, c]) - u[b, row].mean()
        want.append(loss)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="unknown loss"):
        MhcHeadConfig(num_group=4, loss="hinge").validate("model.head")


def test_ranking_with_every_group_expanded_is_the_exact_product_of_sigmoids():
    head = make_head(num_labels=23, radices=(5, 5), topk=5)
    features = tf.random.stateless_normal([4, 6], seed=[3, 4])
    scores, ids = head.top_k(features, 7)
    g, u = numpy_parts(head, features)
    product = sigmoid(u) * np.repeat(sigmoid(g), 5, axis=1)[:, :23]
    order = np.argsort(-product, axis=1, kind="stable")[:, :7]
    np.testing.assert_allclose(scores.numpy(), np.take_along_axis(product, order, 1), rtol=1e-5)
    assert np.array_equal(ids.numpy(), order)


def test_softmax_ranking_with_every_group_expanded_is_by_the_label_logits():
    head = make_head(num_labels=23, radices=(5, 5), topk=5)
    head.loss = "softmax"
    features = tf.random.stateless_normal([4, 6], seed=[3, 4])
    scores, ids = head.top_k(features, 7)
    _, u = numpy_parts(head, features)
    order = np.argsort(-u[:, :23], axis=1, kind="stable")[:, :7]
    np.testing.assert_allclose(scores.numpy(), np.take_along_axis(u, order, 1), rtol=1e-5)
    assert np.array_equal(ids.numpy(), order)


def test_the_beam_expands_only_the_best_groups_and_still_returns_k_real_labels():
    head = make_head(num_labels=23, radices=(5, 5), topk=1)
    features = tf.random.stateless_normal([4, 6], seed=[5, 6])
    g, u = numpy_parts(head, features)
    _, ids = head.top_k(features, 3)
    best_group = np.argmax(g, axis=1)
    # k = 3 needs ⌈3/5⌉ + 1 = 2 groups: the best group's labels come from it or the runner-up.
    second = np.argsort(-g, axis=1)[:, 1]
    assert all(set(i // 5 for i in row) <= {a, b} for row, a, b in zip(ids.numpy(), best_group, second))
    _, all_ids = head.top_k(features, 100)
    assert all(sorted(row) == list(range(23)) for row in all_ids.numpy().tolist())


def test_check_group_sizes_the_levels_and_bad_configs_are_clear_errors():
    assert MhcHeadConfig(num_group=8400).levels_for(670091) == [8377, 80]
    assert MhcHeadConfig(num_classes=(4, 5, 6)).levels_for(100) == [4, 5, 6]
    with pytest.raises(ConfigError, match="not both"):
        MhcHeadConfig(num_group=10, num_classes=(4, 5)).validate("model.head")
    with pytest.raises(ConfigError, match="at least two levels"):
        MhcHeadConfig(num_heads=1).levels_for(100)


@pytest.mark.slow(reason=HARNESS_TIME)
def test_mhc_head_contract(tmp_path):
    # All 8 groups expanded, so top_k(L) ranks every label; groups from the PIFA tree's leaf order.
    run_head_test(tmp_path, {"name": "mhc", "num_group": 8, "candidates_topk": 8, "hidden_dim": 16,
                             "label_order": "tree"})


@pytest.mark.slow(reason=HARNESS_TIME)
def test_mhc_three_level_cascade_contract(tmp_path):
    # A beam as wide as the 10 level-2 nodes, so top_k(L) is exact.
    run_head_test(tmp_path, {"name": "mhc", "num_classes": [3, 4, 4], "candidates_topk": 10, "hidden_dim": 16})
