"""The exact heads' losses over an active set of labels: estimates of `classification_losses` from M of L labels.

An active set is M label ids shared by the rows of a batch (int [M], distinct) with a log
importance weight c_j per column (float32 [M]): 0 for a label that was taken for certain
(the batch's positives, hard negatives), log(1/q) for a label sampled with probability q
(uniform negatives). Every sum over all L labels of the full loss becomes

    Σ_l f(z_l)  ≈  Σ_j e^{c_j} f(z_j),        logsumexp_l z_l  ≈  logsumexp_j (z_j + c_j),

the Horvitz–Thompson estimate (Horvitz & Thompson, 1952) that the logQ correction of sampled
softmax is (Bengio & Senécal, 2008; Jean et al., 2015, "On using very large target vocabulary").
A row's own positives are never reweighted (c = 0 in their role as targets and in the row's
sums). When the set holds every label with c = 0 each function equals its full counterpart.

All take logits float32 [B, M] of the active columns, `columns` int32 ragged [B, None] (the
active column of each positive label of a row, −1 where the positive is not in the set: it is
left out) and `log_weights` float32 [M]; `label_weights` are float32 ragged [B, None], each
positive's weight (or None). They return float32 [B], 0 for rows without positives.
"""

from __future__ import annotations

from tfxc._tf import tf

# A finite stand-in for −inf, as in `classification_losses.decoupled_softmax_cross_entropy`.
_MASKED = -1e9


def _row_parts(logits, columns, log_weights, label_weights):
    """(positives' logits ragged [B, None], their weights ragged or None, per-cell log weights [B, M] with 0 at
    a row's positives, positive mask bool [B, M])."""
    kept = columns.with_values(columns.values >= 0)
    columns = tf.ragged.boolean_mask(columns, kept)
    if label_weights is not None:
        label_weights = tf.ragged.boolean_mask(label_weights, kept)
    rows = tf.cast(columns.value_rowids(), tf.int32)
    index = tf.stack([rows, columns.values], axis=1)
    mask = tf.scatter_nd(index, tf.ones_like(columns.values, tf.int32), tf.shape(logits)) > 0
    cell_log_weights = tf.where(mask, 0.0, log_weights[None, :])
    pos = columns.with_values(tf.gather_nd(logits, index))
    return pos, label_weights, cell_log_weights, mask


def _target_mean(pos, label_weights):
    """(the weighted mean of each row's positive logits, the row's total weight), float32 [B] each."""
    if label_weights is None:
        count = tf.cast(pos.row_lengths(), pos.dtype)
        return tf.reduce_sum(pos, axis=1) / tf.maximum(count, 1.0), count
    count = tf.reduce_sum(label_weights, axis=1)
    return tf.reduce_sum(pos * label_weights, axis=1) / tf.maximum(count, 1e-12), count


def _smoothing(logits, cell_log_weights, lse, num_labels: int, label_smoothing: float):
    """ε·(lse − mean_l z_l), the mean over all L labels estimated from the active columns."""
    mean = tf.reduce_sum(tf.exp(cell_log_weights) * logits, axis=1) / float(num_labels)
    return label_smoothing * (lse - mean)


def active_softmax_cross_entropy(logits, columns, log_weights, num_labels: int, label_smoothing: float = 0.0,
                                 label_weights=None) -> tf.Tensor:
    """`classification_losses.softmax_cross_entropy` (normalised target) from the active columns."""
    pos, label_weights, cell_log_weights, _ = _row_parts(logits, columns, log_weights, label_weights)
    lse = tf.reduce_logsumexp(logits + cell_log_weights, axis=1)
    target, count = _target_mean(pos, label_weights)
    loss = (1.0 - label_smoothing) * (lse - target)
    if label_smoothing:
        loss += _smoothing(logits, cell_log_weights, lse, num_labels, label_smoothing)
    return loss * tf.cast(count > 0, logits.dtype)


def active_decoupled_softmax_cross_entropy(logits, columns, log_weights, num_labels: int,
                                           label_smoothing: float = 0.0, label_weights=None) -> tf.Tensor:
    """`classification_losses.decoupled_softmax_cross_entropy` (DEXML) from the active columns: each positive
    against the row's (estimated) negatives only."""
    pos, label_weights, cell_log_weights, mask = _row_parts(logits, columns, log_weights, label_weights)
    lse_neg = tf.reduce_logsumexp(tf.where(mask, _MASKED, logits + cell_log_weights), axis=1)
    per_positive = pos.with_values(tf.nn.softplus(tf.gather(lse_neg, pos.value_rowids()) - pos.values))
    term, count = _target_mean(per_positive, label_weights)
    loss = (1.0 - label_smoothing) * term
    if label_smoothing:
        lse = tf.reduce_logsumexp(logits + cell_log_weights, axis=1)
        loss += _smoothing(logits, cell_log_weights, lse, num_labels, label_smoothing)
    return loss * tf.cast(count > 0, logits.dtype)


def active_one_vs_all_cross_entropy(logits, columns, log_weights, label_weights=None) -> tf.Tensor:
    """The one-vs-all head's BCE, Σ_l softplus(z_l) − Σ_{l∈y} z_l (a positive weighing w: w·(softplus(z) − z)),
    from the active columns. Unlike the softmax forms a row without positives still pays its negatives."""
    pos, label_weights, cell_log_weights, _ = _row_parts(logits, columns, log_weights, label_weights)
    negatives = tf.reduce_sum(tf.exp(cell_log_weights) * tf.nn.softplus(logits), axis=1)
    if label_weights is None:
        return negatives - tf.reduce_sum(pos, axis=1)
    return negatives + tf.reduce_sum((label_weights - 1.0) * tf.nn.softplus(pos) - label_weights * pos, axis=1)


# The softmax head's active-set losses, by `SoftmaxHeadConfig.multi_label_loss` (as `MULTI_LABEL_LOSSES`).
ACTIVE_SET_LOSSES = {"normalised": active_softmax_cross_entropy, "decoupled": active_decoupled_softmax_cross_entropy}
