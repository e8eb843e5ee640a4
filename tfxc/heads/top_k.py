"""The top-k of heads that score every label, one block of labels at a time.

`LABEL_CHUNK` is the one block size of the package: the dense heads, the linear
head and MHS score that many labels per block (`chunked_top_k`), MACH's in-graph
top-k a fixed share of it (`tfxc.heads.mach.mach_top_k_tf`).
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
