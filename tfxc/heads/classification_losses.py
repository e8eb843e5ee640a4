"""The cross-entropies of the heads that score every label, and their alternatives from the text-classification
toolbox.

All take logits float32 [B, L] and labels int64 ragged [B, None] and return float32 [B]
(0 for rows without labels); the positives' logits are gathered, never a dense target.

* `softmax_cross_entropy`: the softmax over all labels, its target uniform over a row's
  labels (or weighted); `decoupled_softmax_cross_entropy`: each label against the row's
  negatives only (DEXML). `MULTI_LABEL_LOSSES` names the two for the softmax head.
* `focal_poly_cross_entropy`: the softmax head's focal loss (Lin et al., 2017) and
  Poly-1 term (Leng et al., 2022, "PolyLoss"): per positive l of a row,
  (1 − p_l)^γ · (−log p_l) + ε · (1 − p_l)^(γ+1), averaged over the row's positives.
  γ = 0, ε = 0 is the cross-entropy; γ = 0, ε = 1 is Poly-1 on cross-entropy.
* `zlpr_loss`: ZLPR (Su, 2022, "multilabel categorical cross-entropy"), the one-vs-all
  head's alternative for multi-label rows: log(1 + Σ_{j∉y} e^{z_j}) + log(1 + Σ_{i∈y} e^{−z_i}).
  It ranks every positive above every negative and 0 between them, so z > 0 (σ > ½)
  stays the decision rule.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.heads.base import positive_logits


def focal_poly_cross_entropy(logits, labels, gamma: float = 0.0, epsilon: float = 0.0,
                             label_weights=None) -> tf.Tensor:
    """float32 [B]: the focal/Poly-1 loss of the module docstring (weighted by `label_weights` [L] if given)."""
    lse = tf.reduce_logsumexp(logits, axis=1)
    pos = positive_logits(logits, labels)  # ragged [B, None]
    log_p = pos - lse[:, None]
    p = tf.exp(log_p)
    per_positive = -log_p
    if gamma:
        per_positive = tf.pow(1.0 - p, gamma) * per_positive
    if epsilon:
        per_positive += epsilon * tf.pow(1.0 - p, gamma + 1.0)
    weights = (tf.ones_like(per_positive) if label_weights is None
               else labels.with_values(tf.gather(label_weights, labels.values)))
    total = tf.reduce_sum(weights, axis=1)
    return tf.reduce_sum(per_positive * weights, axis=1) / tf.maximum(total, 1e-12)


def zlpr_loss(logits, labels) -> tf.Tensor:
    """float32 [B]: ZLPR of the module docstring (a row without labels pays only its negatives' term)."""
    rows = tf.cast(labels.value_rowids(), tf.int64)
    positions = tf.stack([rows, labels.values], axis=1)
    # Negatives: every logit but the positives, plus a 0 logit (the "1 +" of the formula).
    negatives = tf.tensor_scatter_nd_update(logits, positions, tf.fill([tf.shape(positions)[0]], logits.dtype.min))
    zero = tf.zeros_like(logits[:, :1])
    negative_term = tf.reduce_logsumexp(tf.concat([negatives, zero], axis=1), axis=1)
    # Positives: −z_i, padded with the dtype's minimum to a rectangle, plus the 0 logit.
    minus_pos = (-positive_logits(logits, labels)).to_tensor(default_value=logits.dtype.min)
    positive_term = tf.reduce_logsumexp(tf.concat([minus_pos, zero], axis=1), axis=1)
    return negative_term + positive_term


def softmax_cross_entropy(logits: tf.Tensor, labels: tf.RaggedTensor, label_smoothing: float = 0.0,
                          label_weights: tf.Tensor | None = None) -> tf.Tensor:
    """−Σ_{l∈y} t_l log softmax(z)_l per row (0 for rows without labels), float32 [B].

    The target t is uniform over the row's labels y, or proportional to
    `label_weights` (float32 [L]) over them. With label smoothing ε the target
    is (1−ε)·t + ε/L. Only the positive logits are gathered; no dense [B, L]
    target is built.
    """
    lse = tf.reduce_logsumexp(logits, axis=1)
    pos = positive_logits(logits, labels)
    if label_weights is None:
        count = tf.cast(pos.row_lengths(), logits.dtype)
        target_term = tf.reduce_sum(pos, axis=1) / tf.maximum(count, 1.0)
    else:
        weights = labels.with_values(tf.gather(label_weights, labels.values))
        count = tf.reduce_sum(weights, axis=1)
        target_term = tf.reduce_sum(pos * weights, axis=1) / tf.maximum(count, 1e-12)
    loss = (1.0 - label_smoothing) * (lse - target_term)
    return _with_smoothing(loss, logits, lse, label_smoothing) * tf.cast(count > 0, logits.dtype)


def decoupled_softmax_cross_entropy(logits: tf.Tensor, labels: tf.RaggedTensor, label_smoothing: float = 0.0,
                                    label_weights: tf.Tensor | None = None) -> tf.Tensor:
    """The decoupled softmax loss of DEXML (Gupta et al., "Dual-encoders for extreme multi-label
    classification", ICLR 2024), float32 [B]: each positive l of row b against the row's negatives only,
    averaged over the row's positives (which keeps the scale of `softmax_cross_entropy`),

        (1/|y|) Σ_{l∈y} −log( e^{z_l} / (e^{z_l} + Σ_{j∉y} e^{z_j}) ) = (1/|y|) Σ_{l∈y} softplus(lse_neg − z_l),

    a weighted mean when `label_weights` (float32 [L]) are given. Unlike the normalised target of
    `softmax_cross_entropy`, a row's positives do not compete with each other: a label that is on
    every row (a taxonomy's root) may score far above the row's other labels, and every positive gets
    a full-sized push above the negatives however many labels its row has. Rows without labels give 0.
    Label smoothing ε mixes in ε·(lse − mean z), as in `softmax_cross_entropy`.

    The positives are masked out of the [B, L] logits (a scatter, the size of the logits themselves);
    subtracting their mass from the full sum instead would cancel catastrophically once the positives
    dominate, which is where training goes.
    """
    rows = labels.value_rowids()
    indices = tf.stack([rows, labels.values], axis=1)
    # A large finite value, not -inf: a row whose every label is positive then has lse_neg ~ -1e9 and a
    # zero gradient, where -inf would give NaN.
    masked = tf.tensor_scatter_nd_update(logits, indices, tf.fill(tf.shape(rows), tf.constant(-1e9, logits.dtype)))
    lse_neg = tf.reduce_logsumexp(masked, axis=1)
    pos = positive_logits(logits, labels)
    per_positive = tf.nn.softplus(tf.gather(lse_neg, pos.value_rowids()) - pos.values)
    weights = (tf.ones_like(per_positive) if label_weights is None else tf.gather(label_weights, labels.values))
    nrows = tf.shape(logits, out_type=tf.int64)[0]
    count = tf.math.unsorted_segment_sum(weights, rows, nrows)
    term = tf.math.unsorted_segment_sum(weights * per_positive, rows, nrows) / tf.maximum(count, 1e-12)
    loss = (1.0 - label_smoothing) * term
    lse = tf.reduce_logsumexp(logits, axis=1) if label_smoothing else None
    return _with_smoothing(loss, logits, lse, label_smoothing) * tf.cast(count > 0, logits.dtype)


def _with_smoothing(loss, logits, lse, label_smoothing: float):
    """`loss` plus the uniform part ε·(lse − mean z) of a label-smoothed target."""
    if label_smoothing:
        loss += label_smoothing * (lse - tf.reduce_mean(logits, axis=1))
    return loss


# The softmax head's losses for rows with several labels (`SoftmaxHeadConfig.multi_label_loss`).
MULTI_LABEL_LOSSES = {"normalised": softmax_cross_entropy, "decoupled": decoupled_softmax_cross_entropy}
