"""PIFA label features (algorithms.md §1.2): the formula, streaming over a converted split, encoder embeddings."""

import numpy as np
import scipy.sparse

from tfxc.tree import cached_cluster_labels, cached_split_pifa, cluster_labels, pifa, split_pifa
from tfxc.tree.pifa import cached_split_idf, split_idf


def test_pifa_matches_the_formula():
    x = scipy.sparse.csr_matrix(np.array([[1.0, 0, 2], [0, 3, 0], [1, 1, 0]], np.float32))
    y = scipy.sparse.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 1]], np.float32))
    yhat = y.toarray() / np.linalg.norm(y.toarray(), axis=1, keepdims=True)
    raw = yhat.T @ x.toarray()
    want = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-30)
    got = pifa(x, y)
    assert scipy.sparse.issparse(got)
    np.testing.assert_allclose(got.toarray(), want, rtol=1e-6)
    assert not got[2].nnz  # label 2 has no points: a zero row
    np.testing.assert_allclose(pifa(x.toarray(), y), want, rtol=1e-6)  # dense features give dense output


def test_split_pifa_streams_the_converted_rows(tmp_path):
    from tfxc.data.convert import ensure_converted
    from tfxc.data.tfrecord import read_all
    from tfxc.config.loading import load_config_data

    config = load_config_data({"data": {"format": "synthetic", "dir": str(tmp_path / "d"), "num_shards": 3,
                                        "synthetic": {"num_train": 500, "num_test": 50, "num_features": 80,
                                                      "num_labels": 30, "seed": 1}}})
    info = ensure_converted(config.data)
    rows = read_all(info.files("train"))
    x = scipy.sparse.csr_matrix((np.concatenate([r["feat_val"] for r in rows]),
                                 np.concatenate([r["feat_idx"] for r in rows]),
                                 np.cumsum([0] + [len(r["feat_idx"]) for r in rows])), shape=(500, 80))
    y = scipy.sparse.csr_matrix((np.ones(sum(len(r["labels"]) for r in rows)),
                                 np.concatenate([r["labels"] for r in rows]),
                                 np.cumsum([0] + [len(r["labels"]) for r in rows])), shape=(500, 30))
    want = pifa(x, y).toarray()
    np.testing.assert_allclose(split_pifa(info, chunk_rows=64).toarray(), want, rtol=1e-5, atol=1e-7)
    cached = cached_split_pifa(info)
    assert (tmp_path / "d" / "train_label_features_pifa.npz").exists()
    np.testing.assert_allclose(cached_split_pifa(info).toarray(), cached.toarray())
    np.testing.assert_allclose(cached.toarray(), want, rtol=1e-5, atol=1e-7)
    # The idf of each feature over the same rows, streamed and cached alike.
    df = np.bincount(x.indices, minlength=80)
    want_idf = np.log(501.0 / (1.0 + df)) + 1.0
    np.testing.assert_allclose(split_idf(info, chunk_rows=64), want_idf, rtol=1e-6)
    np.testing.assert_allclose(cached_split_idf(info), want_idf, rtol=1e-6)
    assert (tmp_path / "d" / "train_feature_idf.npy").exists()
    np.testing.assert_allclose(cached_split_idf(info), want_idf, rtol=1e-6)
    # The tree clustered from them is kept per option set and read back equal to a fresh clustering.
    options = {"max_leaf_size": 4, "nr_splits": 4, "seed": 3}
    fresh = cluster_labels(want, **options)
    first = cached_cluster_labels(info, **options)
    assert len(list((tmp_path / "d").glob("label_tree-*.npz"))) == 1
    again = cached_cluster_labels(info, **options)
    for tree in (first, again):
        assert [p.tolist() for p in tree.parents] == [p.tolist() for p in fresh.parents]
    cached_cluster_labels(info, **{**options, "seed": 4})
    assert len(list((tmp_path / "d").glob("label_tree-*.npz"))) == 2  # another seed: another tree


def test_encoder_pifa_averages_the_encoder_embeddings(tmp_path):
    from tfxc.build_context import BuildContext
    from tfxc.config.loading import load_config_data
    from tfxc.data.convert import ensure_converted
    from tfxc.data.pipeline import eval_dataset
    from tfxc.encoders import ENCODERS
    from tfxc.tree import encoder_pifa

    config = load_config_data({"data": {"format": "synthetic", "dir": str(tmp_path / "d"),
                                        "synthetic": {"num_train": 300, "num_test": 20, "num_features": 50,
                                                      "num_labels": 12, "seed": 2}},
                               "model": {"encoder": {"name": "sparse_bow", "embedding_dim": 8}}})
    info = ensure_converted(config.data)
    encoder = ENCODERS.build(config.model.encoder, BuildContext.from_info(info, seed=0))
    encoder.build()
    got = encoder_pifa(encoder, info, chunk_rows=64)
    embeddings, labels = [], []
    for batch in eval_dataset(info.files("train"), 1000):
        embeddings.append(encoder(batch).numpy())
        labels += batch["labels"].to_list()
    y = scipy.sparse.csr_matrix((np.ones(sum(map(len, labels))), np.concatenate(labels),
                                 np.cumsum([0] + [len(r) for r in labels])), shape=(len(labels), 12))
    np.testing.assert_allclose(got, pifa(np.concatenate(embeddings), y), rtol=1e-4, atol=1e-6)
    assert got.shape == (12, 8) and np.allclose(np.linalg.norm(got, axis=1)[np.asarray(y.sum(0)).ravel() > 0], 1)
