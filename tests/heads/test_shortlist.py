"""The label tree's nearest-centroid shortlist: its impact-ordered index, its top labels against a dense
reference, and the tree head that ranks the beam's and the shortlist's candidates together."""

import numpy as np
import pytest
import scipy.sparse

from tfxc._tf import tf
from tfxc.heads.label_tree.shortlist import centroid_shortlist, impact_index


def test_the_index_keeps_each_features_largest_weights_first():
    support = np.array([[0, 2, -1], [2, 1, 0], [2, -1, -1]], np.int32)
    weights = np.array([[0.6, 0.8, 0.0], [0.5, 0.7, 0.3], [1.0, 0.0, 0.0]], np.float32)
    offsets, labels, values = impact_index(support, weights, 4, per_feature=2)
    np.testing.assert_array_equal(offsets, [0, 2, 3, 5, 5])
    # feature 0: labels 0 (0.6), 1 (0.3); feature 1: label 1; feature 2: labels 2 (1.0), 0 (0.8) of three.
    np.testing.assert_array_equal(labels, [0, 1, 1, 2, 0])
    np.testing.assert_allclose(values, [0.6, 0.3, 0.7, 1.0, 0.8])


@pytest.mark.parametrize("sign", [1, -1])
def test_the_index_orders_ties_by_label_whatever_the_weights_sign(sign):
    rng = np.random.default_rng(5)
    support = np.stack([rng.choice(50, 6, replace=False) for _ in range(300)]).astype(np.int32)
    support[rng.random(support.shape) < 0.1] = -1
    weights = sign * rng.integers(1, 4, support.shape).astype(np.float32) / 4  # many ties
    offsets, labels, values = impact_index(support, weights, 50, per_feature=7)
    label, slot = np.nonzero(support >= 0)
    feature, value = support[label, slot], weights[label, slot]
    for f in range(50):
        mine = np.flatnonzero(feature == f)
        want = mine[np.lexsort((label[mine], -value[mine]))][:7]
        np.testing.assert_array_equal(labels[offsets[f]:offsets[f + 1]], label[want])
        np.testing.assert_array_equal(values[offsets[f]:offsets[f + 1]], value[want])


def random_table(labels=40, features=30, slots=5, seed=0):
    rng = np.random.default_rng(seed)
    support = np.stack([rng.choice(features, slots, replace=False) for _ in range(labels)]).astype(np.int32)
    support[rng.random(support.shape) < 0.2] = -1
    weights = np.where(support >= 0, rng.random(support.shape), 0.0).astype(np.float32)
    return support, weights


def dense(support, weights, features):
    w = np.zeros((support.shape[0], features), np.float32)
    rows, slots = np.nonzero(support >= 0)
    w[rows, support[rows, slots]] = weights[rows, slots]
    return w


@pytest.mark.parametrize("per_feature", [64, 3])
def test_the_shortlist_is_the_top_of_the_scores_over_the_read_entries(per_feature):
    support, weights = random_table()
    offsets, labels, values = impact_index(support, weights, 30, per_feature)
    # The reference reads the same entries: with per_feature = 64 every entry (exact x · c_l), with 3 only
    # each feature's three largest weights.
    kept = np.zeros((40, 30), np.float32)
    for f in range(30):
        kept[labels[offsets[f]:offsets[f + 1]], f] = values[offsets[f]:offsets[f + 1]]
    if per_feature == 64:
        np.testing.assert_allclose(kept, dense(support, weights, 30))
    x = scipy.sparse.random(6, 30, density=0.2, random_state=3, format="csr", dtype=np.float32)
    x = (scipy.sparse.diags(np.array([1, 1, 1, 1, 1, 0], np.float32)) @ x).tocsr()  # row 5 reaches no label
    x.eliminate_zeros()
    width = 8
    ids = np.full((6, width), 2 ** 31 - 2, np.int32)  # padding: an id >= D
    vals = np.zeros((6, width), np.float32)
    for i in range(6):
        row = x.indices[x.indptr[i]:x.indptr[i + 1]]
        ids[i, :len(row)], vals[i, :len(row)] = row, x.data[x.indptr[i]:x.indptr[i + 1]]
    scores, found = centroid_shortlist(tf.constant(ids), tf.constant(vals), tf.constant(offsets), tf.constant(labels),
                                       tf.constant(values), per_feature, size=4)
    reference = x.toarray() @ kept.T
    for i in range(5):
        reached = np.flatnonzero((x[i].toarray() @ (kept.T > 0)).ravel() > 0)
        want = reached[np.argsort(-reference[i, reached], kind="stable")][:4]
        np.testing.assert_array_equal(found.numpy()[i, :len(want)], want)
        np.testing.assert_allclose(scores.numpy()[i, :len(want)], reference[i, want], rtol=1e-5)
        assert (found.numpy()[i, len(want):] == -1).all()
    np.testing.assert_array_equal(found.numpy()[5], -1)


def tree_head_with_shortlist(shortlist_weight=0.3, **kwargs):
    from tfxc.encoders.sparse_bow import SparseBowEncoder
    from tfxc.encoders.sparse_input import WithSparseInput
    from tfxc.heads.label_tree import LabelTreeHead
    from tfxc.heads.label_tree.config import Shortlist
    from tfxc.heads.sparse_term import SparseTermSpec
    from tfxc.tree import LabelTree

    tree = LabelTree.from_leaf_codes(np.arange(40) // 4, 10, nr_splits=2, min_codes=2)  # 40 labels, 10 leaves
    support, weights = random_table(seed=4)
    levels = [np.full((size, 5), -1, np.int32) for size in tree.sizes[:-1]] + [support]
    head = LabelTreeHead(tree, seed=1, sparse=SparseTermSpec(levels, max_nnz=8, num_features=30),
                         shortlist=Shortlist(weights, size=4, weight=shortlist_weight), **kwargs)
    encoder = WithSparseInput(SparseBowEncoder(num_features=30, embedding_dim=6, seed=2), 8)
    encoder.build()
    head.build((None, encoder.output_dim))
    for t, kernel in enumerate(head.kernels):
        kernel.assign(tf.random.stateless_normal(kernel.shape, seed=[t, 9]))
    x = scipy.sparse.random(5, 30, density=0.2, random_state=7, format="csr", dtype=np.float32)
    batch = {"feat_idx": tf.RaggedTensor.from_row_splits(x.indices.astype(np.int64), x.indptr.astype(np.int64)),
             "feat_val": tf.RaggedTensor.from_row_splits(x.data, x.indptr.astype(np.int64))}
    return head, encoder(batch), x @ dense(support, weights, 30).T


def test_the_tree_ranks_the_beams_and_the_shortlists_labels_by_path_score_plus_the_centroid_score():
    head, features, nearest = tree_head_with_shortlist(beam_size=1, shortlist_weight=0.5, post_processor="sigmoid")
    scores, ids = head.top_k(features, 3)
    _, beam, _ = head._beam_search(features, 1)
    paths = head.path_scores(features, tf.tile(tf.range(40)[None, :], [5, 1])).numpy()
    for i in range(5):
        reached = np.flatnonzero(nearest[i] > 0)
        shortlist = reached[np.argsort(-nearest[i, reached], kind="stable")][:4]
        candidates = sorted(set(shortlist) | set(beam.numpy()[i]))
        fused = paths[i, candidates] + 0.5 * nearest[i, candidates]
        want = np.array(candidates)[np.argsort(-fused, kind="stable")][:3]
        np.testing.assert_array_equal(ids.numpy()[i], want)
        np.testing.assert_allclose(scores.numpy()[i], np.sort(fused)[::-1][:3], rtol=1e-5)
    # A beam of one reaches only one leaf cluster's labels; the shortlist brings in others.
    assert any(set(ids.numpy()[i]) - set(range(4 * (beam.numpy()[i][0] // 4), 4 * (beam.numpy()[i][0] // 4) + 4))
               for i in range(5))


def test_path_scores_are_the_beams_scores_when_the_beam_keeps_every_node():
    head, features, _ = tree_head_with_shortlist(beam_size=64, post_processor="sigmoid")
    scores, ids, _ = head._beam_search(features, 40)
    np.testing.assert_allclose(head.path_scores(features, ids).numpy(), scores.numpy(), rtol=1e-5)


def test_the_shortlist_needs_the_sparse_term():
    from tfxc.errors import ConfigError
    from tfxc.heads.label_tree import LabelTreeHeadConfig

    with pytest.raises(ConfigError, match=r"model.head.shortlist_size \(10\) .* needs sparse_support > 0"):
        LabelTreeHeadConfig(shortlist_size=10).validate("model.head")
    with pytest.raises(ConfigError, match=r"shortlist_postings \(0\) >= 1"):
        LabelTreeHeadConfig(sparse_support=4, shortlist_size=10, shortlist_postings=0).validate("model.head")
