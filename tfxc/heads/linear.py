"""A linear softmax classifier stored one row per label, for huge class sets and sampled training."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.errors import ConfigError
from tfxc.heads.base import Head
from tfxc.heads.classification_losses import softmax_cross_entropy
from tfxc.heads.label_index import augmented_query, augmented_vectors, candidate_softmax
from tfxc.heads.margins import MarginOptions
from tfxc.heads.top_k import chunked_top_k


@dataclass(frozen=True)
class LinearHeadConfig(MarginOptions):
    """Config of `LinearHead`.

    Attributes:
      name: "linear".
      use_bias: learn a bias per label (the SCENT paper's classifier has none).
      init_stddev: weights start as N(0, init_stddev²) (SCENT: 0.01).
      cosine, margin, margin_m, margin_scale, easy_margin: scaled cosine logits with an ArcFace or
        CosFace margin on the positive, in the full softmax and in the sampled objectives alike
        (`tfxc.heads.margins.MarginOptions`; no bias).
    """

    name: str = "linear"
    use_bias: bool = False
    init_stddev: float = 0.01

    def validate(self, path: str) -> None:
        if self.init_stddev <= 0:
            raise ConfigError(f"{path}.init_stddev ({self.init_stddev}) must be > 0")
        self.validate_margin(path)


class LinearHead(Head):
    """Softmax over z = W h (+ b), with W float32 [L, dim]: one row per label.

    The row layout is what makes sampled objectives cheap: `label_logits`
    gathers the rows of a few labels, so the gradient is an IndexedSlices over
    those rows and a row-sparse optimizer touches nothing else (the SCENT-family
    dual objectives of `tfxc.losses` score only the batch's
    unique labels). Ranking and the full-softmax cross-entropy are computed in
    label blocks (`softmax_statistics`, `top_k`), never as a [B, L] matrix.

    Reference: the `LinearClassifier` of "A Geometry-Aware Efficient Algorithm
    for Compositional Entropic Risk Minimization" (SCENT, arXiv 2602.02877).

    Call returns all logits float32 [B, L] (only for the plain softmax loss on
    moderate L). Scores of `top_k`: softmax probabilities.
    """

    scores_sum_to_one = True  # a row's scores are one distribution over the labels

    supports_label_logits = True
    supports_softmax_statistics = True
    logits_kind = "categorical"

    def __init__(self, num_labels: int, use_bias: bool = False, init_stddev: float = 0.01, seed=None,
                 cosine_margin=None, **kwargs):
        super().__init__(num_labels, **kwargs)
        self.use_bias, self.init_stddev, self.seed = use_bias and cosine_margin is None, init_stddev, seed
        self.cosine_margin = cosine_margin

    @classmethod
    def from_config_dataclass(cls, config: LinearHeadConfig, context):
        return cls(context.num_labels, use_bias=config.use_bias, init_stddev=config.init_stddev, seed=context.seed,
                   cosine_margin=config.cosine_margin(), name="head")

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.num_labels, input_shape[-1]), name="kernel",
                                      initializer=keras.initializers.RandomNormal(stddev=self.init_stddev,
                                                                                  seed=self.seed))
        self.bias = (self.add_weight(shape=(self.num_labels,), name="bias", initializer="zeros")
                     if self.use_bias else None)
        self.built = True

    def label_logits(self, features: tf.Tensor, label_ids: tf.Tensor) -> tf.Tensor:
        # tf.gather on the raw variable along axis 0 keeps the gradient row-sparse.
        rows = tf.gather(self.kernel.value, label_ids)
        if self.cosine_margin is not None:
            return self.cosine_margin.logits(features, rows)
        logits = self.matmul(features, rows, transpose_b=True)
        return logits + tf.gather(self.bias.value, label_ids) if self.use_bias else logits

    def margin_at_columns(self, logits: tf.Tensor, columns: tf.Tensor) -> tf.Tensor:
        return logits if self.cosine_margin is None else self.cosine_margin.at_columns(logits, columns)

    def _chunk_logits(self, features, start: int, stop: int) -> tf.Tensor:
        if self.cosine_margin is not None:
            return self.cosine_margin.logits(features, self.kernel.value[start:stop])
        logits = self.matmul(features, self.kernel.value[start:stop], transpose_b=True)
        return logits + self.bias.value[start:stop] if self.use_bias else logits

    def call(self, features, training=False):
        return self._chunk_logits(features, 0, self.num_labels)

    def per_example_loss(self, logits, labels):
        """Softmax cross-entropy (uniform target over a row's labels; 0 for label-less rows), float32 [B];
        with a margin, the positives' cosines take it first."""
        if self.cosine_margin is not None:
            logits = self.cosine_margin.at_labels(logits, labels)
        return softmax_cross_entropy(logits, labels)

    def softmax_statistics(self, features: tf.Tensor, labels: tf.Tensor, k):
        """One blockwise pass over all labels; cross_entropy = logsumexp_l z_l − z_y (see `Head`)."""
        vals, ids, lse = chunked_top_k(lambda a, b: self._chunk_logits(features, a, b), self.num_labels, k)
        if self.cosine_margin is not None:
            rows = self.cosine_margin.normalize(tf.gather(self.kernel.value, labels))
            own = self.cosine_margin.scale * tf.reduce_sum(self.cosine_margin.normalize(features) * rows, axis=1)
            return lse - own, vals, ids
        own = tf.reduce_sum(features * tf.gather(self.kernel.value, labels), axis=1)
        if self.use_bias:
            own += tf.gather(self.bias.value, labels)
        return lse - own, vals, ids

    def top_k(self, features, k):
        vals, ids, lse = chunked_top_k(lambda a, b: self._chunk_logits(features, a, b), self.num_labels, k)
        return tf.exp(vals - lse[:, None]), ids

    supports_label_index = True

    def index_vectors(self):
        """[w_l, b_l] (w_l without a bias; s·w_l/|w_l| for cosine logits), float32 [L, dim(+1)]."""
        return augmented_vectors(self.kernel.numpy(), self.bias.numpy() if self.use_bias else None,
                                 None if self.cosine_margin is None else self.cosine_margin.scale)

    def index_query(self, features):
        return augmented_query(features, self.use_bias, self.cosine_margin)

    def index_scores(self, top_logits, candidate_logits):
        """The softmax over the index's candidates (`tfxc.heads.label_index.candidate_softmax`)."""
        return candidate_softmax(top_logits, candidate_logits)

    @property
    def sparse_variables(self) -> list:
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def get_config(self):
        return {**super().get_config(), "use_bias": self.use_bias, "init_stddev": self.init_stddev,
                "seed": self.seed, "cosine_margin": self.cosine_margin}
