"""Focal, Poly-1 and ZLPR against NumPy transcriptions of their papers' formulas."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.heads.classification_losses import focal_poly_cross_entropy, zlpr_loss

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(0.0, 2.0, size=(5, 7)).astype(np.float32)
LABELS = [[3], [0, 6], [], [1, 2, 4], [5]]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference_focal_poly(z, labels, gamma, epsilon, weights=None):
    p = softmax(z.astype(np.float64))
    out = []
    for row, ys in enumerate(labels):
        if not ys:
            out.append(0.0)
            continue
        terms = [(1 - p[row, y]) ** gamma * -np.log(p[row, y]) + epsilon * (1 - p[row, y]) ** (gamma + 1) for y in ys]
        w = [1.0 if weights is None else weights[y] for y in ys]
        out.append(np.dot(terms, w) / np.sum(w))
    return np.array(out)


def reference_zlpr(z, labels):
    z = z.astype(np.float64)
    out = []
    for row, ys in enumerate(labels):
        neg = [z[row, j] for j in range(z.shape[1]) if j not in ys]
        out.append(np.log1p(np.sum(np.exp(neg))) + np.log1p(np.sum(np.exp([-z[row, i] for i in ys]))))
    return np.array(out)


def ragged(labels):
    return tf.ragged.constant(labels, dtype=tf.int64, ragged_rank=1)


@pytest.mark.parametrize("gamma,epsilon", [(0.0, 0.0), (2.0, 0.0), (0.0, 1.0), (2.0, 1.0), (0.5, 3.0)])
def test_focal_and_poly1_match_the_formula(gamma, epsilon):
    got = focal_poly_cross_entropy(tf.constant(LOGITS), ragged(LABELS), gamma, epsilon).numpy()
    np.testing.assert_allclose(got, reference_focal_poly(LOGITS, LABELS, gamma, epsilon), rtol=1e-5, atol=1e-6)


def test_focal_with_label_weights_is_a_weighted_mean_over_the_positives():
    weights = np.linspace(0.5, 2.0, 7).astype(np.float32)
    got = focal_poly_cross_entropy(tf.constant(LOGITS), ragged(LABELS), 2.0, 1.0, tf.constant(weights)).numpy()
    np.testing.assert_allclose(got, reference_focal_poly(LOGITS, LABELS, 2.0, 1.0, weights), rtol=1e-5, atol=1e-6)


def test_gamma_and_epsilon_zero_is_the_softmax_cross_entropy():
    from tfxc.heads.classification_losses import softmax_cross_entropy

    np.testing.assert_allclose(focal_poly_cross_entropy(tf.constant(LOGITS), ragged(LABELS)).numpy(),
                               softmax_cross_entropy(tf.constant(LOGITS), ragged(LABELS)).numpy(), rtol=1e-5)


def test_zlpr_matches_the_formula_and_is_stable_for_large_logits():
    got = zlpr_loss(tf.constant(LOGITS), ragged(LABELS)).numpy()
    np.testing.assert_allclose(got, reference_zlpr(LOGITS, LABELS), rtol=1e-5, atol=1e-6)
    big = zlpr_loss(tf.constant(LOGITS * 100.0), ragged(LABELS)).numpy()
    assert np.all(np.isfinite(big))
    np.testing.assert_allclose(big, reference_zlpr(LOGITS * 100.0, LABELS), rtol=1e-4)


def test_heads_use_the_configured_loss():
    from tfxc.heads.dense import OneVsAllHead, SoftmaxHead

    softmax_head = SoftmaxHead(7, focal_gamma=2.0, poly_epsilon=1.0)
    softmax_head.build((None, 3))
    np.testing.assert_allclose(softmax_head.per_example_loss(tf.constant(LOGITS), ragged(LABELS)).numpy(),
                               reference_focal_poly(LOGITS, LABELS, 2.0, 1.0), rtol=1e-5, atol=1e-6)
    ova = OneVsAllHead(7, loss="zlpr")
    ova.build((None, 3))
    np.testing.assert_allclose(ova.per_example_loss(tf.constant(LOGITS), ragged(LABELS)).numpy(),
                               reference_zlpr(LOGITS, LABELS), rtol=1e-5, atol=1e-6)
