"""model.precision: bfloat16 products for the heads, float32 weights, gradients and losses."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import keras, tf
from tfxc.build_context import BuildContext
from tfxc.config.loading import load_config_data
from tfxc.errors import ConfigError
from tfxc.model import build_model
from tfxc.precision import matmul_dtype, mixed_matmul, native_bfloat16, resolve


def test_auto_follows_the_machine_and_the_others_are_what_they_say():
    assert resolve("float32") == "float32" and resolve("mixed_bfloat16") == "mixed_bfloat16"
    assert resolve("auto") == ("mixed_bfloat16" if native_bfloat16() else "float32")
    assert matmul_dtype("mixed_bfloat16") == tf.bfloat16 and matmul_dtype("float32") == tf.float32


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="model.precision 'bf16' is not one of float32, mixed_bfloat16, auto"):
        load_config_data({"data": {"dir": "x"}, "model": {"precision": "bf16"}})


def test_mixed_matmul_rounds_the_operands_to_bfloat16_and_returns_float32_gradients():
    rng = np.random.RandomState(0)
    a = tf.Variable(rng.randn(3, 8).astype("float32"))
    b = tf.Variable(rng.randn(8, 5).astype("float32"))
    with tf.GradientTape() as tape:
        out = mixed_matmul(a, b, tf.bfloat16)
        loss = tf.reduce_sum(out)
    grad_a, grad_b = tape.gradient(loss, [a, b])
    assert out.dtype == tf.float32 and grad_a.dtype == tf.float32 and grad_b.dtype == tf.float32
    rounded = [tf.cast(tf.cast(x, tf.bfloat16), tf.float32).numpy() for x in (a, b)]
    np.testing.assert_allclose(out.numpy(), rounded[0] @ rounded[1], rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(grad_a.numpy(), np.tile(rounded[1].sum(1), (3, 1)), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("head", ["softmax", "one_vs_all", "linear", "mach"])
def test_heads_under_mixed_bfloat16_score_as_in_float32_within_bfloat16_rounding(head):
    context = BuildContext(num_features=50, num_labels=40, seed=0, num_points=100,
                           label_freq=np.arange(1, 41, dtype=np.int64))
    batch = {"feat_idx": tf.ragged.constant([[1, 4, 9], [0, 3]], tf.int64),
             "feat_val": tf.ragged.constant([[1.0, 0.5, 2.0], [1.5, 1.0]]),
             "labels": tf.ragged.constant([[2, 7], [39]], tf.int64)}
    extra = {"mach": {"num_buckets": 8, "num_repetitions": 2}}.get(head, {})
    outputs = {}
    for precision in ("float32", "mixed_bfloat16"):
        config = load_config_data({"data": {"dir": "x"}, "model": {
            "precision": precision, "encoder": {"name": "sparse_bow", "embedding_dim": 16},
            "head": {"name": head, **extra}}})
        keras.utils.set_random_seed(0)  # the same initial weights for both
        model = build_model(config.model, context)
        assert model.head.matmul_dtype == (tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model.per_example_loss(batch, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        assert loss.dtype == tf.float32 and all(g.dtype == tf.float32 for g in grads if g is not None)
        outputs[precision] = (float(loss), model(batch).numpy())
    np.testing.assert_allclose(outputs["mixed_bfloat16"][1], outputs["float32"][1], rtol=2e-2, atol=2e-2)
    assert outputs["mixed_bfloat16"][0] == pytest.approx(outputs["float32"][0], rel=1e-2)


def test_a_bfloat16_head_serves_a_few_rows_in_float32_and_larger_batches_in_bfloat16():
    """The SavedModel's small batches skip the per-call cast of the weights (tfxc.export.serving_modules)."""
    from tfxc.export.serving_modules import FLOAT32_SERVING_MAX_ROWS, ServingModule

    context = BuildContext(num_features=50, num_labels=40, seed=0)
    config = load_config_data({"data": {"dir": "x"}, "model": {
        "precision": "mixed_bfloat16", "encoder": {"name": "sparse_bow", "embedding_dim": 16},
        "head": {"name": "softmax"}}})
    model = build_model(config.model, context)
    module = ServingModule(model, [f"l{i}" for i in range(40)], 5, 50)
    rng = np.random.RandomState(1)

    def served_and_expected(rows):
        lengths = rng.randint(1, 6, size=rows)
        idx, val = rng.randint(0, 50, size=lengths.sum()), rng.rand(lengths.sum()).astype("float32")
        splits = np.concatenate([[0], np.cumsum(lengths)])
        served = module.serve(tf.constant(idx, tf.int64), tf.constant(val), tf.constant(splits, tf.int64))
        ragged = {"feat_idx": tf.RaggedTensor.from_row_splits(tf.constant(idx, tf.int64), splits),
                  "feat_val": tf.RaggedTensor.from_row_splits(tf.constant(val), splits)}
        with model.head.products_in(tf.float32):
            in_float32 = model.top_k(ragged, 5)[0].numpy()
        return served["scores"].numpy(), in_float32, model.top_k(ragged, 5)[0].numpy()

    served, in_float32, in_bfloat16 = served_and_expected(3)
    assert model.head.matmul_dtype == tf.bfloat16  # the block restored it
    np.testing.assert_allclose(served, in_float32, rtol=1e-6, atol=1e-7)
    assert not np.allclose(in_float32, in_bfloat16, rtol=1e-6, atol=1e-7)  # the two precisions do differ
    served, _, in_bfloat16 = served_and_expected(FLOAT32_SERVING_MAX_ROWS + 4)
    np.testing.assert_allclose(served, in_bfloat16, rtol=1e-6, atol=1e-7)
