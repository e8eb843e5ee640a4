"""What the label tree head trains on (`tfxc.heads.label_tree`): each row's positive and active nodes of a
level, the cap on the active nodes, and the level's loss over them.

Functions of the tree's tables (int32 tensors) and the logits; the head passes its
variables' values in.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.heads.label_tree.ops import PAD, unique_per_row


def positive_nodes(labels: tf.RaggedTensor, ancestors: tf.Tensor | None, leaf_index: tf.Tensor | None) -> tf.Tensor:
    """The nodes of a level above each row's labels: int32 [B, Q], sorted, once per label, `PAD`-padded.

    Args:
      labels: int64 ragged [B, None], label ids.
      ancestors: int32 [K_last], each last-level node's ancestor on the level (None: the last level itself).
      leaf_index: int32 [L], each label's last-level node (−1: outside the tree), or None when the tree
        holds every label as node = label id. Labels outside the tree have no nodes.
    """
    values = tf.cast(labels.values, tf.int32)
    if leaf_index is not None:  # label ids -> last-level nodes (−1: outside the tree)
        values = tf.gather(leaf_index, values)
        outside, values = values < 0, tf.maximum(values, 0)
    if ancestors is not None:
        values = tf.gather(ancestors, values)
    if leaf_index is not None:
        values = tf.where(outside, PAD, values)
    nodes = tf.RaggedTensor.from_row_splits(values, labels.row_splits).to_tensor(default_value=PAD)
    return tf.sort(tf.concat([nodes, tf.fill([tf.shape(nodes)[0], 1], PAD)], axis=1), axis=1)


def active_nodes(parent_positives: tf.Tensor, children: tf.Tensor, num_parents: int, beam=None) -> tf.Tensor:
    """Active nodes int32 [B, C] of a level below the top (−1 = none): children of the true parents and of the beam.

    Args:
      parent_positives: `positive_nodes` of the level above, int32 [B, Q].
      children: int32 [num_parents, F], the level's children table (−1 padded).
      num_parents: the nodes of the level above.
      beam: None, or int32 [B, W]: the nodes the beam kept on the level above (man negatives).
    """
    parents = parent_positives if beam is None else tf.concat([parent_positives, beam], axis=1)
    parents = unique_per_row(parents)
    nodes = tf.gather(children, tf.minimum(parents, num_parents - 1))
    nodes = tf.where((parents != PAD)[:, :, None], nodes, -1)
    return tf.reshape(nodes, [tf.shape(nodes)[0], -1])


def cap_active(nodes: tf.Tensor, counts: tf.Tensor, max_active: int, seed: tf.Tensor):
    """Keeps every positive (counts > 0) and a random `max_active` − |positives| of the negatives.

    `seed` is an int32 [2] stateless seed (the head draws it from its sample step and the level, so a
    resumed run draws as an uninterrupted one). Returns (nodes, counts), int32 [B, min(max_active, C)].
    """
    width = tf.minimum(max_active, tf.shape(nodes)[1])
    noise = tf.random.stateless_uniform(tf.shape(nodes), seed)
    keys = tf.where(counts > 0, -1.0, tf.where(nodes >= 0, noise, 2.0))
    _, keep = tf.math.top_k(-keys, width)
    return tf.gather(nodes, keep, batch_dims=1), tf.gather(counts, keep, batch_dims=1)


def level_loss(logits, counts, valid, *, loss: str, reduction: str, fanout: int, weights=None,
               power: int = 2) -> tf.Tensor:
    """The loss of one level over its active nodes, float32 [B] (masked `valid`).

    Args:
      logits: float32 [B, C], the active nodes' logits.
      counts: int32 [B, C], how many of the row's labels lie below each node (0: a negative).
      valid: bool [B, C], the slots that hold a node.
      loss, reduction: as in `LabelTreeHeadConfig`.
      fanout: the most nodes a parent of the level has (the "sum" reduction's divisor).
      weights: float32 [B, C], or None: the positive nodes' weights (the softmax loss: its target over
        the positives is proportional to them).
      power: the hinge losses' exponent: 2 (squared hinge) or 1 (PECOS's `hinge` / `weighted-hinge`).
    """
    positive = counts > 0
    mask = tf.cast(valid, logits.dtype)
    if loss == "softmax":
        has_positive = tf.reduce_any(positive & valid, axis=1)
        lse = tf.reduce_logsumexp(tf.where(valid, logits, -1e9), axis=1)
        pos = tf.cast(positive & valid, logits.dtype)
        if weights is not None:
            pos *= weights
        target = tf.reduce_sum(logits * pos, axis=1) / tf.maximum(tf.reduce_sum(pos, axis=1), 1e-12)
        return tf.where(has_positive, lse - target, 0.0)
    if loss == "bce":  # softplus(−z) for a positive, softplus(z) for a negative
        per_node = tf.nn.softplus(tf.where(positive, -logits, logits))
    else:
        sign = tf.where(positive, 1.0, -1.0)
        margin = tf.nn.relu(1.0 - sign * logits)
        per_node = tf.square(margin) if power == 2 else margin
        if loss == "weighted_squared_hinge":
            per_node *= tf.where(positive, tf.cast(counts, logits.dtype), 1.0)
    if weights is not None:
        per_node *= tf.where(positive, weights, 1.0)
    if reduction == "sum":
        return tf.reduce_sum(per_node * mask, axis=1) / float(fanout)
    return tf.reduce_sum(per_node * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
