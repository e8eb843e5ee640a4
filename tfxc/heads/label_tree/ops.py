"""Tensor helpers of the label tree head (`tfxc.heads.label_tree`): the post-processors that combine a node's
score with its parent's, each row's distinct node ids, and the nodes' sparse term over the row's features."""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.utils.graph import uses_portable_ops

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


def in_log_space(name: str) -> bool:
    """Whether post-processor `name` scores on a log scale (noop's raw logits too): a bonus is added there,
    and multiplied as its exp on the others' probability-like scores."""
    return name == "noop" or name.startswith("log-")


def propensity_rerank(scores: tf.Tensor, nodes: tf.Tensor, bonus: tf.Tensor, log_space: bool, k) -> tuple:
    """The best k of a beam's last-level candidates once each gets its bonus τ·log(1/p_l).

    Args:
      scores: float32 [B, W], the candidates' path scores (−inf where none), W ≥ k.
      nodes: int32 [B, W], their last-level node ids (−1 where none).
      bonus: float32 [K_last], τ·log(1/p) per last-level node, p its label's propensity.
      log_space: add the bonus (scores on a log scale) or multiply by exp(bonus) (probabilities).
      k: int32 scalar.

    Returns:
      (scores float32 [B, k'], node ids int32 [B, k']), k' = min(k, W): ranked by the new scores.
    """
    gained = tf.gather(bonus, tf.maximum(nodes, 0))
    scores = scores + gained if log_space else scores * tf.exp(gained)
    scores = tf.where(nodes >= 0, scores, -float("inf"))
    scores, order = tf.math.top_k(scores, tf.minimum(k, tf.shape(nodes)[1]))
    return scores, tf.gather(nodes, order, batch_dims=1)


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


# Under XLA, rows are looked up in a dense copy [rows, D + 1] (`row_values_at`) of at most this many entries:
# 1,024 rows (an evaluation batch; the count assumed when the rows are not static) at D = 65,536, 268 MB float32.
DENSE_LOOKUP_MAX_ENTRIES = 1024 * (65536 + 1)


def row_values_at(ids: tf.Tensor, values: tf.Tensor, wanted: tf.Tensor, num_features: int = 0) -> tf.Tensor:
    """x[b, wanted[b, n]] of sparse rows x: float32 [B, N], 0 where the row lacks the feature.

    Args:
      ids: int32 [B, W], each row's distinct feature ids ascending, padded with ids >= D (or any
        id larger than every real one).
      values: float32 [B, W], the values at those ids.
      wanted: int32 [B, N] feature ids to look up; negative = none (gives 0).
      num_features: D, or 0 if unknown.

    In a plain graph each wanted id is found by TensorFlow's binary search (`lower_bound_rows`). Under
    XLA, with D known and rows x (D + 1) at most `DENSE_LOOKUP_MAX_ENTRIES`, the rows are scattered into a dense
    [B, D + 1] matrix first and the values read with one gather, which XLA fuses: wordnet-nextword's
    recipe tree evaluates 11.8k rows/s so, 5.2k with the search (and 2.0k with `tf.searchsorted`
    itself). A plain graph allocates and fills that matrix as separate ops (its training step went
    64.6 -> 152.8 ms), so there the search stays. docs/benchmarks-history.md, "Speed". Padding values must be 0.
    """
    if _in_xla() and num_features > 0 and (ids.shape[0] or 1024) * (num_features + 1) <= DENSE_LOOKUP_MAX_ENTRIES:
        rows = tf.shape(ids)[0]
        columns = tf.where((ids >= 0) & (ids < num_features), ids, num_features)  # padding -> column D
        row_index = tf.broadcast_to(tf.range(rows)[:, None], tf.shape(ids))
        dense = tf.scatter_nd(tf.stack([row_index, columns], axis=-1), values, tf.stack([rows, num_features + 1]))
        return tf.gather(dense, tf.where((wanted >= 0) & (wanted < num_features), wanted, num_features),
                         batch_dims=1)
    width = int(ids.shape[1])
    slot = tf.minimum(lower_bound_rows(ids, wanted), width - 1)
    found = (tf.gather(ids, slot, batch_dims=1) == wanted) & (wanted >= 0)
    return tf.where(found, tf.gather(values, slot, batch_dims=1), 0.0)


def sparse_node_logits(ids: tf.Tensor, values: tf.Tensor, support: tf.Tensor, kernel: tf.Tensor, nodes: tf.Tensor,
                       num_features: int = 0) -> tf.Tensor:
    """Σ_j u_cj · x[f_cj] for nodes int32 [B, C] (negative ids give 0) -> float32 [B, C]: the sparse term.

    Args:
      ids, values: the rows' sparse blocks x, int32 / float32 [B, W] (ids ascending; `split_sparse_input`).
      support: int32 [K, S], each node's input features f_c (−1 padded).
      kernel: float32 [K, S], the weights u.
      nodes: int32 [B, C].
      num_features: D, or 0 if unknown.

    `row_values_at` looks up x at the B·C·S support features (static shapes, XLA-friendly).
    """
    safe = tf.maximum(nodes, 0)
    wanted = tf.gather(support, safe)                                   # [B, C, S], −1 padded
    shape = tf.shape(wanted)
    x = tf.reshape(row_values_at(ids, values, tf.reshape(wanted, [shape[0], -1]), num_features), shape)
    logits = tf.reduce_sum(tf.gather(kernel, safe) * x, axis=-1)
    return tf.where(nodes >= 0, logits, 0.0)


def lower_bound_rows(sorted_rows: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """`tf.searchsorted(sorted_rows, values)` (side "left"), fast in plain graphs and under XLA: int32 [B, N].

    sorted_rows: [B, W] ascending along each row, W static; values: [B, N] of the same dtype.
    Result[b, n] = how many entries of row b are < values[b, n].

    XLA lowers `tf.searchsorted` to a [B, N, W] comparison (64 compares instead of 6 a lookup at W = 64),
    which made the sparse term most of the compiled beam search's time, so under XLA the search runs by
    binary lifting (`_lower_bound_by_lifting`); in a plain graph TensorFlow's own kernel is the faster one
    (the lifting's rounds are separate ops there: 1.8k against 4.3k rows/s in wordnet-nextword's
    uncompiled evaluation; compiled, 5.2k against 2.0k). docs/benchmarks-history.md, "Speed".
    """
    if _in_xla() or uses_portable_ops():  # ONNX has no sorted search either
        return _lower_bound_by_lifting(sorted_rows, values)
    return tf.searchsorted(sorted_rows, values, side="left")


def _in_xla() -> bool:
    """Whether the op being built goes into an XLA computation (a `jit_compile=True` function)."""
    try:  # TensorFlow keeps this test private; without it, the plain-graph path is still correct
        from tensorflow.python.ops import control_flow_util
    except ImportError:
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _lower_bound_by_lifting(sorted_rows: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """`lower_bound_rows` in ceil(log2(W + 1)) rounds of one batched gather, compare and select each.

    The prefix of entries below the value grows by 2^j wherever its last entry after growing would
    still be below the value, for j from the highest bit of W down: static shapes, fused by XLA.
    """
    width = int(sorted_rows.shape[1])
    below = tf.zeros(tf.shape(values), tf.int32)
    step = 1 << (width.bit_length() - 1) if width else 0
    while step:
        probe = below + (step - 1)  # the last entry of the longer prefix
        entry = tf.gather(sorted_rows, tf.minimum(probe, width - 1), batch_dims=1)
        below = tf.where((probe < width) & (entry < values), below + step, below)
        step //= 2
    return below
