"""A trained encoder, frozen and scaled to unit length: the embedding half of XR-Transformer's ranker input.

XR-Transformer ranks labels on [TF-IDF ⊕ row_l2_normalize(E)], E the fine-tuned
encoder's embedding, which no longer changes while the ranker trains
(algorithms.md §1.6, steps 3–5). `FrozenUnitEncoder` runs the inner encoder in
inference mode (no dropout) and holds its weights out of training.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.encoders.base import Encoder, WrappingEncoder


def base_encoder(encoder: Encoder) -> Encoder:
    """The innermost encoder under wrappers that append to or rescale its output (their `inner`)."""
    while hasattr(encoder, "inner"):
        encoder = encoder.inner
    return encoder


class FrozenUnitEncoder(WrappingEncoder):
    """`inner`'s output scaled to unit L2 norm, float32 [B, dim]; its weights are not trained.

    The ranker's training rows embed the same in every epoch: `cache_training_rows` hands over
    their embeddings, computed once, and a training step then gathers them by `row_id` instead of
    running the encoder (PECOS likewise trains its ranker on one [X ⊕ E] matrix). Evaluation and
    serving always run the encoder.
    """

    def __init__(self, inner: Encoder, **kwargs):
        super().__init__(inner, **kwargs)
        self.inner.trainable = False
        object.__setattr__(self, "_cache", None)  # not tracked: never part of a checkpoint

    def cache_training_rows(self, embeddings) -> None:
        """Training steps read row i's embedding from `embeddings` (float32 [N_train, dim], raw) by its row id.

        Create it under the strategy's scope; it is not saved with the model."""
        object.__setattr__(self, "_cache", tf.Variable(tf.constant(embeddings, tf.float32), trainable=False,
                                                       name="cached_training_embeddings"))

    def call(self, inputs, training=False):
        if training and self._cache is not None and "row_id" in inputs:
            embeddings = tf.gather(self._cache, inputs["row_id"])
        else:
            embeddings = tf.cast(self.inner(inputs, training=False), tf.float32)
        return tf.math.l2_normalize(embeddings, axis=1)

    @property
    def sparse_variables(self) -> list:
        return []
