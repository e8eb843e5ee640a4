"""PIFA label features (algorithms.md §1.2): the formula, streaming over a converted split, encoder embeddings."""

import numpy as np
import scipy.sparse

from tfxc.tree import cached_split_pifa, pifa, split_pifa


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
