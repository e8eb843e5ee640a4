"""Heads with one weight vector per label: one-vs-all sigmoid and softmax."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.heads.base import Head, positive_logits

# Labels scored per matmul in `top_k` (bounds the [B, chunk] temporary).
TOP_K_LABEL_CHUNK = 65536


def chunked_top_k(chunk_logits, num_labels: int, k, chunk: int = TOP_K_LABEL_CHUNK):
    """Top-k logits over all labels, scored `chunk` labels at a time; also the row-wise logsumexp.

    Only a [B, chunk] block of logits exists at any time, so a 360k-label
    softmax is ranked and normalised without a [B, L] matrix.

    Args:
      chunk_logits: callable (start, stop) -> float32 [B, stop - start], the logits of labels [start, stop).
      num_labels: L.
      k: a Python int or a scalar int32 tensor (serving takes k as an input); clipped to L.
      chunk: labels per block.

    Returns:
      (logits float32 [B, k], ids int64 [B, k], logsumexp float32 [B]), best first.
    """
    k = tf.minimum(tf.cast(k, tf.int32), num_labels)
    best_vals, best_ids, lse = [], [], []
    for start in range(0, num_labels, chunk):
        stop = min(start + chunk, num_labels)
        logits = chunk_logits(start, stop)
        vals, ids = tf.math.top_k(logits, k=tf.minimum(k, stop - start))
        best_vals.append(vals)
        best_ids.append(tf.cast(ids, tf.int64) + start)
        lse.append(tf.reduce_logsumexp(logits, axis=1))
    vals, ids, lse = tf.concat(best_vals, 1), tf.concat(best_ids, 1), tf.reduce_logsumexp(tf.stack(lse, 1), 1)
    if len(best_vals) > 1:
        vals, order = tf.math.top_k(vals, k=k)
        ids = tf.gather(ids, order, batch_dims=1)
    return vals, ids, lse


def softmax_cross_entropy(logits: tf.Tensor, labels: tf.RaggedTensor, label_smoothing: float = 0.0) -> tf.Tensor:
    """−(1/|y|) Σ_{l∈y} log softmax(z)_l per row (0 for rows without labels), float32 [B].

    With label smoothing ε the target is (1−ε)·uniform-over-y + ε/L. Only the
    positive logits are gathered; no dense [B, L] target is built.
    """
    lse = tf.reduce_logsumexp(logits, axis=1)
    pos = positive_logits(logits, labels)
    count = tf.cast(pos.row_lengths(), logits.dtype)
    target_term = tf.reduce_sum(pos, axis=1) / tf.maximum(count, 1.0)
    loss = (1.0 - label_smoothing) * (lse - target_term)
    if label_smoothing:
        loss += label_smoothing * (lse - tf.reduce_mean(logits, axis=1))
    return loss * tf.cast(count > 0, logits.dtype)


@dataclass(frozen=True)
class OneVsAllHeadConfig:
    """Config of `OneVsAllHead` (multi-label).

    Attributes:
      name: "one_vs_all".
      use_bias: learn a bias per label.
    """

    name: str = "one_vs_all"
    use_bias: bool = True

    def validate(self, path: str) -> None:
        pass


@dataclass(frozen=True)
class SoftmaxHeadConfig:
    """Config of `SoftmaxHead` (multi-class, or multi-label with normalised targets).

    Attributes:
      name: "softmax".
      use_bias: learn a bias per label.
      label_smoothing: mix the target distribution with the uniform one.
    """

    name: str = "softmax"
    use_bias: bool = True
    label_smoothing: float = 0.0

    def validate(self, path: str) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"{path}.label_smoothing ({self.label_smoothing}) must be in [0, 1)")


class DenseLabelHead(Head):
    """Shared parts of heads with a [dim, L] kernel: logits and chunked top-k."""

    def __init__(self, num_labels: int, use_bias: bool = True, **kwargs):
        super().__init__(num_labels, **kwargs)
        self.use_bias = use_bias

    def build(self, input_shape):
        dim = input_shape[-1]
        self.kernel = self.add_weight(shape=(dim, self.num_labels), name="kernel", initializer="glorot_uniform")
        self.bias = (self.add_weight(shape=(self.num_labels,), name="bias", initializer="zeros")
                     if self.use_bias else None)
        self.built = True

    def call(self, features, training=False):
        logits = tf.matmul(features, self.kernel.value)
        return logits + self.bias.value if self.use_bias else logits

    def _chunk_logits(self, features: tf.Tensor, start: int, stop: int) -> tf.Tensor:
        logits = tf.matmul(features, self.kernel.value[:, start:stop])
        return logits + self.bias.value[start:stop] if self.use_bias else logits

    def _chunked_top_k(self, features: tf.Tensor, k):
        return chunked_top_k(lambda start, stop: self._chunk_logits(features, start, stop), self.num_labels, k)

    def get_config(self):
        return {**super().get_config(), "use_bias": self.use_bias}


class OneVsAllHead(DenseLabelHead):
    """One independent sigmoid classifier per label (multi-label).

    Loss per example: Σ_l BCE(σ(z_l), y_l) = Σ_l softplus(z_l) − Σ_{l∈y} z_l,
    computed from the positive logits only (no dense multi-hot target).
    Scores: σ(z_l).

    Call returns logits float32 [B, L].

    Example:
      head = OneVsAllHead(num_labels=100)
      scores, ids = head.top_k(tf.random.normal([2, 16]), k=5)   # [2, 5] each
    """

    @classmethod
    def from_config_dataclass(cls, config: OneVsAllHeadConfig, context):
        # context.seed is unused: the Glorot initialiser draws from Keras' global seed (runtime.seed).
        return cls(context.num_labels, use_bias=config.use_bias, name="head")

    def per_example_loss(self, logits, labels):
        return tf.reduce_sum(tf.nn.softplus(logits), axis=1) - tf.reduce_sum(positive_logits(logits, labels), axis=1)

    def top_k(self, features, k):
        logits, ids, _ = self._chunked_top_k(features, k)
        return tf.sigmoid(logits), ids


class SoftmaxHead(DenseLabelHead):
    """A softmax over all labels.

    Multi-class rows have one label and this is the usual cross-entropy. For
    multi-label rows the target is uniform over the row's labels,
    −(1/|y|) Σ_{l∈y} log softmax(z)_l, a strong P@k baseline in XMC; rows
    without labels contribute 0. With label smoothing ε the target is
    (1−ε)·target + ε/L.
    Scores: softmax probabilities.

    Call returns logits float32 [B, L].
    """

    def __init__(self, num_labels: int, use_bias: bool = True, label_smoothing: float = 0.0, **kwargs):
        super().__init__(num_labels, use_bias=use_bias, **kwargs)
        self.label_smoothing = label_smoothing

    @classmethod
    def from_config_dataclass(cls, config: SoftmaxHeadConfig, context):
        return cls(context.num_labels, use_bias=config.use_bias, label_smoothing=config.label_smoothing,
                   name="head")

    def per_example_loss(self, logits, labels):
        return softmax_cross_entropy(logits, labels, self.label_smoothing)

    def top_k(self, features, k):
        logits, ids, lse = self._chunked_top_k(features, k)
        return tf.exp(logits - lse[:, None]), ids

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
