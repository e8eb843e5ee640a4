"""The label index: its tree, its top-k against the exact heads', recall by hand, the sparse term of candidates."""

import numpy as np
import pytest
import scipy.sparse

from tfxc._tf import tf
from tfxc.encoders.sparse_input import sparse_input_block
from tfxc.errors import ConfigError
from tfxc.heads.dense import OneVsAllHead, SoftmaxHead
from tfxc.heads.label_index import LabelIndex, build_index_tables, recall_at_k
from tfxc.heads.linear import LinearHead
from tfxc.heads.sparse_term import SparseTermSpec, candidate_sparse_logits, inverted_index, scatter_sparse_logits

NUM_LABELS, DIM = 300, 12


def sparse_rows(rows: int, num_features: int, width: int, seed: int):
    """(CSR [rows, D] float32, ids int32 [rows, width], values float32 [rows, width]) of random sparse rows."""
    x = scipy.sparse.random(rows, num_features, density=0.2, random_state=seed, format="csr", dtype=np.float32)
    ids, values = sparse_input_block(
        tf.RaggedTensor.from_row_splits(x.indices.astype(np.int64), x.indptr.astype(np.int64)),
        tf.RaggedTensor.from_row_splits(x.data, x.indptr.astype(np.int64)), width)
    return x, ids, values


def trained_like(head, dim: int, seed: int = 0):
    """`head` built on features of width `dim`, with random weights (a trained head's are no less arbitrary)."""
    head.build((None, dim))
    rng = np.random.default_rng(seed)
    for variable in head.trainable_variables:
        variable.assign(rng.standard_normal(variable.shape).astype(np.float32))
    return head


def heads_and_features():
    rng = np.random.default_rng(1)
    h = tf.constant(rng.standard_normal((7, DIM)).astype(np.float32))
    num_features, width, slots = 40, 16, 5
    support = np.stack([rng.choice(num_features, slots, replace=False) for _ in range(NUM_LABELS)]).astype(np.int32)
    support[3, 2:] = -1
    _, ids, values = sparse_rows(7, num_features, width, seed=2)
    with_sparse = tf.concat([h, tf.cast(ids, tf.float32), values], axis=1)
    return [
        ("softmax", trained_like(SoftmaxHead(NUM_LABELS), DIM), h),
        ("one_vs_all", trained_like(OneVsAllHead(NUM_LABELS), DIM), h),
        ("one_vs_all with a sparse term",
         trained_like(OneVsAllHead(NUM_LABELS, sparse=SparseTermSpec(support, width, None, num_features)),
                      DIM + 2 * width),
         with_sparse),
        ("softmax without a bias", trained_like(SoftmaxHead(NUM_LABELS, use_bias=False), DIM), h),
        ("linear", trained_like(LinearHead(NUM_LABELS, use_bias=True), DIM), h),
    ]


@pytest.mark.parametrize("case", range(5), ids=[name for name, _, _ in heads_and_features()])
def test_a_beam_over_every_cluster_gives_the_exact_top_k(case):
    _, head, features = heads_and_features()[case]
    tables = build_index_tables(head.index_vectors(), leaf_size=20, nr_splits=4)
    assert len(tables.sizes) >= 2  # a real tree: the beam search goes through levels
    index = LabelIndex(tables, beam=max(tables.sizes))
    assert index.exhaustive
    exact_scores, exact_ids = head.top_k(features, 10)
    scores, ids = index.top_k(head, features, 10)
    np.testing.assert_array_equal(ids.numpy(), exact_ids.numpy())
    # With every label a candidate, the softmax over the candidates is the exact one.
    np.testing.assert_allclose(scores.numpy(), exact_scores.numpy(), rtol=1e-4, atol=1e-6)


def test_a_narrow_beam_reads_fewer_labels_and_misses_some_of_the_exact_top_k():
    _, head, features = heads_and_features()[0]
    tables = build_index_tables(head.index_vectors(), leaf_size=20, nr_splits=4)
    index = LabelIndex(tables, beam=1)
    assert index.candidates(head.index_query(features)).shape[1] == tables.leaf_size == 19  # 300 / 16 leaves
    scores, ids = index.top_k(head, features, 5)
    recall = recall_at_k(head.top_k(features, 5)[1].numpy(), ids.numpy())
    assert 0.0 < recall < 1.0  # random weights: the clusters do not hold a row's best labels together
    assert np.all(np.diff(scores.numpy(), axis=1) <= 0)


def test_k_beyond_the_candidates_is_padded_with_minus_one():
    _, head, features = heads_and_features()[1]
    tables = build_index_tables(head.index_vectors(), leaf_size=20, nr_splits=4)
    scores, ids = LabelIndex(tables, beam=1).top_k(head, features, tf.constant(25))
    assert ids.shape == (7, 25)
    # Each row's leaf holds 18 or 19 labels (300 over 16 leaves); the rest of the 25 slots are empty.
    found = (ids.numpy() >= 0).sum(axis=1)
    assert set(found) <= {18, 19} and np.all(ids.numpy()[:, :18] >= 0)
    assert np.all(scores.numpy()[ids.numpy() < 0] == 0) and np.all(scores.numpy()[ids.numpy() >= 0] > 0)


def test_every_label_is_in_exactly_one_leaf_and_centroids_are_means():
    vectors = np.random.default_rng(3).standard_normal((250, 6)).astype(np.float32)
    tables = build_index_tables(vectors, leaf_size=30, nr_splits=4)
    members = tables.members[tables.members >= 0]
    np.testing.assert_array_equal(np.sort(members), np.arange(250))
    assert tables.leaf_size <= 30
    leaf = tables.members[0][tables.members[0] >= 0]
    np.testing.assert_allclose(tables.centroids[-1][0], vectors[leaf].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_too_few_labels_for_two_leaves_is_refused():
    with pytest.raises(ConfigError, match="at least 200 labels"):
        build_index_tables(np.ones((150, 3), np.float32), leaf_size=100)


def test_recall_counts_the_exact_lists_labels_found():
    exact = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [0, 1, -1, -1, -1]])
    found = np.array([[5, 4, 3, 2, 1], [6, 70, 8, 90, 100], [1, -1, -1, -1, -1]])
    # Row 0: 5 of 5; row 1: 2 of 5; row 2: 1 of its 2 real labels.
    assert recall_at_k(exact, found) == pytest.approx((1.0 + 0.4 + 0.5) / 3)


def test_the_sparse_term_of_each_rows_candidates_equals_the_whole_term_gathered():
    rng = np.random.default_rng(4)
    num_labels, num_features, slots = 50, 30, 4
    support = np.stack([rng.choice(num_features, slots, replace=False) for _ in range(num_labels)]).astype(np.int32)
    kernel = tf.constant(rng.standard_normal((num_labels, slots)).astype(np.float32))
    _, ids, values = sparse_rows(6, num_features, 12, seed=5)
    offsets, entries = (tf.constant(a) for a in inverted_index(support, num_features))
    candidates = np.stack([rng.choice(num_labels, 9, replace=False) for _ in range(6)]).astype(np.int32)
    got = candidate_sparse_logits(ids, values, offsets, entries, kernel, tf.constant(candidates))
    whole = scatter_sparse_logits(ids, values, offsets, entries, kernel, 0, num_labels).numpy()
    np.testing.assert_allclose(got.numpy(), np.take_along_axis(whole, candidates, axis=1), rtol=1e-5, atol=1e-6)
