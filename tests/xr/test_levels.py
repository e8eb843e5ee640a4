"""What a level hands to the next: [TF-IDF ⊕ E] and the concat matcher's `man` predictions (PECOS concat-only)."""

from __future__ import annotations

import numpy as np
import scipy.sparse

from tfxc.tree import LabelTree
from tfxc.tree.pifa import normalize_rows
from tfxc.xr.bootstrap import SideBySide
from tfxc.xr.levels import concat_features, concat_matcher, level_counts, predicted_clusters

# 24 labels in 8 clusters (3 each) under 4 top nodes (2 each): tree sizes [4, 8, 24].
TREE = LabelTree.from_leaf_codes(np.arange(24) // 3, num_leaves=8, nr_splits=2, min_codes=4)


def rows(labels: np.ndarray, seed: int = 0):
    """One label a row; the TF-IDF carries it (its own feature among 6 noise features), E is noise."""
    rng = np.random.default_rng(seed)
    n = labels.size
    tfidf = np.zeros((n, 30), np.float32)
    tfidf[np.arange(n), labels] = 1.0
    tfidf[np.arange(n)[:, None], 24 + rng.integers(0, 6, (n, 2))] = 0.5
    y = scipy.sparse.csr_matrix((np.ones(n, np.int8), (np.arange(n), labels)), shape=(n, 24))
    return scipy.sparse.csr_matrix(tfidf), rng.normal(size=(n, 8)).astype(np.float32) * 3.0, y


def test_concat_features_keep_the_tfidf_and_normalise_the_embedding():
    tfidf, emb, _ = rows(np.arange(24))
    x = concat_features(emb, tfidf)
    assert x.shape == (24, 38) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, :30].toarray(), tfidf.toarray())
    np.testing.assert_allclose(np.linalg.norm(x[:, 30:].toarray(), axis=1), 1.0, rtol=1e-6)


def test_the_concat_matcher_predicts_the_true_clusters_of_its_level():
    labels = np.random.default_rng(1).integers(0, 24, 400)
    tfidf, emb, y = rows(labels)
    x = concat_features(emb, tfidf)
    truth = [TREE.ancestors(level)[labels] for level in (0, 1)]
    # The first level: every row is active for every cluster.
    top = predicted_clusters(x, *concat_matcher(x, y, TREE, 0, None), 2)
    assert np.mean(top[:, 0] == truth[0]) > 0.95
    # The second: each cluster learns from the rows of its parent (true or in the man table).
    man = np.stack([truth[0], (truth[0] + 1) % 4], axis=1).astype(np.int32)
    kernel, bias = concat_matcher(x, y, TREE, 1, man)
    assert kernel.shape == (8, 38) and bias.shape == (8,)
    assert np.mean(predicted_clusters(x, kernel, bias, 1)[:, 0] == truth[1]) > 0.95
    np.testing.assert_array_equal(level_counts(y, TREE, 1).toarray().argmax(axis=1), truth[1])


def test_a_cluster_whose_parent_no_row_reaches_stays_zero():
    labels = np.random.default_rng(2).integers(0, 18, 200)  # no label under top node 3 (clusters 6, 7)
    tfidf, emb, y = rows(labels)
    x = concat_features(emb, tfidf)
    man = TREE.ancestors(0)[labels][:, None].astype(np.int32)  # never names node 3
    kernel, bias = concat_matcher(x, y, TREE, 1, man)
    assert not kernel[6:].any() and not bias[6:].any()
    assert np.all(np.abs(kernel[:6]).sum(axis=1) > 0)


def test_the_concat_matcher_on_side_by_side_parts_equals_it_on_one_csr():
    labels = np.random.default_rng(3).integers(0, 24, 150)
    tfidf, emb, y = rows(labels)
    csr_fit = concat_matcher(concat_features(emb, tfidf), y, TREE, 0, None)
    parts = SideBySide(tfidf, normalize_rows(emb))
    parts_fit = concat_matcher(parts, y, TREE, 0, None)
    for got, want in zip(parts_fit, csr_fit):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(predicted_clusters(parts, *parts_fit, 3),
                                  predicted_clusters(concat_features(emb, tfidf), *csr_fit, 3))


def test_an_embedding_pass_in_order_of_length_gives_each_row_its_own_embedding(tmp_path, shared_data):
    """`length_sorted` (of `embed_split` and the evaluator) cuts a window into batches of rows of about one length, each padded only to its longest:
    every row once, its tokens intact, and (attention masked, mean over real tokens) the embedding it has in
    the window padded to the longest text."""
    from helpers import tiny_bert_preset
    from tfxc._tf import tf
    from tfxc.encoders.pretrained import PretrainedEncoder
    from tfxc.data.pipeline import length_sorted

    encoder = PretrainedEncoder(tiny_bert_preset(tmp_path, shared_data), max_length=24, dropout=0.0,
                                backbone_dropout=0.0)
    texts = ["hi", "how do i top up my card with cash at a shop near me", "card", "where is my money",
             "a transfer i made two days ago to my landlord has still not arrived , what can i do", "why"]
    window = {**encoder.tokenize(tf.constant(texts)), "row_id": tf.range(len(texts), dtype=tf.int64),
              "labels": tf.ragged.constant([[i] * (i % 3) for i in range(len(texts))], tf.int64)}
    lengths = window["padding_mask"].numpy().sum(axis=1)
    whole = encoder(window).numpy()
    batches = list(length_sorted(window, batch_size=4))
    ids = np.concatenate([b["row_id"].numpy() for b in batches])
    assert sorted(ids.tolist()) == list(range(len(texts)))
    np.testing.assert_array_equal(lengths[ids], np.sort(lengths))  # shortest first
    assert [b["token_ids"].shape[1] for b in batches] == [lengths[ids[:4]].max(), lengths.max()]
    for batch in batches:
        rows = batch["row_id"].numpy()
        width = batch["token_ids"].shape[1]
        np.testing.assert_array_equal(batch["token_ids"].numpy(), window["token_ids"].numpy()[rows, :width])
        assert batch["labels"].to_list() == [[i] * (i % 3) for i in rows]
        np.testing.assert_allclose(encoder(batch).numpy(), whole[rows], atol=2e-5)
