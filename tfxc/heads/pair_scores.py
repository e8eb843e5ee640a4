"""The label tree's training logits of (row, node) pairs as one TensorFlow op with a row-sparse gradient.

On a level too big to score whole, a row scores its active nodes only: C of the
level's K, int32 [B, C] with −1 for none. As TensorFlow ops that is a gather of
[B, C, d] node vectors (and of [B, C, S] sparse-term weights), a product, and on
the way back the same [B, C, d] again as an IndexedSlices, which the optimizer
sorts and sums before its update: passes over B·C·d floats that cost most of
the tree's step. `pair_logits` runs the compiled kernels of
`tfxc.kernels.pairs` instead, forward and backward (a `tf.custom_gradient`
around `tf.numpy_function`s) on the rows of the batch's distinct nodes alone,
gathered from the tables first, and hands the optimizer one gradient row per
distinct node of the batch, in ascending order.

For training only: the op runs in the Python process (a SavedModel cannot
hold it), so prediction keeps its TensorFlow ops (`tfxc.heads.gather_dot`).
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.kernels import pairs


def pair_logits(h: tf.Tensor, kernel, bias, nodes: tf.Tensor, sparse: tuple | None = None,
                num_features: int = 0) -> tf.Tensor:
    """z[b, c] = h[b] · kernel[n] + bias[n] (+ Σ_j U[n, j] · x_b[S[n, j]]), n = nodes[b, c]: float32 [B, C].

    Args:
      h: float32 [B, d], the rows' encodings.
      kernel: float32 [K, d], the level's node vectors: a variable (its gradient is an IndexedSlices over the
        batch's distinct nodes, ascending) or a tensor.
      bias: float32 [K] (a variable or tensor, the same kind of gradient), or None.
      nodes: int32 [B, C], −1 padded (z is 0 there).
      sparse: None, or (ids int32 [B, W], values float32 [B, W], support int32 [K, S], weights float32 [K, S]):
        the rows' sparse features (ids ascending, padding ids after every real one) and the nodes' sparse
        term; `weights` gets a row-sparse gradient too.
      num_features: D of the sparse features (0: unknown).

    Only the batch's distinct nodes are read from the tables (`distinct_nodes`, then one gather each): a
    whole table handed to the kernels would be read, and in TensorFlow's copy-on-read mode of a
    scatter-updated variable copied, at every step, which at 10^5–10^6 nodes costs more than the pairs.
    The gradient reaches h and the tables; none flows to the ids, values or support.
    """
    distinct, local = distinct_nodes(nodes)
    kernel = tf.gather(kernel, distinct)
    bias = tf.gather(bias, distinct) if bias is not None else None
    if sparse is not None:
        ids, values, support, weights = sparse
        sparse = (ids, values, tf.gather(support, distinct), tf.gather(weights, distinct))
    return _gathered_pair_logits(h, kernel, bias, local, sparse, num_features)


def distinct_nodes(nodes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The distinct node ids of int32 [B, C] `nodes` (−1 left out), int32 [U] ascending, and `nodes`
    renumbered into them, int32 [B, C] in [−1, U) (−1 kept)."""
    flat = tf.reshape(nodes, [-1])
    distinct = tf.sort(tf.unique(tf.boolean_mask(flat, flat >= 0)).y)
    local = tf.reshape(tf.searchsorted(distinct, flat, out_type=tf.int32), tf.shape(nodes))
    return distinct, tf.where(nodes >= 0, local, -1)


def _gathered_pair_logits(h, kernel, bias, nodes, sparse, num_features: int) -> tf.Tensor:
    """`pair_logits` over tables of the batch's distinct nodes alone: `nodes` int32 [B, C] index their rows
    and name every one of them, so each table's gradient is one dense row per row, in order."""
    h = tf.cast(h, tf.float32)
    with_bias = bias is not None
    bias = bias if with_bias else tf.zeros([0], tf.float32)
    ids, values, support, weights = sparse if sparse is not None else (
        tf.zeros([0, 0], tf.int32), tf.zeros([0, 0]), tf.zeros([0, 0], tf.int32), tf.zeros([0, 0]))
    with_sparse = sparse is not None

    def forward(h, kernel, bias, nodes, ids, values, support, weights):
        logits = pairs.pair_dots(h, kernel, nodes)
        if with_bias:
            logits += (bias[nodes.clip(0)] * (nodes >= 0)).astype("float32")
        if not with_sparse:
            return logits, logits[:0, :0, None]
        term, looked = pairs.pair_sparse_dots(ids, values, support, weights, nodes, num_features)
        return logits + term, looked

    def backward(upstream, h, kernel, nodes, looked):
        # The rows' grouping by node (`distinct`) is 0..U-1 here: each table row is some pair's node.
        dh, _, dw, db, du = pairs.pair_grads(upstream, h, kernel, nodes, looked if with_sparse else None)
        return dh, dw, db, du if du is not None else dw[:, :0]

    @tf.custom_gradient
    def run(h, kernel, bias, weights, nodes, ids, values, support):
        logits, looked = tf.numpy_function(forward, [h, kernel, bias, nodes, ids, values, support, weights],
                                           [tf.float32, tf.float32], stateful=False)

        def gradient(upstream):
            dh, dw, db, du = tf.numpy_function(backward, [upstream, h, kernel, nodes, looked],
                                               [tf.float32] * 4, stateful=False)
            return (_shaped(dh, h.shape), _shaped(dw, kernel.shape), _shaped(db, bias.shape) if with_bias else None,
                    _shaped(du, weights.shape) if with_sparse else None, None, None, None, None)

        return _shaped(logits, nodes.shape), gradient

    return run(h, kernel, bias, weights, nodes, ids, values, support)


def sparse_pair_logits(nodes: tf.Tensor, sparse: tuple, num_features: int = 0) -> tf.Tensor:
    """The sparse term alone, Σ_j U[n, j] · x_b[S[n, j]] for n = nodes[b, c]: float32 [B, C] (`pair_logits`'s
    `sparse`), for a level whose encoder-feature logits come from one whole-level product."""
    ids, values, support, weights = sparse

    @tf.custom_gradient
    def run(weights, nodes, ids, values, support):
        term, looked = tf.numpy_function(
            lambda ids, values, support, weights, nodes: pairs.pair_sparse_dots(ids, values, support, weights,
                                                                                nodes, num_features),
            [ids, values, support, weights, nodes], [tf.float32, tf.float32], stateful=False)

        def gradient(upstream):
            distinct, rows = tf.numpy_function(pairs.pair_sparse_grads, [upstream, looked, nodes],
                                               [tf.int32, tf.float32], stateful=False)
            return _table_gradient(rows, distinct, weights), None, None, None, None

        return _shaped(term, nodes.shape), gradient

    return run(weights, nodes, ids, values, support)


def sparse_pair_scores(nodes: tf.Tensor, sparse: tuple, num_features: int = 0) -> tf.Tensor:
    """`sparse_pair_logits`'s values without a gradient, float32 [B, C]: for the beam search of a training step
    (`man` negatives), which scores every candidate's support without keeping what it looked up."""
    ids, values, support, weights = sparse
    term = tf.numpy_function(
        lambda ids, values, support, weights, nodes: pairs.pair_sparse_dots(
            ids, values, support, weights, nodes, num_features, keep_looked=False)[0],
        [ids, values, support, tf.stop_gradient(weights), nodes], tf.float32, stateful=False)
    return _shaped(term, nodes.shape)


def _shaped(tensor: tf.Tensor, shape) -> tf.Tensor:
    tensor.set_shape(shape)
    return tensor


def _table_gradient(rows: tf.Tensor, distinct: tf.Tensor, table: tf.Tensor) -> tf.IndexedSlices:
    """The gradient rows float32 [U, ...] of a table's distinct rows int32 [U], as an IndexedSlices."""
    return tf.IndexedSlices(_shaped(rows, [None, *table.shape[1:]]), _shaped(distinct, [None]),
                            tf.shape(table, out_type=tf.int32))
