"""LinearHead: row-sparse sampled logits and a blockwise full softmax that matches the dense one."""

from __future__ import annotations

import numpy as np
import pytest
from head_harness import HARNESS_TIME, run_head_test

import tfxc.heads.top_k as top_k
from tfxc._tf import tf
from tfxc.encoders.dense_features import DenseFeaturesEncoder
from tfxc.errors import ConfigError
from tfxc.heads.linear import LinearHead


def make_head(num_labels=50, dim=8, use_bias=True, seed=1):
    head = LinearHead(num_labels, use_bias=use_bias, init_stddev=0.5, seed=seed)
    head.build((None, dim))
    if use_bias:
        head.bias.assign(np.random.default_rng(seed).normal(size=num_labels).astype(np.float32))
    return head


def test_init_is_normal_with_the_configured_stddev():
    head = LinearHead(20000, init_stddev=0.01, seed=3)
    head.build((None, 64))
    w = head.kernel.numpy()
    assert w.shape == (20000, 64) and head.bias is None
    assert abs(w.std() - 0.01) < 2e-4 and abs(w.mean()) < 2e-4


def test_label_logits_gradient_touches_only_the_sampled_rows():
    head = make_head()
    x = tf.random.stateless_normal([4, 8], seed=[0, 1])
    ids = tf.constant([7, 3, 41])
    with tf.GradientTape() as tape:
        z = head.label_logits(x, ids)
        total = tf.reduce_sum(z)
    grads = tape.gradient(total, [head.kernel, head.bias])
    expected = x.numpy() @ head.kernel.numpy()[[7, 3, 41]].T + head.bias.numpy()[[7, 3, 41]]
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert all(isinstance(g, tf.IndexedSlices) for g in grads)
    assert sorted(grads[0].indices.numpy().tolist()) == [3, 7, 41]


@pytest.mark.parametrize("use_bias", [False, True])
def test_blockwise_softmax_statistics_match_the_dense_softmax(monkeypatch, use_bias):
    monkeypatch.setattr(top_k, "LABEL_CHUNK", 16)  # 50 labels -> 4 blocks, the last one short
    head = make_head(use_bias=use_bias)
    x = tf.random.stateless_normal([6, 8], seed=[2, 3]) * 2
    y = np.array([0, 49, 16, 15, 3, 3])
    ce, vals, ids = head.softmax_statistics(x, tf.constant(y, tf.int64), 5)
    z = x.numpy().astype(np.float64) @ head.kernel.numpy().T + (head.bias.numpy() if use_bias else 0)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    np.testing.assert_allclose(ce.numpy(), lse - z[np.arange(6), y], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ids.numpy(), np.argsort(-z, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(vals.numpy(), np.sort(z, axis=1)[:, ::-1][:, :5], rtol=1e-5, atol=1e-5)
    probs, top_ids = head.top_k(x, 3)
    np.testing.assert_allclose(probs.numpy(), np.exp(np.sort(z, axis=1)[:, ::-1][:, :3] - lse[:, None]),
                               rtol=1e-5)
    np.testing.assert_array_equal(top_ids.numpy(), ids.numpy()[:, :3])


def test_plain_softmax_loss_is_the_cross_entropy():
    head = make_head()
    x = tf.random.stateless_normal([3, 8], seed=[4, 5])
    labels = tf.ragged.constant([[2], [0], []], dtype=tf.int64)
    loss = head.per_example_loss(head(x), labels).numpy()
    z = head(x).numpy().astype(np.float64)
    lse = np.log(np.exp(z).sum(1))
    np.testing.assert_allclose(loss, [lse[0] - z[0, 2], lse[1] - z[1, 0], 0.0], rtol=1e-5)


def test_dense_features_encoder_scatters_rows():
    enc = DenseFeaturesEncoder(6, normalize=False)
    batch = {"feat_idx": tf.ragged.constant([[0, 5], [], [2]], dtype=tf.int64),
             "feat_val": tf.ragged.constant([[1.0, -2.0], [], [3.0]])}
    np.testing.assert_array_equal(enc(batch).numpy(), [[1, 0, 0, 0, 0, -2], [0] * 6, [0, 0, 3, 0, 0, 0]])
    normalized = DenseFeaturesEncoder(6, normalize=True)(batch).numpy()
    np.testing.assert_allclose(np.linalg.norm(normalized[[0, 2]], axis=1), [1.0, 1.0], rtol=1e-6)
    with pytest.raises(ConfigError, match="use 'sparse_bow' for sparse features"):
        DenseFeaturesEncoder(10**6)


@pytest.mark.slow(reason=HARNESS_TIME)
def test_head_contract_with_its_own_loss_and_with_a_sampled_objective(tmp_path):
    run_head_test(tmp_path / "softmax", {"name": "linear", "use_bias": True, "init_stddev": 0.1}, multiclass=True)
    run_head_test(tmp_path / "bsgd", {"name": "linear", "init_stddev": 0.1}, multiclass=True,
                  loss={"name": "bsgd", "negative_correction": "logq"})
