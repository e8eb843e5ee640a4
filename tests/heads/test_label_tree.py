"""The label tree head: post-processors, active sets, beam search vs exact ranking, and the whole head contract."""

import dataclasses

import numpy as np
import pytest
from head_harness import HARNESS_TIME, run_head_test

from tfxc._tf import tf
from tfxc.heads.label_tree import LabelTreeHead
from tfxc.heads.label_tree.ops import (_lower_bound_by_lifting, distinct_per_row, lower_bound_rows, post_process,
                                      row_values_at, unique_per_row)
from tfxc.tree import LabelTree


def test_l3_hinge_matches_the_pecos_test_values():
    v = tf.constant([[1.0, 0.5, 0.0, -1.0, 3.0]])
    got = post_process("l3-hinge", v, None).numpy()[0]
    # The spec gives 3.35e-4 to three digits (exp(-8) = 3.3546e-4).
    np.testing.assert_allclose(got, [1.0, 0.882497, 0.367879, 3.35e-4, 1.0], rtol=2e-3)


@pytest.mark.parametrize("name, child, additive", [
    ("noop", None, None), ("sigmoid", 1 / (1 + np.exp(-0.5)), False), ("log-sigmoid", -np.log1p(np.exp(-0.5)), True),
    ("l2-hinge", np.exp(-0.25), False), ("log-l2-hinge", -0.25, True), ("log-l3-hinge", -0.125, True)])
def test_post_processors_combine_child_and_parent_scores(name, child, additive):
    v, parent = tf.constant([[0.5]]), tf.constant([[0.3]])
    got = float(post_process(name, v, parent)[0, 0])
    expected = 0.5 if child is None else (child + 0.3 if additive else child * 0.3)
    assert got == pytest.approx(expected, rel=1e-5)


def test_unique_per_row_drops_repeats_and_negative_ids():
    got = unique_per_row(tf.constant([[3, 1, 3, -1], [2, 2, 2, 2]], tf.int32)).numpy()
    pad = 2 ** 31 - 1
    np.testing.assert_array_equal(got, [[1, 3], [2, pad]])


def test_distinct_per_row_keeps_the_width():
    ids = tf.constant([[5, 3, 5, -1, 3], [1, 2, 0, 4, 3]], tf.int32)
    np.testing.assert_array_equal(distinct_per_row(ids).numpy(), [[3, 5, -1, -1, -1], [0, 1, 2, 3, 4]])



@pytest.mark.parametrize("width", [1, 2, 5, 8, 64])
def test_lower_bound_rows_is_searchsorted_left_in_graphs_and_under_xla(width):
    rng = np.random.RandomState(width)
    rows = np.sort(rng.randint(0, 40, size=(6, width)), axis=1).astype("int32")  # repeats included
    rows[0] = 2 ** 24  # a row of padding only
    values = rng.randint(-2, 45, size=(6, width + 30)).astype("int32")
    values[:, :width] = rows  # every present value, which must land on its first occurrence
    want = tf.searchsorted(rows, values, side="left").numpy()
    for jit_compile in (False, True):  # TensorFlow's kernel; binary lifting
        search = tf.function(lower_bound_rows, jit_compile=jit_compile)
        np.testing.assert_array_equal(search(tf.constant(rows), tf.constant(values)).numpy(), want)
    np.testing.assert_array_equal(_lower_bound_by_lifting(tf.constant(rows), tf.constant(values)).numpy(), want)


@pytest.mark.parametrize("num_features", [0, 50])  # 0: unknown, searched; 50: a dense copy under XLA
def test_row_values_at_reads_the_sparse_rows_in_graphs_and_under_xla(num_features):
    ids = tf.constant([[2, 7, 30, 2 ** 24], [2 ** 24, 2 ** 24, 2 ** 24, 2 ** 24], [0, 1, 48, 49]], tf.int32)
    values = tf.constant([[1.0, 2.0, 3.0, 0.0], [0.0] * 4, [4.0, 5.0, 6.0, 7.0]])
    wanted = tf.constant([[7, 30, 3, -1, 2], [0, 7, -1, 49, 2], [49, 0, 2, 48, 1]], tf.int32)
    want = [[2.0, 3.0, 0.0, 0.0, 1.0], [0.0] * 5, [7.0, 4.0, 0.0, 6.0, 5.0]]
    for jit_compile in (False, True):
        lookup = tf.function(lambda i, v, w: row_values_at(i, v, w, num_features), jit_compile=jit_compile)
        np.testing.assert_array_equal(lookup(ids, values, wanted).numpy(), want)

def small_tree():
    # 12 labels in 4 leaf clusters of 3, under 2 top nodes.
    return LabelTree.from_leaf_codes(np.arange(12) // 3, 4, nr_splits=2, min_codes=2)


def build_head(**kwargs):
    head = LabelTreeHead(small_tree(), seed=1, **kwargs)
    head.build((None, 6))
    return head


def test_active_nodes_are_the_children_of_true_parents_and_the_beam():
    head = build_head(negatives="tfn")
    labels = tf.ragged.constant([[4], [0, 11]], tf.int64)
    # Level 1 (4 clusters): row 0's label 4 is in cluster 1 under top node 0 -> clusters {0, 1}.
    positives = [head._positives(labels, t) for t in range(3)]
    active = head._active(positives, 1, None).numpy()
    assert sorted(a for a in active[0] if a >= 0) == [0, 1]
    assert sorted(a for a in active[1] if a >= 0) == [0, 1, 2, 3]
    # Leaf level with a beam of cluster 3 for row 0: labels of clusters 1 (truth) and 3 (beam).
    beam = tf.constant([[3], [-1]], tf.int32)
    active = head._active(positives, 2, beam).numpy()
    assert sorted(a for a in active[0] if a >= 0) == [3, 4, 5, 9, 10, 11]
    assert sorted(a for a in active[1] if a >= 0) == [0, 1, 2, 9, 10, 11]


def test_a_beam_that_keeps_every_node_is_exact_top_k():
    head = build_head(beam_size=100, final_post_processor="noop")
    features = tf.random.stateless_normal([5, 6], seed=[1, 2])
    for t in range(3):  # make scores distinct across levels
        head.kernels[t].assign(tf.random.stateless_normal(head.kernels[t].shape, seed=[t, 9]))
    scores, ids = head.top_k(features, 7)
    exact = tf.matmul(features, head.kernels[2], transpose_b=True) + head.biases[2]
    want_scores, want_ids = tf.math.top_k(exact, 7)
    np.testing.assert_array_equal(ids.numpy(), want_ids.numpy())
    np.testing.assert_allclose(scores.numpy(), want_scores.numpy(), rtol=1e-5)


def test_a_narrow_beam_reads_only_the_children_of_the_kept_nodes():
    head = build_head(beam_size=1)
    scores, ids = head.top_k(tf.random.stateless_normal([4, 6], seed=[3, 4]), 5)
    # One top node, then one cluster: at most 3 labels, all in the same cluster.
    assert ids.shape == (4, 3)
    assert all(len({i // 3 for i in row}) == 1 for row in ids.numpy())


@pytest.mark.parametrize("loss", ["squared_hinge", "weighted_squared_hinge", "bce", "softmax"])
def test_losses_are_finite_and_train(loss):
    head = build_head(loss=loss, max_active=4)
    features = tf.random.stateless_normal([8, 6], seed=[5, 6])
    labels = tf.ragged.constant([[0], [4, 5], [11], [], [1, 7], [2], [9], [3, 8, 10]], tf.int64)
    optimizer = tf.keras.optimizers.Adam(0.05) if hasattr(tf, "keras") else None
    variables = head.trainable_variables
    losses = []
    for _ in range(40):
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(head.per_example_loss(head(features), labels))
        grads = tape.gradient(value, variables)
        grads = [tf.convert_to_tensor(g) for g in grads]
        optimizer.apply_gradients(zip(grads, variables))
        losses.append(float(value))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert int(head.sample_step.numpy()) == 40



def test_mixed_bfloat16_scores_the_whole_levels_with_bfloat16_operands():
    """model.precision: the levels scored whole (one product each) take the head's matmul dtype (bfloat16
    operands and product, returned as float32)."""
    head = build_head(negatives="tfn")
    features = tf.random.stateless_normal([5, 6], seed=[7, 8])
    labels = tf.ragged.constant([[0], [4, 5], [11], [], [7]], tf.int64)
    for t in range(3):
        head.kernels[t].assign(tf.random.stateless_normal(head.kernels[t].shape, seed=[t, 3]))
    in_float32 = head._level_logits(features, 1).numpy(), float(tf.reduce_sum(head.per_example_loss(features, labels)))
    head.matmul_dtype = tf.bfloat16
    in_bfloat16 = head._level_logits(features, 1).numpy(), float(tf.reduce_sum(head.per_example_loss(features, labels)))

    def rounded(x):
        return tf.cast(tf.cast(x, tf.bfloat16), tf.float32).numpy()

    want = rounded(features) @ rounded(head.kernels[1]).T + head.biases[1].numpy()
    np.testing.assert_allclose(in_bfloat16[0], want, rtol=1e-2, atol=1e-2)
    assert not np.allclose(in_bfloat16[0], in_float32[0], rtol=1e-6, atol=1e-6)
    assert in_bfloat16[1] == pytest.approx(in_float32[1], rel=1e-2)

def test_sum_reduction_weighs_every_row_node_pair_alike():
    # Zero node vectors and biases: every logit is 0, so each active node's BCE is log 2.
    head = build_head(loss="bce", negatives="tfn")
    for variable in head.kernels + head.biases:
        variable.assign(tf.zeros_like(variable))
    features = tf.ones([2, 6])
    labels = tf.ragged.constant([[4], [0, 11]], tf.int64)
    mean = head.per_example_loss(features, labels).numpy()
    head.reduction = "sum"
    total = head.per_example_loss(features, labels).numpy()
    log2 = np.log(2.0)
    # Every level's mean is log 2: 3 levels.
    np.testing.assert_allclose(mean, [3 * log2, 3 * log2], rtol=1e-6)
    # Sum / fan-out (2 top nodes, 2 clusters per top node, 3 labels per cluster). Row 0: 2/2 + 2/2 + 3/3;
    # row 1 (labels under both top nodes, in clusters 0 and 3): 2/2 + 4/2 + 6/3.
    np.testing.assert_allclose(total, [3 * log2, 5 * log2], rtol=1e-6)


def test_label_tree_head_contract(tmp_path):
    # A beam wide enough to keep every node, so top_k(L) ranks every label (the harness checks that).
    run_head_test(tmp_path, {"name": "label_tree", "max_leaf_size": 4, "nr_splits": 2,
                             "post_processor": "sigmoid", "prediction": {"beam_size": 64}})


@pytest.mark.slow(reason=HARNESS_TIME)
def test_label_tree_head_contract_with_the_sparse_term(tmp_path):
    # The sparse term carries each row's features beside h: restored, exported, served and mirrored alike,
    # here started from the idf-weighted node centroids, with propensity-weighted positives (kept as weights
    # of the model). The shortlist's contract below runs a sparse term too, in the default suite.
    run_head_test(tmp_path, {"name": "label_tree", "max_leaf_size": 4, "nr_splits": 2,
                             "post_processor": "sigmoid", "sparse_support": 6, "sparse_max_nnz": 16,
                             "sparse_init": 4.0, "sparse_idf": True, "propensity_weight": 0.5,
                             "prediction": {"beam_size": 64}})


@pytest.mark.slow(reason=HARNESS_TIME)
def test_label_tree_head_contract_with_the_shortlist(tmp_path):
    # The shortlist's index is part of the model: restored, exported, served and mirrored alike (a beam that keeps
    # every node, so that top_k(L) ranks every label).
    run_head_test(tmp_path, {"name": "label_tree", "max_leaf_size": 4, "nr_splits": 2,
                             "post_processor": "sigmoid", "sparse_support": 6, "sparse_max_nnz": 16,
                             "sparse_idf": True, "shortlist_size": 5, "shortlist_postings": 4,
                             "prediction": {"beam_size": 64}})


def sparse_rows(seed):
    import scipy.sparse

    x = scipy.sparse.random(4, 20, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    return x, {"feat_idx": tf.RaggedTensor.from_row_splits(x.indices.astype(np.int64), x.indptr.astype(np.int64)),
               "feat_val": tf.RaggedTensor.from_row_splits(x.data, x.indptr.astype(np.int64))}


def test_the_sparse_block_keeps_the_largest_values_in_id_order():
    from tfxc.encoders.sparse_input import PAD_FEATURE, sparse_input_block

    idx = tf.ragged.constant([[9, 2, 5, 7], [4]], tf.int64)
    val = tf.ragged.constant([[0.1, -0.9, 0.5, 0.3], [2.0]])
    ids, values = sparse_input_block(idx, val, 3)
    np.testing.assert_array_equal(ids.numpy(), [[2, 5, 7], [4, PAD_FEATURE, PAD_FEATURE]])
    np.testing.assert_allclose(values.numpy(), [[-0.9, 0.5, 0.3], [2.0, 0.0, 0.0]])


def test_the_sparse_term_adds_the_support_weights_of_the_row_features(monkeypatch):
    from tfxc.encoders.sparse_input import WithSparseInput
    from tfxc.encoders.sparse_bow import SparseBowEncoder
    from tfxc.heads.sparse_term import SparseTermSpec
    from tfxc.tree.support import node_feature_support
    import scipy.sparse

    tree = small_tree()
    z = scipy.sparse.random(12, 20, density=0.4, random_state=1, format="csr")
    support = node_feature_support(tree, z, 3)
    head = LabelTreeHead(tree, seed=1, beam_size=100, final_post_processor="noop",
                         sparse=SparseTermSpec(support, max_nnz=8))
    encoder = WithSparseInput(SparseBowEncoder(num_features=20, embedding_dim=6, seed=2), 8)
    encoder.build()
    head.build((None, encoder.output_dim))
    for t in range(3):
        head.kernels[t].assign(tf.random.stateless_normal(head.kernels[t].shape, seed=[t, 9]))
        head.sparse_kernels[t].assign(tf.random.stateless_normal(head.sparse_kernels[t].shape, seed=[t, 8]))
    x, batch = sparse_rows(2)
    features = encoder(batch)
    scores, ids = head.top_k(features, 7)
    # Reference: the last level's sparse weights as a dense [L, D] matrix; the beam keeps every node.
    w = np.zeros((12, 20), np.float32)
    rows = np.repeat(np.arange(12), 3)[support[2].ravel() >= 0]
    w[rows, support[2].ravel()[support[2].ravel() >= 0]] = head.sparse_kernels[2].numpy().ravel()[
        support[2].ravel() >= 0]
    h = features.numpy()[:, :6]
    exact = h @ head.kernels[2].numpy().T + head.biases[2].numpy() + x.toarray() @ w.T
    want = np.argsort(-exact, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(ids.numpy(), want)
    np.testing.assert_allclose(scores.numpy(), np.take_along_axis(exact, want, 1), rtol=1e-5, atol=1e-6)
    # Evaluation scores a batch in calls of at most `top_k_rows_per_call` rows, the same lists.
    import types

    import tfxc.heads.label_tree.search as search

    assert head.top_k_rows_per_call() >= 4096
    monkeypatch.setattr(search, "SPARSE_BLOCK", 3 * 12 * 3)  # level 2 whole: 12 nodes x 3 features, 3 rows
    assert head.top_k_rows_per_call() == 2
    got = head.evaluation_top_k(types.SimpleNamespace(encoder=encoder), 7)(batch)
    np.testing.assert_array_equal(got[1], ids.numpy())
    np.testing.assert_allclose(got[0], scores.numpy(), rtol=1e-5, atol=1e-6)
    # Training touches only the active nodes' sparse rows: the gradient is an IndexedSlices.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(head.per_example_loss(features, tf.ragged.constant([[0], [4, 5], [11], [3]], tf.int64)))
    assert isinstance(tape.gradient(loss, head.sparse_kernels[2]), tf.IndexedSlices)
    assert any(v is head.sparse_kernels[2] for v in head.sparse_variables)


def test_config_errors_name_the_key():
    from tfxc.errors import ConfigError
    from tfxc.heads.label_tree import LabelTreeHeadConfig

    with pytest.raises(ConfigError, match=r"model.head.post_processor 'l5-hinge' is not one of noop"):
        LabelTreeHeadConfig(post_processor="l5-hinge").validate("model.head")
    with pytest.raises(ConfigError, match=r"model.head.negatives 'man' is not one of tfn, tfn\+man"):
        LabelTreeHeadConfig(negatives="man").validate("model.head")
    with pytest.raises(ConfigError, match="tree_file 'tree.json' must be a saved tree"):
        LabelTreeHeadConfig(tree_file="tree.json").validate("model.head")


def test_the_tree_is_saved_with_the_model_and_reused(tmp_path):
    from head_harness import head_config

    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.errors import DataError
    from tfxc.model import build_model

    config = load_config(head_config(tmp_path, {"name": "label_tree", "max_leaf_size": 4, "nr_splits": 2}))
    info = ensure_converted(config.data)
    first = build_model(config.model, BuildContext.from_info(info, seed=1, model_dir=str(tmp_path / "m1")))
    saved = tmp_path / "m1" / "label_tree.npz"
    assert saved.exists()
    # Another model given that file as tree_file gets the same tree, whatever its clustering options say.
    other = dataclasses.replace(config.model, head=dataclasses.replace(
        config.model.head, tree_file=str(saved), max_leaf_size=2, tree_seed=9))
    second = build_model(other, BuildContext.from_info(info, seed=1, model_dir=str(tmp_path / "m2")))
    assert second.head.sizes == first.head.sizes
    np.testing.assert_array_equal(second.head.children[-1].numpy(), first.head.children[-1].numpy())
    # A tree for another label space is refused, naming the file.
    LabelTree.from_leaf_codes(np.zeros(7, np.int32), 1).save(str(tmp_path / "small.npz"))
    bad = dataclasses.replace(config.model, head=dataclasses.replace(config.model.head,
                                                                     tree_file=str(tmp_path / "small.npz")))
    with pytest.raises(DataError, match="small.npz: the label tree has 7 labels but the data has 40"):
        build_model(bad, BuildContext.from_info(info, seed=1))


def test_a_taxonomy_file_sets_the_tree(tmp_path):
    from head_harness import head_config

    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.model import build_model

    taxonomy = tmp_path / "taxonomy.tsv"
    taxonomy.write_text("".join(f"{i}\tgroup{i % 3}\tsub{i % 6}\n" for i in range(40)))
    config = load_config(head_config(tmp_path, {"name": "label_tree", "tree_file": str(taxonomy)}))
    model = build_model(config.model, BuildContext.from_info(ensure_converted(config.data), seed=1))
    assert model.head.sizes == [3, 6, 40]


def test_serving_marks_slots_the_beam_cannot_fill():
    from tfxc.encoders.sparse_bow import SparseBowEncoder
    from tfxc.export.serving_modules import ServingModule
    from tfxc.model import XCModel

    # Leaf clusters of 3, 2, 2 and 3 labels; a beam of 1 that is steered into cluster 1 (labels 1 and 5).
    tree = LabelTree.from_leaf_codes(np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 3]), 4, nr_splits=2, min_codes=2)
    encoder = SparseBowEncoder(num_features=4, embedding_dim=3)
    head = LabelTreeHead(tree, beam_size=1, post_processor="sigmoid", seed=0)
    model = XCModel(encoder, head)
    encoder.build()
    head.build((None, 3))
    for t in range(3):
        head.kernels[t].assign(tf.zeros_like(head.kernels[t]))
    head.biases[0].assign([5.0, 0.0])
    head.biases[1].assign([0.0, 5.0, 0.0, 0.0])
    head.biases[2].assign(tf.range(10, dtype=tf.float32))
    serving = ServingModule(model, [f"l{i}" for i in range(10)], top_k=3, num_features=4)
    out = serving.serve(tf.constant([1], tf.int64), tf.constant([1.0]), tf.constant([0, 1], tf.int64))
    np.testing.assert_array_equal(out["label_ids"].numpy(), [[5, 1, -1]])
    assert out["labels"].numpy().tolist() == [[b"l5", b"l1", b""]]


def test_a_tree_over_some_labels_trains_and_predicts_label_ids():
    # small_tree's 12 leaves stand for the even labels 0..22 of 30; odd labels are outside the tree.
    head = LabelTreeHead(small_tree().over_labels(np.arange(0, 24, 2), 30), beam_size=100,
                         final_post_processor="noop", seed=1)
    head.build((None, 6))
    assert head.num_labels == 30
    # Label 8 is leaf 4 (cluster 1, top node 0); label 9 is outside and adds no positive anywhere.
    labels = tf.ragged.constant([[8, 9], [9]], tf.int64)
    pad = 2 ** 31 - 1
    np.testing.assert_array_equal(head._positives(labels, 2).numpy(), [[4, pad, pad], [pad, pad, pad]])
    np.testing.assert_array_equal(head._positives(labels, 1).numpy()[:, 0], [1, pad])
    np.testing.assert_array_equal(head._positives(labels, 0).numpy()[:, 0], [0, pad])
    assert np.isfinite(head.per_example_loss(tf.ones([2, 6]), labels).numpy()).all()
    # Prediction ranks the leaves exactly (the beam keeps every node) and names them by label id.
    features = tf.random.stateless_normal([3, 6], seed=[7, 8])
    _, ids = head.top_k(features, 12)
    exact = tf.matmul(features, head.kernels[2], transpose_b=True) + head.biases[2]
    np.testing.assert_array_equal(ids.numpy(), 2 * tf.math.top_k(exact, 12).indices.numpy())


def test_labels_without_training_rows_are_left_out_of_a_clustered_tree(tmp_path):
    from head_harness import head_config

    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.model import build_model
    from tfxc.tree import cached_split_pifa

    # 1,024 rows with about 3 Zipf-distributed labels each cannot cover 3,000 labels.
    config = load_config(head_config(tmp_path, {"name": "label_tree", "max_leaf_size": 8}, num_labels=3000))
    info = ensure_converted(config.data)
    seen = np.flatnonzero(np.diff(cached_split_pifa(info).indptr))
    assert 100 < seen.size < 3000
    model = build_model(config.model, BuildContext.from_info(info, seed=1, model_dir=str(tmp_path / "m")))
    assert model.head.num_labels == 3000 and model.head.sizes[-1] == seen.size
    np.testing.assert_array_equal(model.head.leaf_labels.numpy(), seen)
    # Kept with the model; and the whole label space stays available with skip_unseen_labels off.
    from tfxc.tree import LabelTree
    assert LabelTree.load(str(tmp_path / "m" / "label_tree.npz")).num_labels == 3000
    every = dataclasses.replace(config.model, head=dataclasses.replace(config.model.head, skip_unseen_labels=False))
    assert build_model(every, BuildContext.from_info(info, seed=1)).head.sizes[-1] == 3000


@pytest.mark.parametrize("rows", [1, 3, 8, 9, 21])
def test_serving_compiles_padded_batches_and_blocks_and_agrees_with_the_graph(rows, monkeypatch):
    from tfxc.encoders.sparse_bow import SparseBowEncoder
    from tfxc.export import serving_modules
    from tfxc.export.serving_modules import ServingModule
    from tfxc.model import XCModel

    # Blocks of 8 rows: 1 and 3 rows pad to a power of two, 9 and 21 run as 2 and 3 blocks, the last padded.
    monkeypatch.setattr(serving_modules, "XLA_BLOCK_ROWS", 8)

    encoder = SparseBowEncoder(num_features=50, embedding_dim=6, seed=3)
    head = LabelTreeHead(small_tree(), beam_size=2, post_processor="sigmoid", seed=4)
    model = XCModel(encoder, head)
    encoder.build()
    head.build((None, 6))
    serving = ServingModule(model, [f"l{i}" for i in range(12)], top_k=4, num_features=50)
    assert serving._compiled_head_top_k is not None  # the tree asks for XLA (Head.serving_jit_compile)
    idx = tf.constant(np.arange(rows * 3) % 50, tf.int64)
    val = tf.random.stateless_uniform([rows * 3], seed=[rows, 1])
    splits = tf.range(0, rows * 3 + 1, 3, dtype=tf.int64)
    batch = {"feat_idx": tf.RaggedTensor.from_row_splits(idx, splits),
             "feat_val": tf.RaggedTensor.from_row_splits(val, splits)}
    scores, ids = model.top_k(batch, 4)
    # Compiled for Python readers (`xla_serve`); the signature a model server calls runs without XLA.
    for out in (serving.xla_serve(idx, val, splits), serving.serve(idx, val, splits)):
        np.testing.assert_array_equal(out["label_ids"].numpy(), ids.numpy())
        np.testing.assert_allclose(out["scores"].numpy(), scores.numpy(), rtol=1e-5)


def test_the_sparse_term_can_start_from_the_node_centroids(tmp_path):
    from head_harness import head_config

    from tfxc.build_context import BuildContext
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted
    from tfxc.data.info import DatasetInfo
    from tfxc.model import build_model
    from tfxc.tree import cached_split_pifa
    from tfxc.tree.support import node_centroid_support

    head = {"name": "label_tree", "max_leaf_size": 4, "nr_splits": 2, "sparse_support": 6, "sparse_init": 3.0}
    config = load_config(head_config(tmp_path, head))
    info = ensure_converted(config.data)
    model_dir = str(tmp_path / "m")
    first = build_model(config.model, BuildContext.from_info(info, seed=1, model_dir=model_dir))
    tree = first.head.tree
    support, weights = node_centroid_support(tree, cached_split_pifa(DatasetInfo.load(config.data.dir)), 6)
    for t in range(len(tree.sizes)):
        np.testing.assert_array_equal(first.head.support_levels[t].numpy(), support[t])
        np.testing.assert_allclose(first.head.sparse_kernels[t].numpy(), 3.0 * weights[t], rtol=1e-6)
    # Unit norm per node: the starting term is 3 × the cosine of a row and the node's centroid on its features.
    np.testing.assert_allclose(np.linalg.norm(weights[-1], axis=1), 1.0, rtol=1e-5)
    # The weights are kept with the support in the model directory: a run resumed before its first
    # checkpoint starts from the same values.
    again = build_model(config.model, BuildContext.from_info(info, seed=1, model_dir=model_dir))
    for a, b in zip(again.head.sparse_kernels, first.head.sparse_kernels):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_sparse_init_needs_the_sparse_term():
    from tfxc.errors import ConfigError
    from tfxc.heads.label_tree import LabelTreeHeadConfig

    with pytest.raises(ConfigError, match=r"model.head.sparse_init \(2.0\) .* needs sparse_support > 0"):
        LabelTreeHeadConfig(sparse_init=2.0).validate("model.head")


def test_node_weights_are_inverse_propensities_of_the_summed_label_counts():
    from tfxc.data.propensity import propensities
    from tfxc.heads.label_tree.config import node_positive_weights

    tree = small_tree()  # labels 3c..3c+2 in leaf cluster c; clusters 0, 1 under top node 0
    freq = np.array([40, 1, 0, 7, 7, 7, 2, 2, 3, 100, 100, 5])
    weights = node_positive_weights(tree, freq, 200, 0.5)
    for level, node_freq in ((0, [41 + 21, 7 + 205]), (1, [41, 21, 7, 205]), (2, freq)):
        node_freq = np.asarray(node_freq, np.float64)
        raw = (1.0 / propensities(node_freq, 200)) ** 0.5
        # Scaled so that a level's positive occurrences weigh 1 on average.
        np.testing.assert_allclose(weights[level], raw / (np.sum(raw * node_freq) / node_freq.sum()), rtol=1e-5)
        assert np.sum(weights[level] * node_freq) / node_freq.sum() == pytest.approx(1.0, rel=1e-5)
    # Rarer labels weigh more.
    assert weights[2][1] > weights[2][3] > weights[2][9]
    from tfxc.errors import DataError

    with pytest.raises(DataError, match="needs the train split's label counts"):
        node_positive_weights(tree, None, 200, 0.5)


def test_node_weights_scale_the_positive_terms_of_the_loss():
    # All-zero node vectors except one bias per level, so every logit is known: BCE with weighted positives.
    node_weights = [np.array([2.0, 0.5], np.float32), np.array([1.0, 3.0, 1.0, 1.0], np.float32),
                    np.linspace(0.5, 6.0, 12).astype(np.float32)]
    head = build_head(loss="bce", negatives="tfn", node_weights=node_weights)
    for variable in head.kernels + head.biases:
        variable.assign(tf.zeros_like(variable))
    head.biases[2].assign(tf.fill([12], 0.7))
    features = tf.ones([2, 6])
    labels = tf.ragged.constant([[4], [0, 11]], tf.int64)
    got = head.per_example_loss(features, labels).numpy()

    def bce(z, positive, weight):
        return weight * np.log1p(np.exp(-z)) if positive else np.log1p(np.exp(z))

    def level(nodes, positives, weights, z=0.0):
        return np.mean([bce(z, n in positives, weights[n]) for n in nodes])

    w0, w1, w2 = node_weights
    # Row 0: label 4 (cluster 1, top node 0); active: both top nodes, clusters {0, 1}, labels {3, 4, 5}.
    row0 = level([0, 1], {0}, w0) + level([0, 1], {1}, w1) + level([3, 4, 5], {4}, w2, 0.7)
    # Row 1: labels 0 (cluster 0) and 11 (cluster 3); every cluster active; labels {0, 1, 2, 9, 10, 11}.
    row1 = level([0, 1], {0, 1}, w0) + level([0, 1, 2, 3], {0, 3}, w1) + level([0, 1, 2, 9, 10, 11], {0, 11}, w2, 0.7)
    np.testing.assert_allclose(got, [row0, row1], rtol=1e-5)
    # The weights are part of the model's state (restored with a checkpoint, not rebuilt from the data).
    assert [v.name for v in head.non_trainable_variables if "node_weight" in v.name] == [
        "node_weight_0", "node_weight_1", "node_weight_2"]


def test_propensity_weight_is_checked():
    from tfxc.errors import ConfigError
    from tfxc.heads.label_tree import LabelTreeHeadConfig

    with pytest.raises(ConfigError, match=r"model.head.propensity_weight \(3.0\) must be in \[0, 2\]"):
        LabelTreeHeadConfig(propensity_weight=3.0).validate("model.head")
