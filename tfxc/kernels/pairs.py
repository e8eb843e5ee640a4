"""(row, node) pair products of the label tree's training step: compiled kernel, NumPy fallback.

A label tree row scores, on each gathered level, only its active nodes (the
children of its positive parents): C of the level's K nodes, padded with −1 to
a [B, C] table. Its logits and their gradients are

    forward   z[b, c] = h[b] · W[n] + Σ_j U[n, j] · x_b[S[n, j]]         (n = nodes[b, c])
    backward  dh[b] = Σ_c g[b, c] · W[n];  dW[n] = Σ g[b, c] · h[b];  dU[n, j] = Σ g[b, c] · x_b[S[n, j]]

with W the node vectors, U the sparse term's weights over each node's support S
of input features, and x_b the row's sparse features. The table gradients
come back for the distinct nodes of the batch only (a row-sparse gradient).

`HAVE_COMPILED_PAIRS` says whether the OpenMP kernel `tfxc.kernels._pairs` was
built (`pip install -e .`); without it every function runs the NumPy
version, which gives the same values (summed in another order: equal to
float32 rounding). `tfxc.heads.pair_scores` wraps these as TensorFlow ops.
"""

from __future__ import annotations

import numpy as np

try:
    from tfxc.kernels import _pairs
except ImportError:  # pragma: no cover - only without a built extension
    _pairs = None

HAVE_COMPILED_PAIRS = _pairs is not None

# The sparse term's kernel spreads each row over a dense buffer of D floats per thread (one load a lookup,
# against a binary search in the row) up to this many features: 16 MiB a thread.
DENSE_LOOKUP_MAX_FEATURES = 1 << 22


def default_num_threads() -> int:
    """The compiled kernel's threads (OpenMP's default: one per core)."""
    return int(_pairs.max_threads()) if _pairs is not None else 1


def _f32(array) -> np.ndarray:
    return np.ascontiguousarray(array, np.float32)


def _i32(array) -> np.ndarray:
    return np.ascontiguousarray(array, np.int32)


def group_by_node(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat pair slots of int32 [B, C] `nodes` grouped by node (−1 slots left out).

    Returns (distinct nodes int32 [U] ascending, order int64 [P]: the valid slots (b·C + c) sorted by
    node, stable; starts int64 [U + 1]: where each node's slots begin in `order`).
    """
    flat = np.ascontiguousarray(nodes, np.int32).reshape(-1)
    if _pairs is not None:
        return _pairs.group_by_node(flat, int(flat.max(initial=-1)) + 1)
    slots = np.flatnonzero(flat >= 0)
    keys = flat[slots]
    perm = np.argsort(keys, kind="stable")
    order, keys = slots[perm].astype(np.int64), keys[perm]
    starts = np.concatenate([[0], np.flatnonzero(keys[1:] != keys[:-1]) + 1, [keys.size]]).astype(np.int64)
    distinct = keys[starts[:-1]] if keys.size else np.zeros(0, np.int32)
    return distinct.astype(np.int32), order, (starts if keys.size else np.zeros(1, np.int64))


def pair_dots(h, table, nodes, num_threads: int | None = None) -> np.ndarray:
    """z[b, c] = h[b] · table[nodes[b, c]] (0 where the node is −1): float32 [B, C].

    h: float32 [B, d]; table: float32 [K, d]; nodes: int32 [B, C] in [−1, K)."""
    h, table, nodes = _f32(h), _f32(table), _i32(nodes)
    if _pairs is not None:
        return _pairs.pair_dots(h, table, nodes, num_threads or default_num_threads())
    valid = nodes >= 0
    out = np.einsum("bd,bcd->bc", h, table[np.where(valid, nodes, 0)]) if table.shape[0] else np.zeros(nodes.shape)
    return np.where(valid, out, 0.0).astype(np.float32)


def pair_grads(grads, h, table, nodes, looked=None, num_threads: int | None = None):
    """The gradients of `pair_dots` (of a per-node bias added to it, and of `pair_sparse_dots`, given its
    `looked`) for upstream float32 [B, C] `grads`, over one grouping of the pairs by node.

    Returns (dh float32 [B, d], distinct nodes int32 [U], dW float32 [U, d]: the table's gradient rows of
    those nodes, db float32 [U]: their bias's, dU float32 [U, S]: the sparse weights' rows, or None without
    `looked`)."""
    grads, h, table, nodes = _f32(grads), _f32(h), _f32(table), _i32(nodes)
    distinct, order, starts = group_by_node(nodes)
    threads = num_threads or default_num_threads()
    width = max(nodes.shape[1], 1)
    flat = grads.reshape(-1)
    bias = (np.add.reduceat(flat[order], starts[:-1]) if order.size else np.zeros(0)).astype(np.float32)
    vectors = None if looked is None else _f32(looked).reshape(-1, np.shape(looked)[-1])
    if _pairs is not None:
        dh = _pairs.pair_input_grads(grads, table, nodes, threads)
        dw = _pairs.grouped_row_sums(flat, h, order, starts, width, threads)
        du = None if vectors is None else _pairs.grouped_row_sums(flat, vectors, order, starts, 1, threads)
        return dh, distinct, dw, bias, du
    valid = nodes >= 0
    dh = np.einsum("bc,bcd->bd", np.where(valid, grads, 0.0), table[np.where(valid, nodes, 0)]).astype(np.float32)
    du = None if vectors is None else _grouped_sums(flat, vectors, order, starts, 1)
    return dh, distinct, _grouped_sums(flat, h, order, starts, width), bias, du


def pair_sparse_dots(ids, values, support, weights, nodes, num_features: int = 0, num_threads: int | None = None,
                     keep_looked: bool = True):
    """The sparse term of pairs: z[b, c] = Σ_j weights[n, j] · x_b[support[n, j]], n = nodes[b, c].

    ids / values: int32 / float32 [B, W], each row's feature ids ascending (padding ids sort last,
    padding values 0); support / weights: int32 / float32 [K, S] (−1: no feature); nodes: int32 [B, C];
    num_features: D, or 0 if unknown (the kernel then searches each row instead of indexing a dense copy).
    Returns (z float32 [B, C], looked float32 [B, C, S]: the x values found, for `pair_sparse_grads`; with
    `keep_looked` False, [B, C, 0]: scores alone, without writing B·C·S floats).
    """
    ids, values, support, weights, nodes = _i32(ids), _f32(values), _i32(support), _f32(weights), _i32(nodes)
    if _pairs is not None:
        dense = num_features if 0 < num_features <= DENSE_LOOKUP_MAX_FEATURES else 0
        return _pairs.pair_sparse_dots(ids, values, support, weights, nodes, dense,
                                       num_threads or default_num_threads(), keep_looked)
    rows, width = nodes.shape
    span = support.shape[1]
    looked = np.zeros((rows, width, span), np.float32)
    valid = nodes >= 0
    if support.shape[0] and span and ids.shape[1]:
        wanted = support[np.where(valid, nodes, 0)]                                   # [B, C, S]
        slot = np.stack([np.searchsorted(ids[b], wanted[b].reshape(-1)) for b in range(rows)]).reshape(wanted.shape) \
            if rows else np.zeros(wanted.shape, np.int64)
        slot = np.minimum(slot, ids.shape[1] - 1)
        found = (np.take_along_axis(ids, slot.reshape(rows, -1), 1).reshape(wanted.shape) == wanted) & (wanted >= 0)
        found &= valid[:, :, None]
        looked = np.where(found, np.take_along_axis(values, slot.reshape(rows, -1), 1).reshape(wanted.shape),
                          0.0).astype(np.float32)
    out = np.where(valid, np.einsum("bcs,bcs->bc", looked, weights[np.where(valid, nodes, 0)]) if support.shape[0]
                   else 0.0, 0.0).astype(np.float32)
    return out, (looked if keep_looked else looked[:, :, :0])


def pair_sparse_grads(grads, looked, nodes, num_threads: int | None = None):
    """The gradient of `pair_sparse_dots` for its weights alone: (distinct nodes int32 [U], dU float32 [U, S])."""
    grads, looked, nodes = _f32(grads), _f32(looked), _i32(nodes)
    distinct, order, starts = group_by_node(nodes)
    vectors = looked.reshape(-1, looked.shape[-1])
    if _pairs is not None:
        return distinct, _pairs.grouped_row_sums(grads.reshape(-1), vectors, order, starts, 1,
                                                 num_threads or default_num_threads())
    valid = nodes.reshape(-1) >= 0
    return distinct, _grouped_sums(np.where(valid, grads.reshape(-1), 0.0).astype(np.float32), vectors, order,
                                   starts, 1)


def _grouped_sums(grads, vectors, order, starts, vector_of_every: int) -> np.ndarray:
    """NumPy `grouped_row_sums`: out[u] = Σ grads[slot] · vectors[slot // vector_of_every] over u's slots."""
    out = np.zeros((starts.size - 1, vectors.shape[1]), np.float32)
    if order.size:
        group = np.repeat(np.arange(starts.size - 1), np.diff(starts))
        np.add.at(out, group, grads[order][:, None] * vectors[order // vector_of_every])
    return out
