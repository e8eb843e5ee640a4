"""Balanced recursive spherical 2-means over label features: the leaf clusters of a label tree.

Reference: PECOS (Yu et al., "PECOS: Prediction for Enormous and Correlated Output Spaces", JMLR 2022),
`pecos/core/utils/clustering.hpp`; spec: algorithms.md §1.3.

Every node of a binary tree (heap ids: root 1, children of n are 2n and 2n+1)
splits its labels into two exactly balanced halves: the labels are scored
against a direction c and sorted (ties by label id); the first floor(n/2) go
left. c starts as z_r − z_l for two distinct random labels of the node (drawn
from a per-node seed) and is re-estimated from the halves,
c = normalize(Σ_right z) − normalize(Σ_left z) (spherical) or
mean(right) − mean(left), until the left half stops changing or
`max_iter` passes. The leaves at depth ceil(log2(L / max_leaf_size)) are the
clusters.

The compiled kernel (`tfxc.kernels._kmeans`) splits the nodes of a depth in
parallel, each node's centroids in dense per-thread buffers of D doubles
touched only at its features: a pass costs the node's nonzeros. Without it
(or above `DENSE_CENTROID_MAX_FEATURES`), all nodes of one depth are iterated
together, vectorised: each node's centroid lives in the compact space of the
features its labels use (one slot per distinct (node, feature) pair), so a
pass is O(nnz(Z)) plus a sort, whatever the number of nodes. A node whose
split stopped changing is a fixed point (same halves -> same centroid -> same
split), so iterating it further changes nothing: the result equals per-node
early stopping. Both give the same splits (equal up to float rounding in the
spherical norms).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse

from tfxc.errors import ConfigError

try:
    from tfxc.kernels import _kmeans
except ImportError:  # pragma: no cover - only without a built extension
    _kmeans = None

HAVE_COMPILED_KMEANS = _kmeans is not None
# The compiled 2-means keeps 4 dense buffers of D doubles per thread: 512 MiB a thread at this many features.
DENSE_CENTROID_MAX_FEATURES = 1 << 24

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def tree_depth(num_labels: int, max_leaf_size: int) -> int:
    """Depth of the binary tree: 0 (one cluster) if max_leaf_size >= L, else max(1, ceil(log2(L / leaf)))."""
    if max_leaf_size < 1:
        raise ConfigError(f"max_leaf_size ({max_leaf_size}) must be >= 1")
    if max_leaf_size >= num_labels:
        return 0
    depth = max(1, math.ceil(math.log2(num_labels / max_leaf_size)))
    if 2 ** depth > num_labels:
        raise ConfigError(f"max_leaf_size {max_leaf_size} asks for 2^{depth} leaf clusters for only "
                          f"{num_labels} labels")
    return depth


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A stateless 64-bit mixer (Steele et al., SplitMix64): the per-node random draws."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return x ^ (x >> np.uint64(31))


def initial_pair(seed: int, heap_ids: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two distinct seed positions (r, l) of each node, from a seed per (seed, node id).

    r is uniform in [0, n) and l = (r + uniform[1, n−1]) mod n, so l != r (n >= 2).
    """
    base = _splitmix64(np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x100000001) + heap_ids.astype(np.uint64))
    first, second = _splitmix64(base), _splitmix64(base ^ np.uint64(0xD1B54A32D192ED03))
    n = sizes.astype(np.uint64)
    r = first % n
    l = (r + np.uint64(1) + second % np.maximum(n - np.uint64(1), np.uint64(1))) % n
    return r.astype(np.int64), l.astype(np.int64)


def _row_ranges(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nnz positions of the given CSR rows, concatenated; which of `rows` each belongs to)."""
    counts = indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(rows.size), counts)
    starts = np.repeat(indptr[rows] - np.cumsum(counts) + counts, counts)
    return starts + np.arange(counts.sum()), owner


def balanced_kmeans_codes(z, max_leaf_size: int = 100, seed: int = 0, max_iter: int = 20,
                          spherical: bool = True, compiled: bool | None = None) -> tuple[np.ndarray, int]:
    """Leaf cluster of every label by balanced recursive 2-means (see the module docstring).

    Args:
      z: label features, float [L, D], scipy sparse or dense (rows are labels; PIFA rows are unit norm).
      max_leaf_size: the most labels a leaf may hold (sets the depth).
      seed: seeds the per-node initial directions.
      max_iter: 2-means passes per node.
      spherical: centroids are normalised sums (True) or means.
      compiled: force the compiled kernel (True) or the NumPy version (False); default: the kernel when
        built and D <= DENSE_CENTROID_MAX_FEATURES.

    Returns:
      (codes int64 [L] in [0, 2^depth): leaf of each label in heap order, depth).
    """
    if compiled is None:
        compiled = HAVE_COMPILED_KMEANS and z.shape[1] <= DENSE_CENTROID_MAX_FEATURES
    if compiled and _kmeans is None:
        raise RuntimeError("tfxc.kernels._kmeans is not built (pip install -e .)")
    # The kernel widens float32 values to double as it reads them (exact): no float64 copy of the matrix.
    keeps_float32 = compiled and scipy.sparse.issparse(z) and z.dtype == np.float32
    z = scipy.sparse.csr_matrix(z, dtype=np.float32 if keeps_float32 else np.float64)
    num_labels, dim = z.shape
    depth = tree_depth(num_labels, max_leaf_size)
    order = np.arange(num_labels)          # labels, grouped by node (node j holds order[start[j]:start[j+1]])
    starts = np.array([0, num_labels])
    for level in range(depth):
        if compiled:
            order, starts = _split_level_compiled(z, order, starts, level, dim, seed, max_iter, spherical)
        else:
            order, starts = _split_level(z[order], order, starts, level, dim, seed, max_iter, spherical)
    codes = np.empty(num_labels, np.int64)
    codes[order] = np.repeat(np.arange(starts.size - 1), np.diff(starts))
    return codes, depth


def _child_starts(starts: np.ndarray) -> np.ndarray:
    """Where the halves of every node begin (heap order: node j's left half, then its right half)."""
    half = np.diff(starts) // 2
    child_starts = np.empty(2 * (starts.size - 1) + 1, np.int64)
    child_starts[0:-1:2], child_starts[1::2], child_starts[-1] = starts[:-1], starts[:-1] + half, starts[-1]
    return child_starts


def _split_level_compiled(z, order, starts, level, dim, seed, max_iter, spherical):
    """`_split_level` through the compiled kernel, reading the rows of `z` (CSR, float32 or float64) where
    they are."""
    r, l = initial_pair(seed, (1 << level) + np.arange(starts.size - 1), np.diff(starts))
    arranged = _kmeans.split_level(np.ascontiguousarray(z.indptr, np.int64), np.ascontiguousarray(z.indices, np.int32),
                                   np.ascontiguousarray(z.data), np.ascontiguousarray(order, np.int64),
                                   np.ascontiguousarray(starts, np.int64), r, l, int(max_iter), bool(spherical),
                                   int(dim))
    return arranged, _child_starts(starts)


def _split_level(zp, order, starts, level, dim, seed, max_iter, spherical):
    """Splits every node of one depth; returns the new (order, starts) with children in heap order.

    Only nodes whose halves still change are re-scored and re-sorted: a node whose
    left half came out the same twice in a row is at its fixed point and is frozen.
    """
    num_labels = order.size
    sizes = np.diff(starts)
    num_nodes = sizes.size
    node_of_pos = np.repeat(np.arange(num_nodes), sizes)
    row_of_nnz = np.repeat(np.arange(num_labels), np.diff(zp.indptr))
    node_of_nnz = node_of_pos[row_of_nnz]
    vals = zp.data
    # Compact centroid space: one slot per distinct (node, feature) pair of the node's labels.
    slots, slot_of_nnz = np.unique(node_of_nnz.astype(np.int64) * dim + zp.indices, return_inverse=True)
    node_of_slot = slots // dim
    # Initial direction z_r − z_l.
    r, l = initial_pair(seed, (1 << level) + np.arange(num_nodes), sizes)
    direction = np.zeros(slots.size)
    for rows, sign in ((starts[:-1] + r, 1.0), (starts[:-1] + l, -1.0)):
        nnz, _ = _row_ranges(zp.indptr, rows)
        np.add.at(direction, slot_of_nnz[nnz], sign * vals[nnz])
    half = sizes // 2
    active = np.ones(num_nodes, bool)
    left = np.zeros(num_labels, bool)
    arranged = np.arange(num_labels)  # per node: its left half, then its right half (positions)
    for iteration in range(max_iter):
        pos = np.flatnonzero(active[node_of_pos])
        nnz = np.flatnonzero(active[node_of_nnz])
        scores = np.bincount(row_of_nnz[nnz], weights=vals[nnz] * direction[slot_of_nnz[nnz]],
                             minlength=num_labels)[pos]
        # Sort each node's labels by score, ties by label id; the first floor(n/2) go left.
        sorted_pos = pos[np.lexsort((order[pos], scores, node_of_pos[pos]))]
        node = node_of_pos[sorted_pos]
        rank = np.arange(sorted_pos.size) - np.searchsorted(node, node, side="left")
        new_left = rank < half[node]
        arranged[starts[node] + rank] = sorted_pos
        changed = np.bincount(node, weights=new_left != left[sorted_pos], minlength=num_nodes) > 0
        left[sorted_pos] = new_left
        if iteration:
            active &= changed
            if not active.any():
                break
        side = left[row_of_nnz[nnz]]
        sums_left = np.bincount(slot_of_nnz[nnz], weights=vals[nnz] * side, minlength=slots.size)
        sums_right = np.bincount(slot_of_nnz[nnz], weights=vals[nnz] * ~side, minlength=slots.size)
        if spherical:
            scale_left = np.sqrt(np.bincount(node_of_slot, weights=sums_left ** 2, minlength=num_nodes))
            scale_right = np.sqrt(np.bincount(node_of_slot, weights=sums_right ** 2, minlength=num_nodes))
        else:
            scale_left, scale_right = half.astype(np.float64), (sizes - half).astype(np.float64)
        direction = (sums_right / np.maximum(scale_right, 1e-30)[node_of_slot]
                     - sums_left / np.maximum(scale_left, 1e-30)[node_of_slot])
    return order[arranged], _child_starts(starts)
