"""ArcFace and CosFace margins against NumPy references, fp safety at t = ±1, and the heads that offer them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from head_harness import EXACT_BAG_ENCODER, HARNESS_TIME, run_head_test

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.heads.dense import SoftmaxHead, SoftmaxHeadConfig
from tfxc.heads.linear import LinearHead, LinearHeadConfig
from tfxc.heads.margins import CosineMargin, target_cosine



def cosines_around_the_switch(m):
    """Descending test cosines: ±1, interior points, and both sides of ArcFace's switch at cos(π − m)."""
    switch = math.cos(math.pi - m)
    return np.array([1.0, 0.999, 0.6, 0.0, -0.5, switch + 1e-3, switch - 1e-3, -0.9999, -1.0], np.float32)


T = cosines_around_the_switch(0.5)


def arcface_reference(t, m, easy=False):
    """insightface's ArcFace target, in float64."""
    t = np.asarray(t, np.float64)
    sin = np.sqrt(np.clip(1.0 - t * t, 0.0, 1.0))
    phi = t * math.cos(m) - sin * math.sin(m)
    if easy:
        return np.where(t > 0, phi, t)
    return np.where(t > math.cos(math.pi - m), phi, t - math.sin(math.pi - m) * m)


@pytest.mark.parametrize("m", [0.5, 0.2])
@pytest.mark.parametrize("easy", [False, True])
def test_arcface_target_matches_insightface_including_the_fallback_branch(m, easy):
    t = cosines_around_the_switch(m)
    got = target_cosine(tf.constant(t), "arcface", m, easy).numpy()
    # The clip of 1 − t² moves sin θ by at most √1e-7 ≈ 3e-4 at t = ±1, exact elsewhere.
    np.testing.assert_allclose(got, arcface_reference(t, m, easy), atol=2e-4)
    np.testing.assert_allclose(got[2:-2], arcface_reference(t, m, easy)[2:-2], atol=1e-6)
    if not easy:
        # Just past cos(π − m) the fallback t − m·sin(π − m) takes over, and it stays monotone there.
        assert got[6] == pytest.approx(t[6] - m * math.sin(math.pi - m), abs=1e-6)
        assert got[5] == pytest.approx(math.cos(math.acos(t[5]) + m), abs=1e-4)
        assert np.all(np.diff(got) <= 1e-6)
    # θ + m for θ = acos(0.6).
    assert got[2] == pytest.approx(math.cos(math.acos(0.6) + m), abs=1e-6)


def test_cosface_subtracts_m_and_an_empty_margin_is_the_identity():
    np.testing.assert_allclose(target_cosine(tf.constant(T), "cosface", 0.35).numpy(), T - 0.35, atol=1e-7)
    np.testing.assert_allclose(target_cosine(tf.constant(T), "", 0.35).numpy(), T, atol=0)


@pytest.mark.parametrize("dtype", [tf.float32, tf.bfloat16])
def test_gradients_are_finite_at_t_plus_minus_one_in_float32_and_bfloat16(dtype):
    t = tf.Variable(tf.constant([1.0, -1.0, 0.3, 1.0 + 1e-7], dtype))
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(target_cosine(t, "arcface", 0.5))
    grad = tape.gradient(value, t)
    assert np.all(np.isfinite(tf.cast(grad, tf.float32).numpy())), grad
    assert target_cosine(t, "arcface", 0.5).dtype == tf.float32


def test_margin_lands_on_the_positives_only():
    margin = CosineMargin("arcface", m=0.5, scale=10.0)
    cos = np.array([[0.6, 0.2, -0.1], [0.1, 0.9, 0.4]], np.float32)
    labels = tf.RaggedTensor.from_row_lengths(tf.constant([0, 2, 1], tf.int64), [2, 1])
    got = margin.at_labels(tf.constant(10.0 * cos), labels).numpy()
    want = 10.0 * cos
    want[0, 0], want[0, 2] = 10.0 * arcface_reference(0.6, 0.5), 10.0 * arcface_reference(-0.1, 0.5)
    want[1, 1] = 10.0 * arcface_reference(0.9, 0.5)
    np.testing.assert_allclose(got, want, atol=1e-5)
    by_column = margin.at_columns(tf.constant(10.0 * cos), tf.constant([1, 2])).numpy()
    assert by_column[0, 1] == pytest.approx(10.0 * arcface_reference(0.2, 0.5), abs=1e-5)
    assert by_column[0, 0] == pytest.approx(6.0, abs=1e-6)


def numpy_cosines(h, w_rows):
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    w = w_rows / np.linalg.norm(w_rows, axis=1, keepdims=True)
    return h @ w.T


@pytest.mark.parametrize("head_name", ["softmax", "linear"])
@pytest.mark.parametrize("kind", ["arcface", "cosface"])
def test_head_loss_is_cross_entropy_over_margined_scaled_cosines(head_name, kind):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(4, 6)).astype(np.float32)
    y = np.array([3, 0, 4, 1])
    config = (SoftmaxHeadConfig if head_name == "softmax" else LinearHeadConfig)(margin=kind, margin_m=0.3,
                                                                                 margin_scale=16.0)
    cls = SoftmaxHead if head_name == "softmax" else LinearHead
    head = cls(5, cosine_margin=config.cosine_margin(), name="head")
    logits = head(tf.constant(h))
    rows = head.kernel.numpy().T if head_name == "softmax" else head.kernel.numpy()
    assert head.bias is None
    cos = numpy_cosines(h, rows)
    np.testing.assert_allclose(logits.numpy(), 16.0 * cos, atol=1e-4)
    z = 16.0 * cos
    t = cos[np.arange(4), y]
    z[np.arange(4), y] = 16.0 * (arcface_reference(t, 0.3) if kind == "arcface" else t - 0.3)
    want = np.log(np.exp(z).sum(1)) - z[np.arange(4), y]
    labels = tf.RaggedTensor.from_row_lengths(tf.constant(y, tf.int64), [1, 1, 1, 1])
    np.testing.assert_allclose(head.per_example_loss(logits, labels).numpy(), want, rtol=1e-4, atol=1e-4)
    # Ranking uses the plain cosines: the margin is a training-time term.
    scores, ids = head.top_k(tf.constant(h), 5)
    np.testing.assert_array_equal(ids.numpy(), np.argsort(-cos, axis=1, kind="stable"))
    if head_name == "linear":
        sampled = head.label_logits(tf.constant(h), tf.constant([4, 1]))
        np.testing.assert_allclose(sampled.numpy(), 16.0 * cos[:, [4, 1]], atol=1e-4)
        margined = head.margin_at_columns(sampled, tf.constant([0, 1, 0, 1])).numpy()
        assert margined[1, 1] == pytest.approx(16.0 * (arcface_reference(cos[1, 1], 0.3) if kind == "arcface"
                                                       else cos[1, 1] - 0.3), abs=1e-4)
        assert margined[1, 0] == pytest.approx(16.0 * cos[1, 4], abs=1e-4)


def test_bad_margin_configs_are_clear_errors():
    with pytest.raises(ConfigError, match="margin 'sphereface' is not one of"):
        SoftmaxHeadConfig(margin="sphereface").validate("model.head")
    with pytest.raises(ConfigError, match="easy_margin is an option of the 'arcface' margin"):
        LinearHeadConfig(margin="cosface", easy_margin=True).validate("model.head")
    with pytest.raises(ConfigError, match="margin_m"):
        SoftmaxHeadConfig(margin="arcface", margin_m=2.0).validate("model.head")
    with pytest.raises(ConfigError, match="sparse term"):
        SoftmaxHeadConfig(margin="arcface", sparse_support=8).validate("model.head")


@pytest.mark.slow(reason=HARNESS_TIME)
def test_softmax_arcface_head_contract(tmp_path):
    run_head_test(tmp_path, {"name": "softmax", "margin": "arcface", "margin_scale": 16.0, "margin_m": 0.3},
                  multiclass=True, encoder=EXACT_BAG_ENCODER)


@pytest.mark.slow(reason=HARNESS_TIME)
def test_linear_cosface_head_under_the_sampled_objective(tmp_path):
    run_head_test(tmp_path, {"name": "linear", "margin": "cosface", "margin_scale": 16.0, "margin_m": 0.2,
                             "init_stddev": 0.1}, multiclass=True, loss={"name": "bsgd"})


def test_the_sampled_objective_puts_the_margin_on_each_rows_own_class():
    from types import SimpleNamespace

    from tfxc.losses.dual import DualObjective

    rng = np.random.default_rng(4)
    h = rng.normal(size=(4, 6)).astype(np.float32)
    y = np.array([2, 5, 2, 0])
    head = LinearHead(7, cosine_margin=CosineMargin("arcface", m=0.3, scale=16.0), init_stddev=0.5, seed=3,
                      name="head")
    head.build((None, 6))
    model = SimpleNamespace(encoder=lambda batch, training=False: tf.constant(h), head=head)
    batch = {"labels": tf.RaggedTensor.from_row_lengths(tf.constant(y, tf.int64), [1, 1, 1, 1]),
             "row_id": tf.constant([0, 1, 2, 3], tf.int64)}
    _, reported = DualObjective("bsgd", num_train=4, total_epochs=1).per_example_loss(model, batch)
    classes = np.array([2, 5, 0])                        # the batch's unique labels, in order of appearance
    cos = numpy_cosines(h, head.kernel.numpy()[classes])
    z = 16.0 * cos
    own = np.array([list(classes).index(label) for label in y])
    z[np.arange(4), own] = 16.0 * arcface_reference(cos[np.arange(4), own], 0.3)
    want = np.log(np.exp(z).sum(1)) - z[np.arange(4), own]   # the in-batch cross-entropy with the margin
    np.testing.assert_allclose(reported.numpy(), want, rtol=1e-4, atol=1e-4)
