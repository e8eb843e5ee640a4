"""Balanced recursive 2-means (algorithms.md §1.3): depth rule, balance, a per-node reference, a hand-checked case."""

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg

from tfxc.errors import ConfigError
from tfxc.tree import LabelTree, balanced_kmeans_codes, cluster_labels, tree_depth
from tfxc.tree.kmeans import HAVE_COMPILED_KMEANS, initial_pair

needs_compiled = pytest.mark.skipif(not HAVE_COMPILED_KMEANS, reason="the 2-means kernel was not built")


@pytest.mark.parametrize("labels, leaf, nr_splits, min_codes, sizes", [
    # The worked sizes of algorithms.md §1.3 (preliminary trees of the XR-Transformer paper configs).
    (3956, 16, 16, 16, [16, 256, 3956]),                           # Eurlex-4K
    (30938, 16, 16, 128, [128, 2048, 30938]),                      # Wiki10-31K
    (13330, 16, 8, 128, [128, 1024, 13330]),                       # AmazonCat-13K
    (501070, 16, 8, 64, [64, 512, 4096, 32768, 501070]),           # Wiki-500K
    (670091, 32, 16, 128, [128, 2048, 32768, 670091]),             # Amazon-670K
    (2812281, 100, 16, 128, [128, 2048, 32768, 2812281]),          # Amazon-3M bert1
    (2812281, 32, 16, 32, [32, 512, 8192, 131072, 2812281]),       # Amazon-3M bert2/3
])
def test_level_sizes_follow_the_pecos_chain_rule(labels, leaf, nr_splits, min_codes, sizes):
    leaves = 2 ** tree_depth(labels, leaf)
    tree = LabelTree.from_leaf_codes(np.arange(labels) % leaves, leaves, nr_splits, min_codes)
    assert tree.sizes == sizes


def test_depth_rule_edges():
    assert tree_depth(100, 100) == 0 and tree_depth(100, 200) == 0
    assert tree_depth(101, 100) == 1 and tree_depth(1000, 100) == 4
    with pytest.raises(ConfigError, match="leaf clusters"):
        balanced_kmeans_codes(np.eye(3), max_leaf_size=1)  # 2^2 leaves for 3 labels
    with pytest.raises(ConfigError, match=">= 1"):
        tree_depth(3, 0)


def test_initial_pair_is_two_distinct_positions_per_node():
    sizes = np.array([2, 3, 7, 1000, 2])
    r, l = initial_pair(0, np.arange(1, 6), sizes)
    assert np.all(r != l) and np.all((r >= 0) & (r < sizes)) and np.all((l >= 0) & (l < sizes))
    r2, l2 = initial_pair(0, np.arange(1, 6), sizes)
    np.testing.assert_array_equal(r, r2)
    assert not np.array_equal(initial_pair(1, np.arange(1, 6), sizes)[0], r)


def reference_codes(z, max_leaf_size, seed, max_iter, spherical):
    """The spec, node by node with dense vectors: the vectorised version must agree exactly."""
    z = np.asarray(z.todense() if scipy.sparse.issparse(z) else z, np.float64)
    depth = tree_depth(len(z), max_leaf_size)
    nodes = {1: np.arange(len(z))}
    for level in range(depth):
        for heap in range(2 ** level, 2 ** (level + 1)):
            members = nodes.pop(heap)
            n = members.size
            r, l = (int(a[0]) for a in initial_pair(seed, np.array([heap]), np.array([n])))
            c, prev = z[members[r]] - z[members[l]], None
            for _ in range(max_iter):
                order = np.lexsort((members, z[members] @ c))
                left = frozenset(members[order[: n // 2]].tolist())
                if left == prev:
                    break
                prev = left
                is_left = np.isin(members, list(left))
                sl, sr = z[members[is_left]].sum(0), z[members[~is_left]].sum(0)
                if spherical:
                    c = sr / max(np.linalg.norm(sr), 1e-30) - sl / max(np.linalg.norm(sl), 1e-30)
                else:
                    c = sr / (~is_left).sum() - sl / is_left.sum()
            nodes[2 * heap], nodes[2 * heap + 1] = members[order[: n // 2]], members[order[n // 2:]]
    codes = np.empty(len(z), np.int64)
    for heap, members in nodes.items():
        codes[members] = heap - 2 ** depth
    return codes


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_compiled), False])
@pytest.mark.parametrize("spherical", [True, False])
@pytest.mark.parametrize("num_labels, leaf, seed", [(50, 6, 0), (64, 8, 3), (97, 10, 11)])
def test_clustering_equals_the_per_node_reference(num_labels, leaf, seed, spherical, compiled):
    z = scipy.sparse.random(num_labels, 40, density=0.15, random_state=seed, format="csr", dtype=np.float64)
    codes, depth = balanced_kmeans_codes(z, max_leaf_size=leaf, seed=seed, spherical=spherical, compiled=compiled)
    np.testing.assert_array_equal(codes, reference_codes(z, leaf, seed, 20, spherical))
    sizes = np.bincount(codes, minlength=2 ** depth)
    assert sizes.max() - sizes.min() <= 1 and sizes.max() <= leaf  # exactly balanced


def test_a_hand_checked_clustering_splits_an_arc_into_consecutive_pairs():
    # Unit vectors at 0, 10, ..., 70 degrees, given to labels in shuffled order. For any two of them,
    # <z_r - z_l, z(theta)> is monotone in theta over an arc this short, so every balanced split cuts the
    # arc in two, whatever the seed: the leaves of 2 are the label pairs at consecutive angles.
    angle_of_label = np.array([50, 0, 70, 20, 10, 40, 60, 30])
    z = np.stack([np.cos(np.radians(angle_of_label)), np.sin(np.radians(angle_of_label))], axis=1)
    by_angle = np.argsort(angle_of_label)
    expected = sorted(sorted(by_angle[i:i + 2].tolist()) for i in range(0, 8, 2))  # [[1,4],[3,7],[0,5],[6,2]]
    for seed in range(6):
        codes, depth = balanced_kmeans_codes(z, max_leaf_size=2, seed=seed)
        assert depth == 2
        assert sorted(sorted(np.flatnonzero(codes == c).tolist()) for c in range(4)) == expected, seed
        # Heap order: sibling leaves (codes 2j, 2j+1) hold neighbouring halves of the arc.
        halves = [sorted(angle_of_label[(codes // 2) == h]) for h in range(2)]
        assert sorted(map(tuple, halves)) == [(0, 10, 20, 30), (40, 50, 60, 70)]


@needs_compiled
def test_compiled_clustering_equals_the_vectorised_one_on_pifa_like_rows():
    # Unit-norm rows of very different lengths, as PIFA's are; both versions iterate to the same fixed points.
    rng = np.random.default_rng(4)
    z = scipy.sparse.random(3000, 500, density=0.02, random_state=4, format="csr", dtype=np.float64)
    z = scipy.sparse.diags(rng.integers(1, 4, 3000).astype(np.float64)) @ z
    z = scipy.sparse.csr_matrix(z.multiply(1 / np.maximum(scipy.sparse.linalg.norm(z, axis=1), 1e-12)[:, None]))
    fast, depth = balanced_kmeans_codes(z, max_leaf_size=16, seed=2, compiled=True)
    slow, _ = balanced_kmeans_codes(z, max_leaf_size=16, seed=2, compiled=False)
    np.testing.assert_array_equal(fast, slow)
    assert depth == 8


def test_cluster_labels_is_deterministic_for_a_seed():
    z = scipy.sparse.random(300, 80, density=0.05, random_state=1, format="csr")
    a, b = (cluster_labels(z, max_leaf_size=10, nr_splits=4, seed=5) for _ in range(2))
    assert a.sizes == b.sizes == [2, 8, 32, 300]
    for pa, pb in zip(a.parents, b.parents):
        np.testing.assert_array_equal(pa, pb)
    c = cluster_labels(z, max_leaf_size=10, nr_splits=4, seed=6)
    assert not np.array_equal(a.parents[-1], c.parents[-1])
