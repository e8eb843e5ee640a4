"""MHS: the Multi-Head Sampling head (and MHS-ArcFace).

Reference: Liang et al., "Multi-Head Encoding for Extreme Label Classification"
(TPAMI 2025, arXiv 2412.10182); the face-recognition head `ArcFaceMHS_B1` of
its repository. Spec: algorithms.md §3.4.

Labels get two-digit codes c = d_1·n_2 + d_2 (`tfxc.heads.label_codes`) and
the classifier is W float32 [n_1, n_2, dim]: one block of n_2 label rows per
first digit. A training step scores only the blocks of the *global* batch's
first digits S = unique(d_1) (all-gathered across replicas, so every replica
and a single process see the same S), plus `extra_blocks` random other blocks:
logits [b, |S|·n_2], and the cross-entropy target of a row is
pos(d_1 in S)·n_2 + d_2. The gradient reaches only the gathered blocks
(row-sparse, `sparse_variables`), so a step costs O(|S|·n_2·dim), not O(L·dim).
With a margin (`MarginOptions`) the logits are s·cos and the target's cosine
takes the ArcFace/CosFace margin (MHS-ArcFace).

Ranking is exact over all labels: logits of blocks of `LABEL_CHUNK` codes at
a time (`tfxc.heads.top_k.chunked_top_k`), so a batch never holds more than a
[B, chunk] slice; codes ≥ L (the unused tail of n_1·n_2) are masked.

Unlike the repository (whose MHS head is not wrapped in DDP, so each GPU trains
its own W), W here is one mirrored variable like every other weight.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.errors import ConfigError
from tfxc.heads.base import Head
from tfxc.heads.label_codes import LabelCodeOptions, LabelOrderTables
from tfxc.heads.margins import MarginOptions
from tfxc.heads.top_k import chunked_top_k

# Logit of an unused code: far below any real one, finite so that a softmax over it stays NaN-free.
_MASKED = -1e9


@dataclass(frozen=True)
class MhsHeadConfig(MarginOptions, LabelCodeOptions):
    """Config of `MhsHead`.

    Attributes:
      name: "mhs".
      num_classes: [n_1, n_2] (n_1·n_2 ≥ L); empty: two balanced heads.
      label_order: which label gets which code (`tfxc.heads.label_codes`).
      extra_blocks: random blocks scored per step beside the batch's own (the CIFAR code's
        `num_group − 1`; 0 = the face head `ArcFaceMHS_B1`).
      init_stddev: W starts as N(0, init_stddev²) (the repository: 0.01).
      cosine, margin, margin_m, margin_scale, easy_margin: cosine logits with an ArcFace or CosFace
        margin on the target (`tfxc.heads.margins.MarginOptions`).
    """

    name: str = "mhs"
    extra_blocks: int = 0
    init_stddev: float = 0.01

    def validate(self, path: str) -> None:
        self.validate_codes(path)
        self.validate_margin(path)
        if self.num_classes and len(self.num_classes) != 2:
            raise ConfigError(f"{path}.num_classes {list(self.num_classes)}: MHS has two heads [n_1, n_2]")
        if not self.num_classes and self.num_heads != 2:
            raise ConfigError(f"{path}.num_heads ({self.num_heads}): MHS has two heads")
        if self.extra_blocks < 0 or self.init_stddev <= 0:
            raise ConfigError(f"{path}: extra_blocks ({self.extra_blocks}) must be >= 0 and init_stddev "
                              f"({self.init_stddev}) > 0")


class MhsHead(LabelOrderTables, Head):
    """Multi-head sampling classifier (module docstring).

    Call returns the features float32 [B, dim] (the loss samples the blocks from
    the labels). Scores of `top_k`: the softmax over all L labels.
    """

    scores_sum_to_one = True  # a row's scores are one distribution over the labels

    def __init__(self, num_labels: int, radices, extra_blocks: int = 0, init_stddev: float = 0.01, seed=None,
                 cosine_margin=None, label_order=None, **kwargs):
        super().__init__(num_labels, **kwargs)
        self.radices = [int(n) for n in radices]
        self.extra_blocks, self.init_stddev, self.seed = extra_blocks, init_stddev, seed
        self.cosine_margin = cosine_margin
        self._label_order = label_order
        # Blocks holding at least one real code.
        self.num_blocks = -(-num_labels // self.radices[1])

    @classmethod
    def from_config_dataclass(cls, config: MhsHeadConfig, context):
        radices = config.radices_for(context.num_labels)
        order = config.label_order_for(context, radices)
        return cls(context.num_labels, radices, extra_blocks=config.extra_blocks, init_stddev=config.init_stddev,
                   seed=context.seed, cosine_margin=config.cosine_margin(), label_order=order, name="head")

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.radices[0], self.radices[1], input_shape[-1]), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=self.init_stddev,
                                                                                  seed=self.seed))
        self.build_order_tables(self._label_order)
        self.built = True

    def call(self, features, training=False):
        return tf.cast(features, tf.float32)

    # === Logits ===
    def _logits(self, features: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
        """features [B, dim] against label rows [K, dim]: float32 [B, K] (s·cos with a margin head)."""
        if self.cosine_margin is not None:
            return self.cosine_margin.logits(features, rows)
        return tf.matmul(features, rows, transpose_b=True)

    def block_logits(self, features: tf.Tensor, blocks: tf.Tensor) -> tf.Tensor:
        """Logits of every code of `blocks` (int [S]): float32 [B, S·n_2], unused codes masked."""
        n2 = self.radices[1]
        # tf.gather on the raw variable along axis 0: the gradient is row-sparse over the blocks.
        rows = tf.reshape(tf.gather(self.kernel.value, blocks), [-1, tf.shape(self.kernel)[2]])
        codes = tf.reshape(tf.cast(blocks, tf.int64)[:, None] * n2 + tf.range(n2, dtype=tf.int64), [-1])
        return tf.where(codes[None, :] < self.num_labels, self._logits(features, rows), _MASKED)

    def _code_logits(self, features: tf.Tensor, start: int, stop: int) -> tf.Tensor:
        """Logits of codes [start, stop) (a label chunk of `top_k`)."""
        rows = tf.reshape(self.kernel.value, [-1, tf.shape(self.kernel)[2]])[start:stop]
        logits = self._logits(features, rows)
        if stop > self.num_labels:  # only the last chunk can hold unused codes
            logits = tf.where(tf.range(start, stop)[None, :] < self.num_labels, logits, _MASKED)
        return logits

    # === Training ===
    def sampled_blocks(self, first_digits: tf.Tensor) -> tf.Tensor:
        """S: the sorted unique first digits of the global batch (−1 = no label, left out), plus extra blocks.

        Call in a replica context (inside `strategy.run`, or eagerly under the default strategy).
        """
        ctx = tf.distribute.get_replica_context()
        gathered = first_digits
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            gathered = ctx.all_gather(tf.identity(first_digits), axis=0)
        blocks = tf.boolean_mask(gathered, gathered >= 0)
        if self.extra_blocks:
            # Seeded by the global batch itself, so every replica draws the same extra blocks.
            seed = tf.stack([tf.reduce_sum(blocks), tf.cast(tf.size(blocks), tf.int64)])
            extra = tf.random.stateless_uniform([self.extra_blocks], seed=seed, minval=0, maxval=self.num_blocks,
                                                dtype=tf.int64)
            blocks = tf.concat([blocks, extra], axis=0)
        return tf.sort(tf.unique(blocks).y)

    def per_example_loss(self, features, labels):
        """Cross-entropy over the sampled blocks of each row's label, float32 [B] (0 for a row without).

        MHS is a single-label head: a row with several labels trains on its first.
        """
        n2 = self.radices[1]
        has_label = labels.row_lengths() > 0
        # The first label of each row (a 0 appended, so that an empty last row gathers in range).
        values = tf.concat([tf.cast(labels.values, tf.int64), tf.zeros([1], tf.int64)], axis=0)
        codes = self.codes_of(tf.where(has_label, tf.gather(values, labels.row_splits[:-1]), 0))
        first_digit = tf.where(has_label, codes // n2, -1)
        blocks = self.sampled_blocks(first_digit)
        logits = self.block_logits(features, blocks)
        target = tf.searchsorted(blocks, tf.maximum(first_digit, 0), out_type=tf.int64) * n2 + codes % n2
        if self.cosine_margin is not None:
            logits = self.cosine_margin.at_columns(logits, target)
        loss = tf.reduce_logsumexp(logits, axis=1) - tf.gather(logits, target, batch_dims=1)
        return tf.where(has_label, loss, 0.0)

    # === Ranking ===
    def top_k(self, features, k):
        features = tf.cast(features, tf.float32)
        k = tf.minimum(tf.cast(k, tf.int32), self.num_labels)
        vals, codes, lse = chunked_top_k(lambda a, b: self._code_logits(features, a, b),
                                         self.radices[0] * self.radices[1], k)
        return tf.exp(vals - lse[:, None]), self.labels_of(codes)

    def all_logits(self, features) -> tf.Tensor:
        """Logits of every label in label-id order, float32 [B, L] (evaluation on moderate L only)."""
        logits = self._code_logits(tf.cast(features, tf.float32), 0, self.num_labels)
        return logits if self.label_to_code is None else tf.gather(logits, self.label_to_code.value, axis=1)

    @property
    def sparse_variables(self) -> list:
        return [self.kernel]

    def get_config(self):
        return {**super().get_config(), "radices": self.radices, "extra_blocks": self.extra_blocks,
                "init_stddev": self.init_stddev, "seed": self.seed, "cosine_margin": self.cosine_margin,
                "label_order": self._label_order}

