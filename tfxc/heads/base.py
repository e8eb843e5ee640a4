"""The contract every classification head implements.

A head maps encoder features [B, dim] to label scores and owns its loss, so
the training loop, the evaluator and the SavedModel never need to know which
head they drive:

  outputs = head(features, training)              # head-specific (logits, bucket logits, ...)
  loss    = head.per_example_loss(outputs, labels) # float32 [B]
  scores, ids = head.top_k(features, k)            # float32 [B, k], int64 [B, k], best first

`top_k` is first-class so that evaluation and serving never materialise a
dense [N, L] score matrix; heads over huge label spaces compute it from
buckets, trees or label chunks.
"""

from __future__ import annotations

from tfxc._tf import keras, tf


class Head(keras.layers.Layer):
    """Base class of classification heads (see the module docstring).

    Args:
      num_labels: size of the label space L.
    """

    def __init__(self, num_labels: int, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = num_labels

    def per_example_loss(self, outputs, labels: tf.RaggedTensor) -> tf.Tensor:
        """Loss of each example, float32 [B]; `labels` is int64 ragged [B, None]."""
        raise NotImplementedError

    def top_k(self, features: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
        """The k best labels of each row: (scores float32 [B, k], ids int64 [B, k]), best first.

        `k` is a Python int or a scalar int32 tensor; heads clip it to num_labels.
        """
        raise NotImplementedError

    def evaluation_top_k(self, model, k: int):
        """A callable batch -> (scores float32 [B, k], ids int64 [B, k]) as NumPy, for evaluation.

        The default runs `model.top_k` in a tf.function; heads with a faster
        host-side path (MACH's Cython gather) override this.
        """
        fn = tf.function(lambda batch: model.top_k(batch, k), reduce_retracing=True)

        def top_k(batch):
            scores, ids = fn(batch)
            return scores.numpy(), ids.numpy()

        return top_k

    @property
    def sparse_variables(self) -> list:
        return []

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels}


def positive_logits(logits: tf.Tensor, labels: tf.RaggedTensor) -> tf.RaggedTensor:
    """Gathers logits[b, l] for every positive label l of row b, as a ragged [B, None].

    Avoids building a dense multi-hot [B, L] target.
    """
    rows = labels.value_rowids()
    values = tf.gather_nd(logits, tf.stack([rows, labels.values], axis=1))
    return tf.RaggedTensor.from_value_rowids(values, rows, nrows=tf.shape(logits, out_type=tf.int64)[0])
