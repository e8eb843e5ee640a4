"""MHS: block sampling, the sampled loss against NumPy, exact ranking over all labels, MHS-ArcFace, the contract."""

from __future__ import annotations

import numpy as np
import pytest
from head_harness import EXACT_BAG_ENCODER, HARNESS_TIME, run_head_test

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.heads.margins import CosineMargin, target_cosine
from tfxc.heads.mhs import MhsHead, MhsHeadConfig


def make_head(num_labels=23, radices=(5, 5), **kwargs):
    head = MhsHead(num_labels, radices, init_stddev=0.5, seed=1, name="head", **kwargs)
    head.build((None, 6))
    return head


def test_a_step_scores_the_batch_blocks_and_the_target_is_the_position_in_them():
    head = make_head()
    features = tf.random.stateless_normal([4, 6], seed=[3, 4])
    labels = tf.ragged.constant([[17], [3], [], [19]], dtype=tf.int64)   # codes 17 -> (3, 2), 3 -> (0, 3), 19 -> (3, 4)
    assert head.sampled_blocks(tf.constant([3, 0, -1, 3], tf.int64)).numpy().tolist() == [0, 3]
    got = head.per_example_loss(features, labels).numpy()
    w = head.kernel.numpy().reshape(25, 6)
    rows = np.concatenate([w[0:5], w[15:20]])               # blocks 0 and 3
    logits = features.numpy() @ rows.T
    lse = np.log(np.exp(logits).sum(1))
    want = [lse[0] - logits[0, 5 + 2], lse[1] - logits[1, 3], 0.0, lse[3] - logits[3, 5 + 4]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_unused_codes_are_masked_in_training_and_never_ranked():
    head = make_head(num_labels=23)                           # codes 23, 24 (block 4) are no labels
    features = tf.random.stateless_normal([3, 6], seed=[5, 6])
    logits = head.block_logits(features, tf.constant([4], tf.int64)).numpy()
    assert np.all(logits[:, 3:] < -1e8) and np.all(logits[:, :3] > -1e8)
    scores, ids = head.top_k(features, 30)
    assert ids.shape == (3, 23) and sorted(ids.numpy()[0].tolist()) == list(range(23))
    # Exact softmax over the 23 labels.
    z = features.numpy() @ head.kernel.numpy().reshape(25, 6)[:23].T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(scores.numpy(), -np.sort(-p, axis=1), rtol=1e-5, atol=1e-7)


def test_extra_blocks_are_added_deterministically_from_the_batch():
    head = make_head(num_labels=100, radices=(10, 10), extra_blocks=3)
    digits = tf.constant([2, 2, 7], tf.int64)
    blocks = head.sampled_blocks(digits).numpy()
    assert {2, 7} <= set(blocks) and 3 <= len(blocks) <= 5 and np.all(np.diff(blocks) > 0)
    assert np.array_equal(blocks, head.sampled_blocks(digits).numpy())           # same batch, same draw
    draws = {tuple(head.sampled_blocks(tf.constant([d], tf.int64)).numpy()) for d in range(10)}
    assert len(draws) > 5                                                         # other batches, other blocks


def test_mhs_arcface_puts_the_margin_on_the_target_cosine():
    margin = CosineMargin("arcface", m=0.4, scale=8.0)
    head = make_head(cosine_margin=margin)
    features = tf.random.stateless_normal([2, 6], seed=[7, 8])
    labels = tf.ragged.constant([[17], [3]], dtype=tf.int64)
    got = head.per_example_loss(features, labels).numpy()
    w = head.kernel.numpy().reshape(25, 6)
    rows = np.concatenate([w[0:5], w[15:20]])
    h = features.numpy()
    cos = (h / np.linalg.norm(h, axis=1, keepdims=True)) @ (rows / np.linalg.norm(rows, axis=1, keepdims=True)).T
    z = 8.0 * cos
    for i, t in enumerate([7, 3]):
        z[i, t] = 8.0 * target_cosine(tf.constant(cos[i, t]), "arcface", 0.4).numpy()
    want = np.log(np.exp(z).sum(1)) - z[[0, 1], [7, 3]]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_gradient_touches_only_the_sampled_blocks():
    head = make_head()
    features = tf.random.stateless_normal([2, 6], seed=[9, 9])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(head.per_example_loss(features, tf.ragged.constant([[17], [19]], dtype=tf.int64)))
    grad = tape.gradient(loss, head.kernel)
    assert isinstance(grad, tf.IndexedSlices) and sorted(set(grad.indices.numpy().tolist())) == [3]


def test_bad_configs_are_clear_errors():
    with pytest.raises(ConfigError, match="MHS has two heads"):
        MhsHeadConfig(num_classes=(3, 3, 3)).validate("model.head")
    with pytest.raises(ConfigError, match="extra_blocks"):
        MhsHeadConfig(extra_blocks=-1).validate("model.head")


@pytest.mark.slow(reason=HARNESS_TIME)
def test_mhs_head_contract(tmp_path):
    run_head_test(tmp_path, {"name": "mhs", "num_classes": [7, 6], "extra_blocks": 1, "init_stddev": 0.1},
                  multiclass=True)


@pytest.mark.slow(reason=HARNESS_TIME + " (tests/eval/test_face_verification.py trains MHS-ArcFace end to end "
                                         "by default)")
def test_mhs_arcface_head_contract(tmp_path):
    run_head_test(tmp_path, {"name": "mhs", "margin": "arcface", "margin_scale": 16.0, "margin_m": 0.3,
                             "label_order": "frequency"}, multiclass=True, encoder=EXACT_BAG_ENCODER)


def test_all_logits_are_in_label_order_whatever_the_code_order():
    order = np.array([4, 0, 3, 1, 2, 5, 6])          # code -> label
    head = MhsHead(7, (3, 3), init_stddev=0.5, seed=1, label_order=order, name="head")
    head.build((None, 6))
    features = tf.random.stateless_normal([2, 6], seed=[1, 1])
    by_code = features.numpy() @ head.kernel.numpy().reshape(9, 6)[:7].T
    got = head.all_logits(features).numpy()
    np.testing.assert_allclose(got[:, order], by_code, rtol=1e-5, atol=1e-6)
    _, ids = head.top_k(features, 1)
    assert np.array_equal(ids.numpy()[:, 0], np.argmax(got, axis=1))
