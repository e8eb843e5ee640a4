"""MHP: the Multi-Head Product head (single-label classification).

Reference: Liang et al., "Multi-Head Encoding for Extreme Label Classification"
(TPAMI 2025, arXiv 2412.10182), §3.2 of algorithms.md.

A label's code is written in mixed radix as H digits (`tfxc.heads.label_codes`),
and one linear layer with Σ n_h outputs predicts every digit: head h's logits
z_h are the outputs [offset_h, offset_h + n_h). The model of a label is the
product of its digits' head probabilities, P(y) = Π_h p_h(d_h), so the head has
(dim + 1)·Σ n_h parameters instead of (dim + 1)·L (30,000 labels as 174 × 173:
347 outputs).

Losses (`MhpHeadConfig.loss`):
  "product"        Σ_h CE(z_h, d_h): the negative log-likelihood of exactly the product
                   model that `top_k` ranks by (the repository's unused `loss_fn`);
  "concat_softmax" −Σ_h log softmax(z)[offset_h + d_h], one softmax over all Σ n_h outputs
                   (the ImageNet code as run, `loss_fn_mhot`);
  "soft_margin"    the mean BCE of the Σ n_h outputs against the digits' concatenated
                   one-hots (the CIFAR code, `multilabel_soft_margin_loss`).
A row with several labels averages its labels' losses; a row with none gives 0.
"product" is the default: it is the likelihood of the very model `top_k` decodes,
and on 5 % of wordnet-nextword's train held out (one epoch, 150 × 200) it tied
the concatenated softmax (P@1 11.39 vs 11.46, P@5 5.00 both) while the
soft-margin loss fell far behind (6.77 / 4.13): its per-output BCE spreads the
gradient over Σ n_h − H negatives with no competition inside a digit.

`top_k` decodes global labels without materialising L scores: a beam over the
heads, most significant first, keeps the k + 1 best code prefixes (scores are
sums of per-head log-probabilities, or log-sigmoids for "soft_margin"), with
prefixes that cannot reach a code < L dropped. Keeping k + 1 makes it exact:
a top-k code's prefix can only be displaced by better prefixes whose
completions with the same suffix are valid codes, and at most one prefix per
level (the largest valid one) has invalid completions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.heads.base import Head
from tfxc.heads.label_codes import LabelCodeOptions, LabelOrderTables, suffix_products, tf_encode_digits

MHP_LOSSES = ("product", "concat_softmax", "soft_margin")


@dataclass(frozen=True)
class MhpHeadConfig(LabelCodeOptions):
    """Config of `MhpHead`.

    Attributes:
      name: "mhp".
      num_classes, num_heads, label_order: the label codes (`tfxc.heads.label_codes.LabelCodeOptions`).
      loss: one of `MHP_LOSSES` (module docstring).
      use_bias: a bias per output.
    """

    name: str = "mhp"
    loss: str = "product"
    use_bias: bool = True

    def validate(self, path: str) -> None:
        self.validate_codes(path)
        if self.loss not in MHP_LOSSES:
            raise ConfigError(f"{path}.loss '{self.loss}' is not one of {', '.join(MHP_LOSSES)}")


def product_top_k(log_scores: list, radices: list[int], num_codes: int, k):
    """The k codes < num_codes with the largest Σ_h log_scores[h][:, d_h], exactly (module docstring).

    Args:
      log_scores: H tensors float32 [B, n_h], per-head log-scores.
      radices: [n_1, ..., n_H].
      num_codes: L; codes ≥ L are never returned.
      k: a Python int or a scalar int32 tensor, clipped to L.

    Returns:
      (summed log-scores float32 [B, k], codes int64 [B, k]), best first.
    """
    places = suffix_products(radices)
    k = tf.minimum(tf.cast(k, tf.int32), num_codes)
    rows = tf.shape(log_scores[0])[0]
    beam_scores = tf.zeros([rows, 1], tf.float32)
    beam_codes = tf.zeros([rows, 1], tf.int64)
    for h, (n, place) in enumerate(zip(radices, places)):
        digits = tf.range(n, dtype=tf.int64)
        codes = tf.reshape(beam_codes[:, :, None] * n + digits, [rows, -1])
        scores = tf.reshape(beam_scores[:, :, None] + tf.cast(log_scores[h], tf.float32)[:, None, :], [rows, -1])
        # A prefix survives when its smallest completion (all further digits 0) is a real code.
        scores = tf.where(codes * place < num_codes, scores, -np.inf)
        width = k if h == len(radices) - 1 else k + 1
        beam_scores, best = tf.math.top_k(scores, tf.minimum(width, tf.shape(scores)[1]))
        beam_codes = tf.gather(codes, best, batch_dims=1)
    return beam_scores, beam_codes


class MhpHead(LabelOrderTables, Head):
    """Multi-head product classifier (module docstring).

    Call returns the concatenated head logits float32 [B, Σ n_h]. Scores of
    `top_k`: Π_h p_h(d_h) (products of sigmoids for "soft_margin").

    Example:
      head = MhpHead(num_labels=95, radices=[10, 10])
      scores, ids = head.top_k(tf.random.normal([2, 16]), k=5)   # ids < 95 only
    """

    def __init__(self, num_labels: int, radices, loss: str = "product", use_bias: bool = True, label_order=None,
                 **kwargs):
        super().__init__(num_labels, **kwargs)
        self.radices, self.loss, self.use_bias = [int(n) for n in radices], loss, use_bias
        self.offsets = np.concatenate([[0], np.cumsum(self.radices)]).tolist()
        self._label_order = label_order

    @classmethod
    def from_config_dataclass(cls, config: MhpHeadConfig, context):
        radices = config.radices_for(context.num_labels)
        order = config.label_order_for(context, radices)
        return cls(context.num_labels, radices, loss=config.loss, use_bias=config.use_bias, label_order=order,
                   name="head")

    def build(self, input_shape):
        outputs = self.offsets[-1]
        self.kernel = self.add_weight(shape=(input_shape[-1], outputs), name="kernel", initializer="glorot_uniform")
        self.bias = self.add_weight(shape=(outputs,), name="bias", initializer="zeros") if self.use_bias else None
        self.build_order_tables(self._label_order)
        self.built = True

    def call(self, features, training=False):
        logits = tf.matmul(tf.cast(features, tf.float32), self.kernel.value)
        return logits + self.bias.value if self.use_bias else logits

    def head_logits(self, logits: tf.Tensor) -> list:
        """The H slices float32 [B, n_h] of the concatenated logits."""
        return [logits[:, a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    def per_example_loss(self, logits, labels):
        rows = labels.value_rowids()
        digits = tf_encode_digits(self.codes_of(labels.values), self.radices)          # [P, H]
        columns = digits + tf.constant(self.offsets[:-1], tf.int64)                    # [P, H]
        own = tf.gather(tf.gather(logits, rows), columns, batch_dims=1)               # [P, H]
        if self.loss == "product":
            lse = tf.stack([tf.reduce_logsumexp(z, axis=1) for z in self.head_logits(logits)], axis=1)
            per_label = tf.reduce_sum(tf.gather(lse, rows) - own, axis=1)
        elif self.loss == "concat_softmax":
            per_label = tf.reduce_sum(tf.gather(tf.reduce_logsumexp(logits, axis=1), rows)[:, None] - own, axis=1)
        else:  # soft_margin: mean over all outputs of softplus(z) − target·z
            total = tf.reduce_sum(tf.nn.softplus(logits), axis=1)
            per_label = (tf.gather(total, rows) - tf.reduce_sum(own, axis=1)) / float(self.offsets[-1])
        nrows = labels.nrows(out_type=tf.int64)
        count = tf.math.unsorted_segment_sum(tf.ones_like(per_label), rows, nrows)
        return tf.math.unsorted_segment_sum(per_label, rows, nrows) / tf.maximum(count, 1.0)

    def log_scores(self, logits: tf.Tensor) -> list:
        """Per-head log-scores float32 [B, n_h] that `top_k` sums."""
        heads = self.head_logits(logits)
        if self.loss == "soft_margin":
            return [tf.math.log_sigmoid(z) for z in heads]
        return [tf.nn.log_softmax(z, axis=1) for z in heads]

    def top_k(self, features, k):
        log_scores, codes = product_top_k(self.log_scores(self(features)), self.radices, self.num_labels, k)
        return tf.exp(log_scores), self.labels_of(codes)

    @property
    def num_parameters(self) -> int:
        """Trainable parameters: the [dim, Σ n_h] kernel and its bias (once built)."""
        return int(np.prod(self.kernel.shape)) + (self.offsets[-1] if self.use_bias else 0)

    def memory_scores(self, training: bool, labels_per_point: float = 1.0) -> int:
        """The concatenated head logits [Σ n_h] of each example."""
        return self.offsets[-1]

    def get_config(self):
        return {**super().get_config(), "radices": self.radices, "loss": self.loss, "use_bias": self.use_bias,
                "label_order": self._label_order}
