"""The frozen unit-length encoder of XR-Transformer's ranker: inference mode, no trainable weights, and the
training rows' embeddings read from the cache by row id."""

from __future__ import annotations

import numpy as np

from tfxc._tf import keras, tf
from tfxc.encoders.base import Encoder
from tfxc.encoders.frozen import FrozenUnitEncoder, base_encoder


class Doubling(Encoder):
    """2·x through a trainable scale and a dropout: float32 [B, 2]."""

    def build(self, input_shape=None):
        self.scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(2.0), name="scale")
        self.built = True

    @property
    def output_dim(self) -> int:
        return 2

    def call(self, inputs, training=False):
        return tf.nn.dropout(inputs["x"], 0.5) if training else inputs["x"] * self.scale


def test_frozen_encoder_runs_in_inference_mode_and_reads_its_cache_in_training():
    encoder = FrozenUnitEncoder(Doubling())
    encoder.build()
    assert base_encoder(encoder) is encoder.inner and not encoder.trainable_weights
    x = tf.constant([[3.0, 4.0], [1.0, 0.0]])
    np.testing.assert_allclose(encoder({"x": x}, training=True).numpy(), [[0.6, 0.8], [1.0, 0.0]])  # no dropout
    encoder.cache_training_rows(np.array([[0.0, 5.0], [2.0, 0.0], [1.0, 1.0]], np.float32))
    batch = {"x": x, "row_id": tf.constant([2, 0], tf.int64)}
    np.testing.assert_allclose(encoder(batch, training=True).numpy(), [[0.70710677, 0.70710677], [0.0, 1.0]])
    np.testing.assert_allclose(encoder(batch, training=False).numpy(), [[0.6, 0.8], [1.0, 0.0]])  # evaluation
    assert not any("cached" in v.path for v in encoder.weights)  # never saved with the model
