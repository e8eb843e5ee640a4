"""The exact heads' sparse term: the inverted index, its logits against a dense reference, the heads that use it."""

import numpy as np
import pytest
import scipy.sparse
from head_harness import HARNESS_TIME, run_head_test

from tfxc._tf import tf
from tfxc.encoders.sparse_input import PAD_FEATURE, sparse_input_block
from tfxc.heads.sparse_term import inverted_index, label_centroid_support, scatter_sparse_logits


def test_the_inverted_index_lists_each_features_entries():
    support = np.array([[3, 0, -1], [0, 2, 3]], np.int32)
    offsets, entries = inverted_index(support, 5)
    np.testing.assert_array_equal(offsets, [0, 2, 2, 3, 5, 5])
    # Feature 0: label 0 slot 1 (entry 1), label 1 slot 0 (entry 3); feature 2: entry 4; feature 3: entries 0, 5.
    np.testing.assert_array_equal(entries, [1, 3, 4, 0, 5])


@pytest.mark.parametrize("start,stop", [(0, 7), (2, 5)])
def test_the_scattered_logits_equal_a_dense_matmul(start, stop):
    rng = np.random.default_rng(0)
    num_labels, num_features, slots = 7, 30, 4
    support = np.stack([rng.choice(num_features, slots, replace=False) for _ in range(num_labels)]).astype(np.int32)
    support[1, 2:] = -1  # a label with fewer features
    kernel = rng.standard_normal((num_labels, slots)).astype(np.float32)
    x = scipy.sparse.random(5, num_features, density=0.3, random_state=1, format="csr", dtype=np.float32)
    x = scipy.sparse.csr_matrix(scipy.sparse.diags([1.0, 1.0, 1.0, 1.0, 0.0]) @ x, dtype=np.float32)  # row 4: empty
    x.eliminate_zeros()
    ids, values = sparse_input_block(
        tf.RaggedTensor.from_row_splits(x.indices.astype(np.int64), x.indptr.astype(np.int64)),
        tf.RaggedTensor.from_row_splits(x.data, x.indptr.astype(np.int64)), 12)
    offsets, entries = inverted_index(support, num_features)
    got = scatter_sparse_logits(ids, values, tf.constant(offsets), tf.constant(entries), tf.constant(kernel),
                                start, stop)
    w = np.zeros((num_labels, num_features), np.float32)
    for label in range(num_labels):
        kept = support[label] >= 0
        w[label, support[label][kept]] = kernel[label][kept]
    np.testing.assert_allclose(got.numpy(), (x.toarray() @ w.T)[:, start:stop], rtol=1e-5, atol=1e-6)
    assert int(ids.numpy().max()) == PAD_FEATURE  # padding reached the index and was ignored


def test_the_start_is_the_unit_norm_centroid_on_its_top_features_and_idf_reorders_them():
    z = scipy.sparse.csr_matrix(np.array([[0.8, 0.6, 0.0, 0.1], [0.0, 0.0, 0.0, 0.0]], np.float32))
    ids, weights = label_centroid_support(z, 2)
    np.testing.assert_array_equal(ids, [[0, 1], [-1, -1]])
    np.testing.assert_allclose(weights, [[0.8, 0.6], [0.0, 0.0]], rtol=1e-6)
    ids, weights = label_centroid_support(z, 2, feature_weights=np.array([1.0, 1.0, 1.0, 10.0], np.float32))
    np.testing.assert_array_equal(ids, [[3, 0], [-1, -1]])
    np.testing.assert_allclose(weights[0], np.array([1.0, 0.8]) / np.hypot(1.0, 0.8), rtol=1e-6)


@pytest.mark.slow(reason=HARNESS_TIME)
def test_softmax_head_contract_with_the_sparse_term(tmp_path):
    # Restored, exported, served in a fresh process and mirrored alike; started from idf-weighted centroids.
    run_head_test(tmp_path, {"name": "softmax", "multi_label_loss": "decoupled", "sparse_support": 8,
                             "sparse_max_nnz": 16, "sparse_init": 4.0, "sparse_idf": True})


def test_the_sparse_term_starts_as_a_nearest_centroid_classifier(tmp_path):
    from head_harness import head_config

    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.pipeline import eval_dataset
    from tfxc.model import build_model

    head = {"name": "one_vs_all", "sparse_support": 10, "sparse_init": 8.0}
    config = load_config(head_config(tmp_path, head))
    info = ensure_converted(config.data)
    model = build_model(config.model, BuildContext.from_info(info, seed=1, model_dir=str(tmp_path / "m")))
    model.head.kernel.assign(tf.zeros_like(model.head.kernel))  # only the sparse term (and zero biases) score
    hits = total = 0
    for batch in eval_dataset(info.files("test"), 64):
        _, ids = model.top_k(batch, 1)
        for top, labels in zip(ids.numpy()[:, 0], batch["labels"].to_list()):
            hits += int(top in labels)
            total += 1
    # The synthetic labels own topics of 10 features: a nearest-centroid score finds them without training
    # (a random ranking of 40 labels with 3 per row would hit ~7.5%).
    assert hits / total > 0.9
    # The table is kept in the model directory: a model rebuilt there reads the same support and start.
    again = build_model(config.model, BuildContext.from_info(info, seed=2, model_dir=str(tmp_path / "m")))
    np.testing.assert_array_equal(again.head.sparse_term.kernel.numpy(), model.head.sparse_term.kernel.numpy())


def test_centroid_precision_is_the_nearest_centroid_p_at_k_and_the_attainable_one(tmp_path):
    from head_harness import head_config

    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.tfrecord import read_all
    from tfxc.heads.centroid_precision import centroid_precision
    from tfxc.tree import cached_split_pifa
    from tfxc.tree.pifa import cached_split_idf

    info = ensure_converted(load_config(head_config(tmp_path, {"name": "softmax"})).data)
    ids, weights = label_centroid_support(cached_split_pifa(info), 6, cached_split_idf(info))
    hits = best = 0
    rows = read_all(info.files("test"))
    for row in rows:  # one row at a time, dense: the reference
        x = np.zeros(info.num_features, np.float32)
        x[row["feat_idx"]] = row["feat_val"]
        scores = np.array([x[i[i >= 0]] @ w[i >= 0] for i, w in zip(ids, weights)])
        top = np.argsort(-scores, kind="stable")[:3]
        hits += len(set(top) & set(row["labels"]))
        best += min(3, len(row["labels"]))
    got = centroid_precision(info, 6, 3, split="test")
    np.testing.assert_allclose(got, (hits / (3 * len(rows)), best / (3 * len(rows))), rtol=1e-6)
    assert 0.5 < got[0] <= got[1]  # topic-shaped synthetic labels: the centroids alone rank well
    # A cap on the rows scores whole blocks of 1,024 until it is reached: here the one block there is.
    np.testing.assert_allclose(centroid_precision(info, 6, 3, split="test", max_rows=10), got, rtol=1e-6)
    # Kept beside the data per argument set, and read back instead of measured again.
    import json
    import os

    from tfxc.heads.centroid_precision import CENTROID_PRECISION_FILE

    kept = json.loads(open(os.path.join(info.dir, CENTROID_PRECISION_FILE)).read())
    assert sorted(kept) == ["test size=6 k=3 idf=True max_rows=10", "test size=6 k=3 idf=True max_rows=20000"]
    kept["test size=6 k=3 idf=True max_rows=20000"] = [0.25, 0.5]
    open(os.path.join(info.dir, CENTROID_PRECISION_FILE), "w").write(json.dumps(kept))
    assert centroid_precision(info, 6, 3, split="test") == (0.25, 0.5)


def test_sparse_options_need_the_sparse_term():
    from tfxc.errors import ConfigError
    from tfxc.heads.dense import SoftmaxHeadConfig

    with pytest.raises(ConfigError, match=r"model.head.sparse_idf \(True\) .* needs sparse_support > 0"):
        SoftmaxHeadConfig(sparse_idf=True).validate("model.head")
