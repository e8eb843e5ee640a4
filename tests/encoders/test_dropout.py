"""The dropout layer with the cheaper mask (tfxc/encoders/dropout.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.encoders.dropout import Dropout, dropout_mask


@pytest.mark.parametrize("rate, levels", [(0.5, 256), (0.25, 256), (0.3, 65536), (0.1, 65536), (0.0, 256)])
def test_the_mask_drops_the_rate_and_keeps_each_expectation(rate, levels):
    shape = (257, 129)  # an odd size: the last random word is only partly used
    mask = dropout_mask(tf.constant(shape), rate, tf.constant([3, 11], tf.int32)).numpy()
    keep = 1 - round(rate * levels) / levels  # the rate rounded to the chunk's resolution
    assert mask.shape == shape and mask.dtype == np.float32
    np.testing.assert_allclose(np.unique(mask), [1 / keep] if rate == 0 else [0, 1 / keep], rtol=1e-6)
    dropped = float(np.mean(mask == 0))
    sd = np.sqrt(rate * (1 - rate) / mask.size)
    assert abs(dropped - rate) < 5 * sd + 1e-6, (dropped, rate)


def test_the_mask_is_a_function_of_the_seed():
    first, again, other = (dropout_mask(tf.constant([64, 64]), 0.5, tf.constant(seed, tf.int32)).numpy()
                           for seed in ([1, 2], [1, 2], [1, 3]))
    np.testing.assert_array_equal(first, again)
    assert np.mean(first != other) > 0.4  # independent masks differ in about half the places


def test_the_layer_is_the_identity_outside_training_and_its_gradient_is_the_mask():
    layer = Dropout(0.5, seed=7)
    x = tf.random.stateless_normal([32, 16], [0, 1])
    np.testing.assert_array_equal(layer(x, training=False).numpy(), x.numpy())
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grad = tape.gradient(y, x).numpy()
    assert set(np.unique(grad)) == {0.0, 2.0}
    np.testing.assert_array_equal(y.numpy(), x.numpy() * grad)


def test_a_restored_layer_draws_the_masks_the_uninterrupted_one_draws(tmp_path):
    """Exact resume: the seed generator's state is checkpointed, so the masks after a restore are the same."""
    x = tf.ones([8, 32])
    layer = Dropout(0.3, seed=5)
    layer(x, training=True)
    path = tf.train.Checkpoint(layer=layer).write(str(tmp_path / "ckpt"))
    expected = [layer(x, training=True).numpy() for _ in range(3)]
    restored = Dropout(0.3, seed=5)
    restored(x, training=True)  # a draw the checkpoint's state overwrites
    tf.train.Checkpoint(layer=restored).read(path).assert_consumed()
    for want in expected:
        np.testing.assert_array_equal(restored(x, training=True).numpy(), want)


def test_successive_calls_draw_new_masks():
    layer = Dropout(0.5, seed=1)
    x = tf.ones([16, 64])
    assert np.mean(layer(x, training=True).numpy() != layer(x, training=True).numpy()) > 0.4


@pytest.mark.parametrize("rate", [-0.1, 1.0, float("nan")])
def test_rates_outside_zero_to_one_are_refused(rate):
    with pytest.raises(ValueError, match="rate"):
        Dropout(rate)
