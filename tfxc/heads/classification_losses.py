"""Alternatives to the plain cross-entropies of the dense heads, from the text-classification toolbox.

All take logits float32 [B, L] and labels int64 ragged [B, None] and return float32 [B]
(0 for rows without labels); the positives' logits are gathered, never a dense target.

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
