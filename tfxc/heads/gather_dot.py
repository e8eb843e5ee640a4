"""Dot products of each row with a few rows of a big table, gathered in blocks.

`gather_dot(h, table, ids)[b, c] = h[b] · table[ids[b, c]]`, the inner loop of a
beam search's scoring (the candidates' node vectors against the row's encoding).

Why blocks: on this class of machine a single `tf.gather` into a buffer of
32 MB or more runs at ~2.4 GB/s against ~14 GB/s for buffers under 16 MB (the
allocator hands big buffers back to the OS, so every call page-faults a fresh
one in; XLA's gather has the same cliff). Batch beam search at 30,000 labels
gathers 256 rows × 160 candidates × 512 floats = 84 MB at its last level, which
took 32–35 ms as one gather and takes ~6 ms in blocks of 8 MB
(docs/benchmarks-history.md, "Label tree head").

For inference only: the loop over blocks is a `tf.while_loop`, whose gradient
with respect to the table would be dense. Training keeps its one gather (and
its row-sparse gradient).
"""

from __future__ import annotations

from tfxc._tf import tf

BLOCK_BYTES = 8 << 20


def gather_dot(h: tf.Tensor, table: tf.Tensor, ids: tf.Tensor, block_bytes: int = BLOCK_BYTES) -> tf.Tensor:
    """h float32 [B, D], table float32 [N, D], ids int32 [B, C] in [0, N) -> float32 [B, C].

    At most `block_bytes` of gathered vectors are alive per block of rows (at
    least one row per block); with C or D not static, all rows form one block.
    """
    candidates, dim = ids.shape[1], table.shape[1]

    def direct(h, ids):
        return tf.einsum("bd,bcd->bc", h, tf.gather(table, ids))

    if candidates is None or dim is None:
        return direct(h, ids)
    rows_per_block = max(1, block_bytes // (4 * candidates * dim))

    def blocked(h, ids):
        n = tf.shape(h)[0]
        blocks = (n + rows_per_block - 1) // rows_per_block
        pad = blocks * rows_per_block - n
        h_blocks = tf.reshape(tf.pad(h, [[0, pad], [0, 0]]), [blocks, rows_per_block, dim])
        id_blocks = tf.reshape(tf.pad(ids, [[0, pad], [0, 0]]), [blocks, rows_per_block, candidates])
        # Two blocks in flight: one per core, and the live buffers stay small.
        out = tf.map_fn(lambda block: direct(*block), (h_blocks, id_blocks), parallel_iterations=2,
                        fn_output_signature=tf.TensorSpec([rows_per_block, candidates], h.dtype))
        return tf.reshape(out, [-1, candidates])[:n]

    batch = h.shape[0]
    if batch is not None:  # static (as under XLA): no branch
        return direct(h, ids) if batch <= rows_per_block else blocked(h, ids)
    return tf.cond(tf.shape(h)[0] <= rows_per_block, lambda: direct(h, ids), lambda: blocked(h, ids))
