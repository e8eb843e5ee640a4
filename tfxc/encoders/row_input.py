"""Carrying a row's position in its split next to its encoding, for heads with per-row training state.

XR-Transformer's level heads train on each row's matcher-aware negatives (`man`):
the clusters the previous level predicted for that training row, computed once
before the level starts (algorithms.md §1.6, step 2d). The head looks them up by
the row's `row_id` (`tfxc.data.tfrecord`), which `WithRowId` appends to the inner
encoder's output as one float32 column: exact for every id below 2^24, the most
rows such a head accepts. A batch without row ids (serving) carries −1.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.encoders.base import WrappingEncoder

# float32 holds every integer up to 2^24 exactly.
MAX_ROWS = 2 ** 24


def split_row_id(features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """[h, row id] of `WithRowId` -> (h float32 [B, dim], row ids int32 [B], −1 where unknown)."""
    return features[:, :-1], tf.cast(features[:, -1], tf.int32)


class WithRowId(WrappingEncoder):
    """An encoder's output with the row's id in its split appended (see the module docstring).

    Returns:
      float32 [B, dim + 1]: [h, row_id] (−1 without a "row_id" in the batch).
    """

    @property
    def output_dim(self) -> int:
        return self.inner.output_dim + 1

    def call(self, inputs, training=False):
        h = tf.cast(self.inner(inputs, training=training), tf.float32)
        if "row_id" in inputs:
            rows = tf.cast(inputs["row_id"], tf.float32)
        else:
            rows = tf.fill(tf.shape(h)[:1], -1.0)
        return tf.concat([h, rows[:, None]], axis=1)
