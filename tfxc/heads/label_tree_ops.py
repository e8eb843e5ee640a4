"""Tensor helpers of the label tree head (`tfxc.heads.label_tree`): the post-processors that combine a node's
score with its parent's, and each row's distinct node ids."""

from __future__ import annotations

from tfxc._tf import tf

PAD = 2 ** 31 - 1  # an id that sorts after every node or label id


def post_process(name: str, v: tf.Tensor, parent: tf.Tensor | None) -> tf.Tensor:
    """combiner(transform(v), parent) of algorithms.md §1.5; parent None at the top level.

    noop: v (the parent is ignored); sigmoid: σ(v)·p; log-sigmoid: log σ(v) + p;
    lP-hinge: exp(−max(0, 1−v)^P)·p; log-lP-hinge: −max(0, 1−v)^P + p.
    """
    if name == "noop":
        return v
    if name == "sigmoid":
        child, additive = tf.sigmoid(v), False
    elif name == "log-sigmoid":
        child, additive = -tf.nn.softplus(-v), True
    else:
        additive = name.startswith("log-")
        power = int(name.removeprefix("log-")[1])
        hinge = -tf.pow(tf.nn.relu(1.0 - v), float(power))
        child = hinge if additive else tf.exp(hinge)
    if parent is None:
        return child
    return child + parent if additive else child * parent


def _sorted_distinct(ids: tf.Tensor) -> tf.Tensor:
    """int32 [B, W] ids (negative = none) -> [B, W]: each row's distinct ids ascending, then `PAD`s."""
    ids = tf.sort(tf.where(ids < 0, PAD, ids), axis=1)
    repeated = tf.concat([tf.zeros_like(ids[:, :1], tf.bool), ids[:, 1:] == ids[:, :-1]], axis=1)
    return tf.sort(tf.where(repeated, PAD, ids), axis=1)


def unique_per_row(ids: tf.Tensor) -> tf.Tensor:
    """int32 [B, W] ids (negative = none) -> [B, W'] each row's distinct ids, ascending, padded with `PAD`.

    W' is the largest number of distinct ids of a row in the batch (at least 1): a data-dependent
    width, for training; `distinct_per_row` keeps W (static shapes for XLA).
    """
    ids = _sorted_distinct(ids)
    width = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(ids != PAD, tf.int32), axis=1)), 1)
    return ids[:, :width]


def distinct_per_row(ids: tf.Tensor) -> tf.Tensor:
    """int32 [B, W] ids (negative = none) -> [B, W] the same ids ascending, each once, −1 for the rest."""
    ids = _sorted_distinct(ids)
    return tf.where(ids == PAD, -1, ids)
