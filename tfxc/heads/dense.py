"""Heads with one weight vector per label: one-vs-all sigmoid and softmax."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.errors import ConfigError
from tfxc.heads.base import Head, positive_logits
from tfxc.heads.active_set_losses import ACTIVE_SET_LOSSES, active_one_vs_all_cross_entropy
from tfxc.heads.classification_losses import MULTI_LABEL_LOSSES, focal_poly_cross_entropy, zlpr_loss
from tfxc.heads.label_index import augmented_query, augmented_vectors, candidate_softmax
from tfxc.heads.label_priors import check_propensity_weight, positive_label_weights, prior_adjustment
from tfxc.heads.margins import MarginOptions
from tfxc.heads.sparse_term import SparseInput, SparseTerm, SparseTermOptions, SparseTermSpec, label_support
from tfxc.heads.top_k import chunked_top_k


@dataclass(frozen=True)
class OneVsAllHeadConfig(SparseTermOptions):
    """Config of `OneVsAllHead` (multi-label).

    Attributes:
      name: "one_vs_all".
      use_bias: learn a bias per label.
      propensity_weight: α ≥ 0: a positive of label l weighs (1/p_l)^α in the loss, p_l the
        label's propensity (Jain et al., KDD 2016): α > 0 leans toward the rare labels
        that PSP@k rewards; 0 weighs all alike.
      loss: "bce" (a sigmoid cross-entropy per label) or "zlpr" (`classification_losses.zlpr_loss`:
        one ranking loss per row, positives above 0 above negatives).
      sparse_*: the sparse term over the input features (`SparseTermOptions`).
    """

    name: str = "one_vs_all"
    use_bias: bool = True
    propensity_weight: float = 0.0
    loss: str = "bce"

    def validate(self, path: str) -> None:
        check_propensity_weight(self, path)
        if self.loss not in ("bce", "zlpr"):
            raise ConfigError(f"{path}.loss '{self.loss}' must be 'bce' or 'zlpr'")
        if self.loss == "zlpr" and self.propensity_weight:
            raise ConfigError(f"{path}: propensity_weight weighs the per-label 'bce' loss, not 'zlpr'")
        self.validate_sparse_term(path)


@dataclass(frozen=True)
class SoftmaxHeadConfig(MarginOptions, SparseTermOptions):
    """Config of `SoftmaxHead` (multi-class, or multi-label with normalised or decoupled targets).

    Attributes:
      name: "softmax".
      use_bias: learn a bias per label.
      label_smoothing: mix the target distribution with the uniform one.
      propensity_weight: α ≥ 0: the target over a row's labels is proportional to (1/p_l)^α
        instead of uniform (see `OneVsAllHeadConfig`).
      multi_label_loss: how rows with several labels are scored: "normalised" (one softmax
        whose target is spread over the row's labels, `classification_losses.softmax_cross_entropy`)
        or "decoupled" (each label against the row's negatives only, `decoupled_softmax_cross_entropy`
        there). The two agree on rows with one label.
      focal_gamma: γ > 0 turns the loss into the focal loss, (1 − p)^γ · (−log p) per positive.
      poly_epsilon: ε > 0 adds the Poly-1 term ε · (1 − p)^(γ+1) per positive
        (`classification_losses.focal_poly_cross_entropy`; with the normalised target, no smoothing).
      logit_adjustment: τ ≥ 0: prediction (`top_k`) ranks labels by z_l − τ·log π_l, π_l the label's
        share of the training labels (`prior_adjustment`); the loss is unchanged. The softmax learns
        p(l|x) ∝ p(x|l)·π_l, so τ = 1 ranks by p(x|l) (Menon et al., ICLR 2021), which PSP@k rewards.
      sparse_*: the sparse term over the input features (`SparseTermOptions`).
      cosine, margin, margin_m, margin_scale, easy_margin: scaled cosine logits with an ArcFace or
        CosFace margin on the positives (`tfxc.heads.margins.MarginOptions`; no bias).
    """

    name: str = "softmax"
    use_bias: bool = True
    label_smoothing: float = 0.0
    propensity_weight: float = 0.0
    multi_label_loss: str = "normalised"
    focal_gamma: float = 0.0
    poly_epsilon: float = 0.0
    logit_adjustment: float = 0.0

    def validate(self, path: str) -> None:
        if not 0.0 <= self.logit_adjustment <= 2.0:
            raise ConfigError(f"{path}.logit_adjustment ({self.logit_adjustment}) must be in [0, 2]")
        if self.focal_gamma < 0 or self.poly_epsilon < 0:
            raise ConfigError(f"{path}: focal_gamma ({self.focal_gamma}) and poly_epsilon ({self.poly_epsilon}) "
                              "must be >= 0")
        if (self.focal_gamma or self.poly_epsilon) and (self.label_smoothing or self.multi_label_loss != "normalised"):
            raise ConfigError(f"{path}: focal_gamma and poly_epsilon replace the cross-entropy; they take no "
                              "label_smoothing and the 'normalised' multi_label_loss")
        if self.multi_label_loss not in MULTI_LABEL_LOSSES:
            raise ConfigError(f"{path}.multi_label_loss ({self.multi_label_loss!r}) must be one of "
                              f"{sorted(MULTI_LABEL_LOSSES)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"{path}.label_smoothing ({self.label_smoothing}) must be in [0, 1)")
        check_propensity_weight(self, path)
        self.validate_sparse_term(path)
        self.validate_margin(path)
        if self.uses_cosine and self.sparse_support:
            raise ConfigError(f"{path}: cosine logits do not combine with the sparse term (sparse_support)")


class DenseLabelHead(Head):
    """Shared parts of heads with a [dim, L] kernel: logits, chunked top-k, positive label weights.

    `label_weights` (float32 [L], or None) weigh each label's positives in the loss;
    they are a non-trainable weight of the model, so a restored model keeps them.
    With `sparse` (a `tfxc.heads.sparse_term.SparseTermSpec` of support int32 [L, S]),
    every label also weighs S input features of the row: the encoder then carries the row's sparse block
    (`WithSparseInput`) and the logits add the sparse term. With `cosine_margin`
    (a `tfxc.heads.margins.CosineMargin`) the logits are s·cos(h, w_l) instead.
    """

    def __init__(self, num_labels: int, use_bias: bool = True, label_weights=None, sparse=None,
                 cosine_margin=None, **kwargs):
        super().__init__(num_labels, **kwargs)
        self.use_bias = use_bias and cosine_margin is None
        self.cosine_margin = cosine_margin
        self._initial_label_weights = label_weights
        self._sparse = sparse
        self.sparse_input = None if sparse is None else SparseInput(sparse.max_nnz)

    @classmethod
    def label_weights_for(cls, config, context):
        if not config.propensity_weight:
            return None
        return positive_label_weights(context.label_freq, context.num_points, config.propensity_weight)

    @classmethod
    def sparse_term_for(cls, config, context):
        """The `sparse` argument for a config with `sparse_support` (None without)."""
        support, init = label_support(config, context)
        return None if support is None else SparseTermSpec(support, config.sparse_max_nnz, init, context.num_features)

    def build(self, input_shape):
        dim = self.encoding_width(input_shape)
        self.sparse_term = None
        if self._sparse is not None:
            spec = self._sparse
            self.sparse_term = SparseTerm(spec.support, spec.num_features, spec.init, name="sparse_term")
            self.sparse_term.build()
        self.kernel = self.add_weight(shape=(dim, self.num_labels), name="kernel", initializer="glorot_uniform")
        self.bias = (self.add_weight(shape=(self.num_labels,), name="bias", initializer="zeros")
                     if self.use_bias else None)
        self.label_weights = None
        if self._initial_label_weights is not None:
            self.label_weights = self.add_weight(
                shape=(self.num_labels,), name="label_weights", trainable=False,
                initializer=keras.initializers.Constant(self._initial_label_weights))
        self.built = True

    def call(self, features, training=False):
        return self._chunk_logits(features, 0, self.num_labels)

    def _chunk_logits(self, features: tf.Tensor, start: int, stop: int) -> tf.Tensor:
        """Logits of labels [start, stop): float32 [B, stop − start]."""
        if self.sparse_term is None:
            h = features
        else:
            h, ids, values = self.sparse_input.split(features)
        whole = start == 0 and stop == self.num_labels
        kernel = self.kernel.value if whole else self.kernel.value[:, start:stop]
        if self.cosine_margin is not None:
            return self.cosine_margin.logits(h, kernel, rows_axis=1)
        logits = self.matmul(h, kernel)
        if self.use_bias:
            logits += self.bias.value if whole else self.bias.value[start:stop]
        if self.sparse_term is not None:
            logits += self.sparse_term.logits(ids, values, start, stop)
        return logits

    # === Active sets (`Head.active_set_loss`; `tfxc.losses.active_set`) ===
    supports_active_set_loss = True

    @classmethod
    def active_set_obstacle(cls, config) -> str:
        return "cosine logits (a margin)" if getattr(config, "uses_cosine", False) else ""

    def label_vectors(self) -> tf.Tensor:
        return tf.transpose(self.kernel.value)

    def query_vectors(self, features: tf.Tensor) -> tf.Tensor:
        return self.encoding(features)

    def active_set_loss(self, features, labels, active_ids, log_weights):
        if self.cosine_margin is not None:
            raise NotImplementedError("an active set cannot estimate the loss of cosine logits with a margin")
        width = tf.shape(active_ids)[0]
        columns = tf.tensor_scatter_nd_update(tf.fill([self.num_labels], -1), active_ids[:, None],
                                              tf.range(width))
        h = self.query_vectors(features)
        # Only the M active columns are multiplied; the kernel's gradient is zero elsewhere.
        logits = self.matmul(h, tf.gather(self.kernel.value, active_ids, axis=1))
        if self.use_bias:
            logits += tf.gather(self.bias.value, active_ids)
        if self.sparse_term is not None:
            _, ids, values = self.sparse_input.split(features)
            logits += self.sparse_term.logits_at(ids, values, columns, width)
        positive_columns = labels.with_values(tf.gather(columns, tf.cast(labels.values, tf.int32)))
        weights = (None if self.label_weights is None
                   else labels.with_values(tf.gather(self.label_weights.value, labels.values)))
        return self._active_loss(logits, positive_columns, log_weights, weights)

    @property
    def sparse_variables(self) -> list:
        return [] if self.sparse_term is None else [self.sparse_term.kernel]

    supports_label_index = True

    def index_vectors(self):
        """[w_l, b_l] (w_l without a bias; s·w_l/|w_l| for cosine logits), float32 [L, d(+1)]."""
        return augmented_vectors(self.kernel.numpy().T, self.bias.numpy() if self.use_bias else None,
                                 None if self.cosine_margin is None else self.cosine_margin.scale)

    def index_query(self, features):
        """[h, 1] (h without a bias; h/|h| for cosine logits), h the encoder's part of the features."""
        return augmented_query(self.query_vectors(features), self.use_bias, self.cosine_margin)

    def index_logits(self, features, label_ids, dense_logits):
        if self.sparse_term is None:
            return dense_logits
        _, ids, values = self.sparse_input.split(features)
        return dense_logits + self.sparse_term.candidate_logits(ids, values, label_ids)

    def _chunked_top_k(self, features: tf.Tensor, k):
        return chunked_top_k(lambda start, stop: self._chunk_logits(features, start, stop), self.num_labels, k)

    def get_config(self):
        return {**super().get_config(), "use_bias": self.use_bias, "label_weights": self._initial_label_weights,
                "sparse": self._sparse, "cosine_margin": self.cosine_margin}


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

    logits_kind = "bernoulli"

    def __init__(self, num_labels: int, use_bias: bool = True, label_weights=None, sparse=None, loss: str = "bce",
                 **kwargs):
        super().__init__(num_labels, use_bias=use_bias, label_weights=label_weights, sparse=sparse, **kwargs)
        self.loss = loss

    @classmethod
    def from_config_dataclass(cls, config: OneVsAllHeadConfig, context):
        # context.seed is unused: the Glorot initialiser draws from Keras' global seed (runtime.seed).
        return cls(context.num_labels, use_bias=config.use_bias, label_weights=cls.label_weights_for(config, context),
                   sparse=cls.sparse_term_for(config, context), loss=config.loss, name="head")

    def per_example_loss(self, logits, labels):
        if self.loss == "zlpr":
            return zlpr_loss(logits, labels)
        pos = positive_logits(logits, labels)
        if self.label_weights is None:
            return tf.reduce_sum(tf.nn.softplus(logits), axis=1) - tf.reduce_sum(pos, axis=1)
        # A positive's −log σ(z) = softplus(z) − z weighs w: Σ_all softplus(z) + Σ_pos (w−1)·softplus(z) − w·z.
        w = labels.with_values(tf.gather(self.label_weights.value, labels.values))
        return (tf.reduce_sum(tf.nn.softplus(logits), axis=1)
                + tf.reduce_sum((w - 1.0) * tf.nn.softplus(pos) - w * pos, axis=1))

    def top_k(self, features, k):
        logits, ids, _ = self._chunked_top_k(features, k)
        return tf.sigmoid(logits), ids

    @classmethod
    def active_set_obstacle(cls, config) -> str:
        return "loss 'zlpr'" if config.loss != "bce" else super().active_set_obstacle(config)

    def _active_loss(self, logits, columns, log_weights, weights):
        if self.loss != "bce":
            raise NotImplementedError(f"an active set cannot estimate the '{self.loss}' loss")
        return active_one_vs_all_cross_entropy(logits, columns, log_weights, weights)

    def index_scores(self, top_logits, candidate_logits):
        return tf.sigmoid(top_logits)

    def get_config(self):
        return {**super().get_config(), "loss": self.loss}


class SoftmaxHead(DenseLabelHead):
    """A softmax over all labels.

    Multi-class rows have one label and this is the usual cross-entropy; with a
    cosine margin (ArcFace, CosFace) the positives' logits take the margin first. For
    multi-label rows the default target is uniform over the row's labels,
    −(1/|y|) Σ_{l∈y} log softmax(z)_l, a strong P@k baseline in XMC; with
    `multi_label_loss="decoupled"` each label is scored against the row's
    negatives only (`decoupled_softmax_cross_entropy`). Rows without labels
    contribute 0. With label smoothing ε the target is (1−ε)·target + ε/L.
    Scores: softmax probabilities; with `logit_adjustment` (float32 [L], −τ·log π_l from
    `prior_adjustment`) those of the adjusted logits z + adjustment, which prediction ranks by.

    Call returns logits float32 [B, L].
    """

    scores_sum_to_one = True  # a row's scores are one distribution over the labels

    logits_kind = "categorical"

    def __init__(self, num_labels: int, use_bias: bool = True, label_smoothing: float = 0.0, label_weights=None,
                 multi_label_loss: str = "normalised", sparse=None, focal_gamma: float = 0.0,
                 poly_epsilon: float = 0.0, cosine_margin=None, logit_adjustment=None, **kwargs):
        super().__init__(num_labels, use_bias=use_bias, label_weights=label_weights, sparse=sparse,
                         cosine_margin=cosine_margin, **kwargs)
        self.label_smoothing = label_smoothing
        self.multi_label_loss = multi_label_loss
        self.focal_gamma, self.poly_epsilon = focal_gamma, poly_epsilon
        self._initial_logit_adjustment = logit_adjustment

    def build(self, input_shape):
        super().build(input_shape)
        self.logit_adjustment = None
        if self._initial_logit_adjustment is not None:  # a weight, so that a restored model keeps it
            self.logit_adjustment = self.add_weight(
                shape=(self.num_labels,), name="logit_adjustment", trainable=False,
                initializer=keras.initializers.Constant(self._initial_logit_adjustment))

    @classmethod
    def from_config_dataclass(cls, config: SoftmaxHeadConfig, context):
        return cls(context.num_labels, use_bias=config.use_bias, label_smoothing=config.label_smoothing,
                   label_weights=cls.label_weights_for(config, context), sparse=cls.sparse_term_for(config, context),
                   multi_label_loss=config.multi_label_loss, focal_gamma=config.focal_gamma,
                   poly_epsilon=config.poly_epsilon, cosine_margin=config.cosine_margin(),
                   logit_adjustment=(prior_adjustment(context.label_freq, config.logit_adjustment)
                                     if config.logit_adjustment else None), name="head")

    def per_example_loss(self, logits, labels):
        weights = None if self.label_weights is None else self.label_weights.value
        if self.cosine_margin is not None:
            logits = self.cosine_margin.at_labels(logits, labels)
        if self.focal_gamma or self.poly_epsilon:
            return focal_poly_cross_entropy(logits, labels, self.focal_gamma, self.poly_epsilon, weights)
        return MULTI_LABEL_LOSSES[self.multi_label_loss](logits, labels, self.label_smoothing, weights)

    def top_k(self, features, k):
        if self.logit_adjustment is None:
            logits, ids, lse = self._chunked_top_k(features, k)
        else:
            adjustment = self.logit_adjustment.value
            logits, ids, lse = chunked_top_k(
                lambda start, stop: self._chunk_logits(features, start, stop) + adjustment[start:stop],
                self.num_labels, k)
        return tf.exp(logits - lse[:, None]), ids

    @classmethod
    def active_set_obstacle(cls, config) -> str:
        if config.focal_gamma or config.poly_epsilon:
            return "focal_gamma or poly_epsilon"
        return super().active_set_obstacle(config)

    def _active_loss(self, logits, columns, log_weights, weights):
        if self.focal_gamma or self.poly_epsilon:
            raise NotImplementedError("an active set cannot estimate the focal or Poly-1 loss")
        loss = ACTIVE_SET_LOSSES[self.multi_label_loss]
        return loss(logits, columns, log_weights, self.num_labels, self.label_smoothing, weights)

    def index_vectors(self):
        """As the dense heads', with the logit adjustment folded into the bias (so the search ranks by it too)."""
        if self.logit_adjustment is None or not self.use_bias:
            return super().index_vectors()
        return augmented_vectors(self.kernel.numpy().T, self.bias.numpy() + self.logit_adjustment.numpy(), None)

    def index_logits(self, features, label_ids, dense_logits):
        logits = super().index_logits(features, label_ids, dense_logits)
        if self.logit_adjustment is None or self.use_bias:  # with a bias, index_vectors already holds it
            return logits
        return logits + tf.gather(self.logit_adjustment.value, label_ids)

    def index_scores(self, top_logits, candidate_logits):
        """The softmax over the index's candidates (`tfxc.heads.label_index.candidate_softmax`)."""
        return candidate_softmax(top_logits, candidate_logits)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "multi_label_loss": self.multi_label_loss, "focal_gamma": self.focal_gamma,
                "poly_epsilon": self.poly_epsilon, "logit_adjustment": self._initial_logit_adjustment}
