"""R-Drop, FGM, PGD and FreeLB against step-by-step NumPy transcriptions of their update rules, on a tiny
FastText + softmax model (real layers; gradients with respect to the embeddings come from a plain tape)."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.encoders import FastTextEncoder
from tfxc.heads.dense import SoftmaxHead
from tfxc.losses.base import HeadLoss, HeadLossConfig
from tfxc.losses.robust import _symmetric_kl, adversarial_loss, r_drop_loss
from tfxc.model import XCModel

TEXTS = ["my card was declined", "where is my transfer", "top up failed again", "a"]
LABELS = [[0], [1], [2], [1]]


@pytest.fixture(scope="module")
def model_and_batch():
    encoder = FastTextEncoder(embedding_dim=6, word_buckets=64, ngram_buckets=256, seed=3)
    head = SoftmaxHead(3, name="head")
    model = XCModel(encoder, head)
    encoder.build()
    head.build((None, 6))
    batch = dict(encoder.tokenize(tf.constant(TEXTS)))
    batch["labels"] = tf.ragged.constant(LABELS, dtype=tf.int64)
    batch["row_id"] = tf.constant(np.arange(len(TEXTS)), tf.int64)
    return model, batch


def loss_and_grad(model, batch, values_np):
    """(per-example loss, d sum(loss) / d values) at the given flat embedding values, as NumPy."""
    embedded = model.encoder.embed(batch)
    values = tf.constant(values_np)
    with tf.GradientTape() as tape:
        tape.watch(values)
        loss = model.head.per_example_loss(model.head(model.encoder.from_embedded(embedded.with_values(values), batch)),
                                           batch["labels"])
        total = tf.reduce_sum(loss)
    return loss.numpy(), tape.gradient(total, values).numpy()


def row_normalise(g, rows):
    norms = np.sqrt(np.bincount(rows, weights=(g ** 2).sum(axis=1), minlength=len(TEXTS)))
    return g / (norms[rows][:, None] + 1e-12), norms


def test_fgm_adds_the_loss_at_the_normalised_gradient_step(model_and_batch):
    model, batch = model_and_batch
    embedded = model.encoder.embed(batch)
    x, rows = embedded.values.numpy(), embedded.value_rowids().numpy()
    clean, g = loss_and_grad(model, batch, x)
    direction, _ = row_normalise(g, rows)
    adv, _ = loss_and_grad(model, batch, x + 0.2 * direction)
    total, reported = adversarial_loss(model, batch, method="fgm", epsilon=0.2, alpha=0.3, steps=3)
    np.testing.assert_allclose(reported.numpy(), clean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total.numpy(), clean + adv, rtol=1e-5, atol=1e-6)
    assert np.all(adv > clean), "a step along the gradient must raise every example's loss"


def test_fgsm_adds_the_loss_at_the_gradient_sign_step(model_and_batch):
    model, batch = model_and_batch
    embedded = model.encoder.embed(batch)
    x = embedded.values.numpy()
    clean, g = loss_and_grad(model, batch, x)
    adv, _ = loss_and_grad(model, batch, x + 0.01 * np.sign(g))
    total, reported = adversarial_loss(model, batch, method="fgsm", epsilon=0.01, alpha=0.3, steps=3)
    np.testing.assert_allclose(reported.numpy(), clean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total.numpy(), clean + adv, rtol=1e-5, atol=1e-6)
    assert np.all(adv > clean), "a step along the gradient's sign must raise every example's loss"


def test_pgd_projects_k_ascent_steps_onto_the_epsilon_ball(model_and_batch):
    model, batch = model_and_batch
    embedded = model.encoder.embed(batch)
    x, rows = embedded.values.numpy(), embedded.value_rowids().numpy()
    clean, g = loss_and_grad(model, batch, x)
    delta = np.zeros_like(x)
    for step in range(3):
        if step:
            _, g = loss_and_grad(model, batch, x + delta)
        delta = delta + 0.3 * row_normalise(g, rows)[0]
        _, norms = row_normalise(delta, rows)
        delta = delta * np.minimum(1.0, 0.5 / (norms + 1e-12))[rows][:, None]
    adv, _ = loss_and_grad(model, batch, x + delta)
    total, _ = adversarial_loss(model, batch, method="pgd", epsilon=0.5, alpha=0.3, steps=3)
    np.testing.assert_allclose(total.numpy(), clean + adv, rtol=1e-5, atol=1e-6)
    assert np.all(row_normalise(delta, rows)[1] <= 0.5 + 1e-6)


def test_freelb_averages_the_losses_of_k_ascending_perturbations(model_and_batch):
    model, batch = model_and_batch
    embedded = model.encoder.embed(batch)
    x, rows = embedded.values.numpy(), embedded.value_rowids().numpy()
    noise = tf.random.stateless_uniform(x.shape, seed=[0, int(np.sum(np.arange(len(TEXTS))))], minval=-1.0,
                                        maxval=1.0).numpy()
    delta = row_normalise(noise, rows)[0] * 0.02
    expected = 0.0
    for _ in range(2):
        loss, g = loss_and_grad(model, batch, x + delta)
        expected = expected + loss / 2
        delta = delta + 0.1 * row_normalise(g, rows)[0]
    total, _ = adversarial_loss(model, batch, method="freelb", epsilon=0.02, alpha=0.1, steps=2)
    np.testing.assert_allclose(total.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_symmetric_kl_matches_the_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    p, q = softmax(a), softmax(b)
    expected = 0.5 * ((p * np.log(p / q)).sum(1) + (q * np.log(q / p)).sum(1))
    got = _symmetric_kl(tf.constant(a, tf.float32), tf.constant(b, tf.float32), "categorical").numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    sa, sb = 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))
    kl = lambda u, v: (u * np.log(u / v) + (1 - u) * np.log((1 - u) / (1 - v))).sum(1)  # noqa: E731
    got = _symmetric_kl(tf.constant(a, tf.float32), tf.constant(b, tf.float32), "bernoulli").numpy()
    np.testing.assert_allclose(got, 0.5 * (kl(sa, sb) + kl(sb, sa)), rtol=1e-4)


def test_r_drop_without_dropout_is_the_plain_loss(model_and_batch):
    model, batch = model_and_batch
    total, reported = r_drop_loss(model, batch, alpha=4.0, kind="categorical")
    plain = model.per_example_loss(batch, training=True).numpy()
    np.testing.assert_allclose(total.numpy(), plain, rtol=1e-5)
    np.testing.assert_allclose(reported.numpy(), plain, rtol=1e-5)


def test_the_head_loss_refuses_tricks_the_model_cannot_run(model_and_batch):
    from tfxc.encoders import SparseBowEncoder
    from tfxc.errors import ConfigError
    from tfxc.heads.mach import MachHead

    model, _ = model_and_batch
    HeadLoss(HeadLossConfig(adversarial="fgm")).check_model(model)
    bow = XCModel(SparseBowEncoder(10, 4), model.head)
    with pytest.raises(ConfigError, match="perturbs input embeddings"):
        HeadLoss(HeadLossConfig(adversarial="pgd")).check_model(bow)
    mach = XCModel(model.encoder, MachHead.__new__(MachHead))
    with pytest.raises(ConfigError, match="r_drop"):
        HeadLoss(HeadLossConfig(r_drop=1.0)).check_model(mach)


def test_distillation_refuses_a_head_without_softmax_logits(model_and_batch):
    from tfxc.errors import ConfigError
    from tfxc.heads.dense import OneVsAllHead
    from tfxc.losses.distill import DistillConfig, DistillObjective

    model, _ = model_and_batch
    objective = DistillObjective(DistillConfig(teacher="unused"), np.zeros((len(TEXTS), 3), np.float32))
    objective.check_model(model)
    with pytest.raises(ConfigError, match="logits_kind 'categorical'.* is OneVsAllHead"):
        objective.check_model(XCModel(model.encoder, OneVsAllHead(3, name="head")))


def test_multisample_dropout_is_the_loss_of_the_mean_logits_of_the_dropped_copies(model_and_batch):
    from tfxc.losses.robust import multisample_dropout_loss

    model, batch = model_and_batch
    features = model.encoder(batch).numpy()
    base = int(np.sum(np.arange(len(TEXTS))))
    logits = []
    for r in range(3):
        keep = tf.random.stateless_uniform(features.shape, seed=[base, r]).numpy() >= 0.4
        logits.append(model.head(tf.constant(np.where(keep, features / 0.6, 0.0).astype(np.float32))).numpy())
    expected = model.head.per_example_loss(tf.constant(np.mean(logits, axis=0)), batch["labels"]).numpy()
    got = multisample_dropout_loss(model, batch, rounds=3, rate=0.4).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_awp_adds_the_loss_at_clipped_relative_weight_perturbations(model_and_batch):
    from tfxc.losses.robust import awp_loss

    model, batch = model_and_batch
    weights = [v for v in model.trainable_variables if v.name in ("kernel", "embeddings")]
    assert len(weights) == 2  # the n-gram table and the head's kernel; biases are left alone
    with tf.GradientTape() as tape:
        clean = model.per_example_loss(batch, training=True)
        total = tf.reduce_sum(clean)
    grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, weights)]
    originals = [v.numpy() for v in weights]
    for lr, eps in ((1.0, 1e-4), (0.01, 10.0)):  # clipped everywhere, and not clipped
        for v, w, g in zip(weights, originals, grads):
            delta = lr * g / (np.linalg.norm(g) + 1e-12) * (np.linalg.norm(w) + 1e-12)
            v.assign(w + np.clip(delta, -eps * np.abs(w), eps * np.abs(w)))
        adversarial = model.per_example_loss(batch, training=True).numpy()
        for v, w in zip(weights, originals):
            v.assign(w)
        total_loss, reported = tf.function(lambda: awp_loss(model, batch, learning_rate=lr, epsilon=eps))()
        np.testing.assert_allclose(reported.numpy(), clean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(total_loss.numpy(), clean.numpy() + adversarial, rtol=1e-5, atol=1e-6)
    for v, w in zip(weights, originals):
        np.testing.assert_array_equal(v.numpy(), w)  # nothing was written
    off, _ = awp_loss(model, batch, learning_rate=1.0, epsilon=1.0, active=False)
    np.testing.assert_allclose(off.numpy(), clean.numpy(), rtol=1e-6)
