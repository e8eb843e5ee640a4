"""MHP: exact product decoding against brute force, the three losses against NumPy, and the head contract."""

from __future__ import annotations

import numpy as np
import pytest
from head_harness import HARNESS_TIME, run_head_test

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.heads.label_codes import encode_digits
from tfxc.heads.mhp import MhpHead, MhpHeadConfig, product_top_k


def log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def brute_force(log_scores, radices, num_codes, k):
    """Scores every code < num_codes as Σ_h log_scores[h][d_h] and sorts."""
    codes = np.arange(num_codes)
    digits = encode_digits(codes, radices)
    total = sum(ls[:, digits[:, h]] for h, ls in enumerate(log_scores))
    order = np.argsort(-total, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(total, order, 1), order


@pytest.mark.parametrize("radices, num_codes", [([10, 10], 95), ([4, 5, 5], 73), ([4, 5, 5], 100), ([7], 6),
                                                ([3, 3, 3, 3], 55)])
@pytest.mark.parametrize("k", [1, 5, 17])
def test_beam_decode_equals_brute_force_top_k_over_the_product(radices, num_codes, k):
    rng = np.random.default_rng(k + num_codes)
    # Peaked heads, so the best digits of the unused codes' prefixes would win without the masking.
    log_scores = [log_softmax(3 * rng.normal(size=(6, n))) for n in radices]
    want_scores, want_codes = brute_force(log_scores, radices, num_codes, min(k, num_codes))
    scores, codes = product_top_k([tf.constant(x, tf.float32) for x in log_scores], radices, num_codes,
                                  tf.constant(k))
    np.testing.assert_allclose(scores.numpy(), want_scores, rtol=1e-5, atol=1e-5)
    assert np.array_equal(codes.numpy(), want_codes)
    assert codes.numpy().max() < num_codes


def test_the_unused_codes_are_never_predicted_even_when_they_would_win():
    radices, num_codes = [10, 10], 95
    second = np.eye(10)[[9]] * 20.0 + np.eye(10)[[4]] * 10.0
    log_scores = [log_softmax(np.eye(10)[[9]] * 20.0), log_softmax(second)]  # (9, 9) = 99 would win
    scores, codes = product_top_k([tf.constant(x, tf.float32) for x in log_scores], radices, num_codes, 3)
    assert codes.numpy()[0, 0] == 94 and codes.numpy().max() < 95  # 99 is no label: (9, 4) is the best real one


def reference_losses(logits, labels, radices):
    offsets = np.concatenate([[0], np.cumsum(radices)])
    out = {}
    for name in ("product", "concat_softmax", "soft_margin"):
        rows = []
        for z, row in zip(logits, labels):
            losses = []
            for label in row:
                d = encode_digits(label, radices)
                if name == "product":
                    losses.append(-sum(log_softmax(z[None, a:b])[0, dh] for a, b, dh in zip(offsets, offsets[1:], d)))
                elif name == "concat_softmax":
                    losses.append(-sum(log_softmax(z[None])[0, a + dh] for a, dh in zip(offsets, d)))
                else:
                    target = np.zeros_like(z)
                    target[offsets[:-1] + d] = 1.0
                    p = 1 / (1 + np.exp(-z))
                    losses.append(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))
            rows.append(np.mean(losses) if losses else 0.0)
        out[name] = np.array(rows)
    return out


@pytest.mark.parametrize("loss", ["product", "concat_softmax", "soft_margin"])
def test_losses_match_numpy(loss):
    radices = [4, 5, 5]
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 14)).astype(np.float32)
    labels = [[73], [0, 99], [], [42]]
    head = MhpHead(100, radices, loss=loss, name="head")
    head.build((None, 8))
    ragged = tf.ragged.constant(labels, dtype=tf.int64, ragged_rank=1)
    got = head.per_example_loss(tf.constant(logits), ragged).numpy()
    np.testing.assert_allclose(got, reference_losses(logits, labels, radices)[loss], rtol=1e-5, atol=1e-6)


def test_top_k_scores_are_the_product_of_head_probabilities():
    head = MhpHead(95, [10, 10], name="head")
    features = tf.random.stateless_normal([3, 8], seed=[1, 2])
    scores, ids = head.top_k(features, 4)
    probs = [np.exp(log_softmax(z.numpy())) for z in head.head_logits(head(features))]
    d = encode_digits(ids.numpy(), [10, 10])
    np.testing.assert_allclose(scores.numpy(), probs[0][np.arange(3)[:, None], d[..., 0]]
                               * probs[1][np.arange(3)[:, None], d[..., 1]], rtol=1e-5)
    # The head has Σ n_h outputs: (8 + 1) · 20 parameters for 95 labels.
    assert head.num_parameters == 9 * 20


def test_bad_configs_are_clear_errors():
    with pytest.raises(ConfigError, match="loss 'hinge' is not one of"):
        MhpHeadConfig(loss="hinge").validate("model.head")
    with pytest.raises(ConfigError, match="every head needs >= 2 classes"):
        MhpHeadConfig(num_classes=(1, 50)).validate("model.head")
    with pytest.raises(ConfigError, match=r"give 20 codes for 40 labels"):
        MhpHeadConfig(num_classes=(4, 5)).radices_for(40)
    with pytest.raises(ConfigError, match="label_order 'random'"):
        MhpHeadConfig(label_order="random").validate("model.head")


@pytest.mark.slow(reason=HARNESS_TIME)
def test_mhp_head_contract(tmp_path):
    # 40 labels in 5 × 9 = 45 codes (5 unused), labels ordered by frequency: the tables travel with the model.
    run_head_test(tmp_path, {"name": "mhp", "num_classes": [5, 9], "label_order": "frequency"}, multiclass=True)


@pytest.mark.slow(reason=HARNESS_TIME)
def test_mhp_three_heads_soft_margin_contract(tmp_path):
    run_head_test(tmp_path, {"name": "mhp", "num_heads": 3, "loss": "soft_margin"}, multiclass=True)
