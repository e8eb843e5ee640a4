"""Dropout whose mask costs half the random numbers of Keras' (`Dropout`).

Keras' dropout draws one float32 uniform per activation (`tf.random.stateless_uniform`, Philox): on
delicious' [128 x 1024] activations that was 0.86 ms of a 5-6 ms training step, more than any
product but the head's (`tools/profile_ops.py`). A keep/drop decision needs far fewer random bits
than a float: here each 32-bit Philox word decides four activations by its 8-bit chunks where `rate`
is a multiple of 2^-8 (0.5, 0.25, ...), else two by its 16-bit halves, and the drop probability is
`rate` rounded to a multiple of 2^-16 (the scale then keeps every activation's expectation exact).
"""

from __future__ import annotations

from tfxc._tf import keras, tf

# Random bits per keep/drop decision: 8 where the rate is a multiple of 2^-8 (0.5, 0.25, ...), else 16.
MASK_BITS = (8, 16)
CHUNK_TYPES = {8: tf.uint8, 16: tf.uint16}


def dropout_mask(shape, rate: float, seed: tf.Tensor, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """The multiplier of inverted dropout: 0 where an activation is dropped, 1 / keep where it is kept.

    Args:
      shape: int32 [rank], the activations' shape.
      rate: the drop probability, in [0, 1); used as round(rate · 2^16) / 2^16.
      seed: int32 [2], a stateless seed (the same seed gives the same mask).
      dtype: of the result.

    Returns:
      `dtype` tensor of `shape`, values in {0, 1 / keep}, keep = 1 − the rounded rate.
    """
    bits = next(b for b in MASK_BITS if (rate * (1 << b)).is_integer() or b == MASK_BITS[-1])
    levels, per_word = 1 << bits, 32 // bits
    threshold = min(round(rate * levels), levels - 1)
    size = tf.reduce_prod(shape)
    words = tf.random.stateless_uniform(tf.reshape((size + per_word - 1) // per_word, [1]), seed, minval=None,
                                        maxval=None, dtype=tf.uint32)
    chunks = tf.reshape(tf.bitcast(words, CHUNK_TYPES[bits]), [-1])[:size]  # each word's 32 / bits chunks
    keep = tf.reshape(chunks >= tf.constant(threshold, CHUNK_TYPES[bits]), shape)
    return tf.cast(keep, dtype) * tf.constant(levels / (levels - threshold), dtype)


class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with the mask of `dropout_mask`; the same seed generator (so the same
    checkpointed state and the same exact resume) and the same arguments, except `noise_shape`."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        if not 0.0 <= rate < 1.0:  # NaN fails the comparison too
            raise ValueError(f"rate must be in [0, 1); got {rate}")

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        # Keras keeps its seed state as int64; the stateless ops take int32 (as keras.random does).
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), 2**31 - 2), tf.int32)
        return inputs * dropout_mask(tf.shape(inputs), self.rate, seed, inputs.dtype)
