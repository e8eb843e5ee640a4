"""The top-k of heads that score every label, one block of labels at a time.

`LABEL_CHUNK` is the one block size of the package: the dense heads, the linear
head and MHS score that many labels per block (`chunked_top_k`), MACH's in-graph
top-k a fixed share of it (`mach_top_k_tf`).
"""

from __future__ import annotations

from tfxc._tf import tf

# Labels scored per block: bounds the [B, chunk] temporary of a block's logits. Tests shrink it to see blocks merged.
LABEL_CHUNK = 65536


def chunked_top_k(chunk_logits, num_labels: int, k, chunk: int | None = None):
    """Top-k logits over all labels, scored `chunk` labels at a time; also the row-wise logsumexp.

    Only a [B, chunk] block of logits exists at any time, so a 360k-label
    softmax is ranked and normalised without a [B, L] matrix.

    Args:
      chunk_logits: callable (start, stop) -> float32 [B, stop - start], the logits of labels [start, stop).
      num_labels: L.
      k: a Python int or a scalar int32 tensor (serving takes k as an input); clipped to L.
      chunk: labels per block (default `LABEL_CHUNK`, read at the call).

    Returns:
      (logits float32 [B, k], ids int64 [B, k], logsumexp float32 [B]), best first.
    """
    chunk = chunk or LABEL_CHUNK
    k = tf.minimum(tf.cast(k, tf.int32), num_labels)
    if num_labels <= chunk:  # one block: nothing to merge (a dozen ops fewer in a one-row serving call)
        logits = chunk_logits(0, num_labels)
        vals, ids = tf.math.top_k(logits, k=k)
        return vals, tf.cast(ids, tf.int64), tf.reduce_logsumexp(logits, axis=1)
    best_vals, best_ids, lse = [], [], []
    for start in range(0, num_labels, chunk):
        stop = min(start + chunk, num_labels)
        logits = chunk_logits(start, stop)
        vals, ids = tf.math.top_k(logits, k=tf.minimum(k, stop - start))
        best_vals.append(vals)
        best_ids.append(tf.cast(ids, tf.int64) + start)
        lse.append(tf.reduce_logsumexp(logits, axis=1))
    vals, ids, lse = tf.concat(best_vals, 1), tf.concat(best_ids, 1), tf.reduce_logsumexp(tf.stack(lse, 1), 1)
    if len(best_vals) > 1:
        vals, order = tf.math.top_k(vals, k=k)
        ids = tf.gather(ids, order, batch_dims=1)
    return vals, ids, lse

# Labels gathered per step of the in-graph top-k: a label gathers one score per repetition (R = 32 by default), so
# a sixteenth of the heads' block (4,096 labels) keeps the [R, batch, chunk] temporary within twice their
# [batch, block].
MACH_CHUNK_SHARE = 16


def mach_top_k_tf(bucket_scores, lookup, k, chunk: int = LABEL_CHUNK // MACH_CHUNK_SHARE):
    """In-graph MACH top-k: score(c) = Σ_r bucket_scores[:, r, lookup[r, c]], best k per row.

    Runs over label chunks in a tf.while_loop, merging a running top-k, so the
    largest temporary is [R, batch, chunk]; ties go to the smaller label id.
    The SavedModel uses this (serving needs no Cython); it agrees with
    `tfxc.kernels.mach.mach_top_k`.

    Args:
      bucket_scores: float32 [batch, R, B].
      lookup: int32 [R, L].
      k: int or scalar int32 tensor (clipped to L).

    Returns:
      (scores float32 [batch, k], ids int64 [batch, k]).
    """
    bucket_scores = tf.convert_to_tensor(bucket_scores, tf.float32)
    lookup = tf.convert_to_tensor(lookup, tf.int32)
    num_labels = tf.shape(lookup)[1]
    k = tf.minimum(tf.cast(k, tf.int32), num_labels)
    # [R, B, batch]: each gathered element is then a contiguous row of `batch`
    # scores, which TF copies far faster than scattered single floats.
    by_bucket = tf.transpose(bucket_scores, [1, 2, 0])
    batch = tf.shape(bucket_scores)[0]
    num_chunks = (num_labels + chunk - 1) // chunk

    def body(i, best_scores, best_ids):
        start = i * chunk
        ids = lookup[:, start:start + chunk]                         # [R, C]
        scores = tf.transpose(tf.reduce_sum(tf.gather(by_bucket, ids, batch_dims=1), axis=0))  # [batch, C]
        chunk_scores, chunk_pos = tf.math.top_k(scores, k=tf.minimum(k, tf.shape(ids)[1]))
        merged_scores = tf.concat([best_scores, chunk_scores], axis=1)
        merged_ids = tf.concat([best_ids, tf.cast(chunk_pos + start, tf.int64)], axis=1)
        top_scores, order = tf.math.top_k(merged_scores, k=tf.minimum(k, tf.shape(merged_scores)[1]))
        return i + 1, top_scores, tf.gather(merged_ids, order, batch_dims=1)

    init = (tf.constant(0), tf.zeros([batch, 0], tf.float32), tf.zeros([batch, 0], tf.int64))
    _, scores, ids = tf.while_loop(lambda i, *_: i < num_chunks, body, init,
                                   shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]),
                                                     tf.TensorShape([None, None])))
    return scores, ids
