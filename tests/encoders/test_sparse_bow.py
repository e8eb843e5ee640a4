"""The bag-of-features encoder against a NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.encoders.sparse_bow import SparseBowEncoder
from tfxc.errors import ConfigError

# Three rows, the middle one empty.
IDS = np.array([4, 0, 9, 2, 4], np.int64)  # feature 4 in two rows
VALUES = np.array([0.5, -1.0, 2.0, 3.0, 0.25], np.float32)
SPLITS = np.array([0, 3, 3, 5], np.int64)


def ragged(ids, values, splits) -> dict:
    return {"feat_idx": tf.RaggedTensor.from_row_splits(ids, splits, validate=False),
            "feat_val": tf.RaggedTensor.from_row_splits(values, splits, validate=False)}


def reference(encoder: SparseBowEncoder, normalize: bool) -> np.ndarray:
    """relu(Σ v_j E[id_j] + b) row by row (one hidden layer after it, when the encoder has one)."""
    table, bias = encoder.embeddings.numpy(), encoder.bias.numpy()
    out = []
    for start, end in zip(SPLITS[:-1], SPLITS[1:]):
        values = VALUES[start:end]
        if normalize and len(values):
            values = values / np.linalg.norm(values)
        out.append(np.maximum(values @ table[IDS[start:end]] + bias, 0))
    out = np.array(out)
    for layer in encoder.hidden_layers:
        out = np.maximum(out @ layer.kernel.numpy() + layer.bias.numpy(), 0)
    return out


@pytest.mark.parametrize("normalize", [False, True])
def test_encoding_matches_numpy_with_empty_rows_normalisation_and_a_hidden_layer(normalize):
    encoder = SparseBowEncoder(num_features=10, embedding_dim=6, hidden_units=(5,), normalize_inputs=normalize,
                               seed=2)
    encoder.build()
    expected = reference(encoder, normalize)
    np.testing.assert_allclose(encoder(ragged(IDS, VALUES, SPLITS)).numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["sparse", "dense", "full"])
def test_embedding_bag_and_its_gradient_with_leading_and_trailing_empty_rows(kind):
    """The bag (a sorted segment sum padded back to B rows, one product over the batch's distinct features, or
    one product with the whole table) and its table gradient, an IndexedSlices except for the full bag's; a
    feature twice in a row counts twice."""
    from tfxc.encoders import sparse_bow

    embedding_bag = {"sparse": sparse_bow.embedding_bag, "dense": sparse_bow.dense_embedding_bag,
                     "full": sparse_bow.full_embedding_bag}[kind]
    table = tf.Variable(np.random.RandomState(3).randn(10, 4).astype("float32"))
    splits = np.array([0, 0, 3, 3, 5, 5, 5], np.int64)  # rows 0, 2, 4 and 5 empty
    batch = ragged(np.array([4, 0, 9, 2, 2], np.int64), VALUES, splits)  # feature 2 twice in row 3
    weights = np.random.RandomState(4).randn(6, 4).astype("float32")
    with tf.GradientTape() as tape:
        bag = embedding_bag(table, batch["feat_idx"], batch["feat_val"])
        loss = tf.reduce_sum(bag * weights)
    gradient = tape.gradient(loss, table)
    x = np.zeros((6, 10), np.float32)  # the rows as a dense [B, F] matrix
    for row, (start, end) in enumerate(zip(splits[:-1], splits[1:])):
        np.add.at(x[row], batch["feat_idx"].values.numpy()[start:end], VALUES[start:end])
    np.testing.assert_allclose(bag.numpy(), x @ table.numpy(), rtol=1e-5, atol=1e-6)
    assert isinstance(gradient, tf.IndexedSlices) == (kind != "full")
    np.testing.assert_allclose(tf.convert_to_tensor(gradient).numpy(), x.T @ weights, rtol=1e-5, atol=1e-6)
    # Batches without a single feature (an empty request, all-empty rows) are zeros, not a crash.
    for splits in ([0], [0, 0, 0]):
        empty = ragged(np.zeros(0, np.int64), np.zeros(0, np.float32), np.array(splits, np.int64))
        bag = tf.function(embedding_bag)(table, empty["feat_idx"], empty["feat_val"])
        np.testing.assert_array_equal(bag.numpy(), np.zeros((len(splits) - 1, 4), np.float32))


def test_the_bag_is_chosen_by_the_share_of_the_feature_space_a_row_has_and_its_size():
    from tfxc.build_context import BuildContext
    from tfxc.encoders.sparse_bow import SparseBowEncoderConfig

    def chosen(num_features, per_point, bag="auto"):
        context = BuildContext(num_features=num_features, num_labels=5, features_per_point=per_point)
        return SparseBowEncoder.from_config_dataclass(SparseBowEncoderConfig(bag=bag), context).bag

    assert chosen(500, 18.4) == chosen(1836, 68.0) == chosen(103, 103.0) == "full"  # delicious, bibtex, yeast
    assert chosen(15200, 76.9) == chosen(499, 8.2) == "dense"  # reuters, corel5k (a batch leaves much of it)
    assert chosen(38565, 12.8) == chosen(100_000, 29.0) == chosen(1449, 2.0) == "sparse"  # hypernyms, synthetic
    for bag in ("sparse", "dense", "full"):
        assert chosen(500, 18.4, bag) == chosen(100_000, 1.0, bag) == bag
    with pytest.raises(ConfigError, match="bag 'segments' is not one of auto, sparse, dense, full"):
        SparseBowEncoderConfig(bag="segments").validate("model.encoder")


@pytest.mark.parametrize("precision", [tf.float32, tf.bfloat16])
def test_the_full_bag_trains_densely_with_the_whole_table(precision):
    """Training takes the product with the whole table: a dense gradient, no row-sparse variable, bfloat16
    operands under mixed precision."""
    encoder = SparseBowEncoder(num_features=10, embedding_dim=6, bag="full", seed=2)
    encoder.build()
    encoder.matmul_dtype = precision
    expected = reference(encoder, normalize=False)
    assert encoder.sparse_variables == []
    with tf.GradientTape() as tape:
        trained = encoder(ragged(IDS, VALUES, SPLITS), training=True)
        loss = tf.reduce_sum(trained)
    gradient = tape.gradient(loss, encoder.embeddings)
    assert isinstance(gradient, tf.Tensor) and gradient.shape == (10, 6)
    tolerance = 1e-5 if precision == tf.float32 else 2e-2  # bfloat16 keeps 8 bits of the operands
    np.testing.assert_allclose(trained.numpy(), expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("small_table_bytes, few_nonzeros, op", [
    (1 << 19, 256, "MatMul"),                      # a small table: the whole product
    (0, 256, "SparseTensorDenseMatMul"),           # a large one, few non-zeros (one row)
    (0, 2, "GatherV2"),                            # a large one, a batch: the batch's distinct rows
])
def test_the_full_bag_infers_from_a_plain_read_of_the_table(monkeypatch, small_table_bytes, few_nonzeros, op):
    """Evaluation and serving read the table as a tensor, never row-sparsely from the variable (which would put
    it in TensorFlow's copy-on-read mode), and take the path that suits the request; the same sums, empty
    requests included."""
    from tfxc.encoders import sparse_bow

    monkeypatch.setattr(sparse_bow, "SMALL_TABLE_BYTES", small_table_bytes)
    monkeypatch.setattr(sparse_bow, "FEW_NONZEROS", few_nonzeros)
    encoder = SparseBowEncoder(num_features=10, embedding_dim=6, bag="full", seed=2)
    encoder.build()
    batch = ragged(IDS, VALUES, SPLITS)
    inferred = tf.function(lambda b: encoder(b, training=False))
    graph = inferred.get_concrete_function(batch).graph.as_graph_def()
    ops = {node.op for f in graph.library.function for node in f.node_def} | {node.op for node in graph.node}
    assert "ResourceGather" not in ops and op in ops
    np.testing.assert_allclose(inferred(batch).numpy(), reference(encoder, normalize=False), rtol=1e-5, atol=1e-6)
    empty = ragged(np.zeros(0, np.int64), np.zeros(0, np.float32), np.array([0, 0, 0], np.int64))
    bias_only = np.maximum(np.tile(encoder.bias.numpy(), (2, 1)), 0)
    np.testing.assert_array_equal(inferred(empty).numpy(), bias_only)


@pytest.mark.parametrize("max_cells, product", [(None, True), (4.0, True), (2.0, False)])
def test_the_dense_bag_falls_back_to_the_segment_sum_past_a_number_of_cells_per_nonzero(max_cells, product):
    """3 rows x 4 distinct features = 12 cells for 5 non-zeros (2.4 a non-zero): the product up to the
    threshold, the segment sum past it, the same sums either way, and zeros for an empty batch. Which one
    ran shows in an infinite table row that only row 0 reads: the product's zero cells turn it into NaN
    in the other rows (0 x inf), the segment sum never touches it there."""
    from tfxc.encoders.sparse_bow import dense_embedding_bag

    table = np.random.RandomState(0).randn(10, 6).astype(np.float32)
    expected = np.stack([VALUES[a:b] @ table[IDS[a:b]] for a, b in zip(SPLITS[:-1], SPLITS[1:])])

    def bag(table, batch):
        return dense_embedding_bag(tf.constant(table), batch["feat_idx"], batch["feat_val"],
                                   max_cells_per_nonzero=max_cells).numpy()

    np.testing.assert_allclose(bag(table, ragged(IDS, VALUES, SPLITS)), expected, rtol=1e-5, atol=1e-6)
    table[9] = np.inf  # read by row 0 alone (IDS[2])
    assert np.isnan(bag(table, ragged(IDS, VALUES, SPLITS))[2]).any() == product
    empty = ragged(np.zeros(0, np.int64), np.zeros(0, np.float32), np.array([0, 0], np.int64))
    np.testing.assert_array_equal(bag(table, empty), np.zeros((1, 6), np.float32))


def test_the_full_bags_inference_batches_multiply_in_its_training_dtype(monkeypatch):
    """Under mixed precision the full bag trains on bfloat16 products, and its evaluation and serving batches
    (the product over the batch's distinct rows) take bfloat16 operands too; a few non-zeros (one row,
    `sparse_dense_matmul`) and float32 bags stay in float32."""
    from tfxc.encoders import sparse_bow

    monkeypatch.setattr(sparse_bow, "SMALL_TABLE_BYTES", 0)
    encoder = SparseBowEncoder(num_features=10, embedding_dim=6, bag="full", seed=2)
    encoder.build()
    batch, expected = ragged(IDS, VALUES, SPLITS), reference(encoder, normalize=False)

    def inferred(few_nonzeros, dtype):
        monkeypatch.setattr(sparse_bow, "FEW_NONZEROS", few_nonzeros)  # read at tracing
        encoder.matmul_dtype = dtype
        fn = tf.function(lambda b: encoder(b, training=False))
        graph = fn.get_concrete_function(batch).graph.as_graph_def()
        products = [node for f in graph.library.function for node in f.node_def if node.op == "MatMul"]
        return fn(batch).numpy(), {node.attr["T"].type for node in products}

    out, dtypes = inferred(2, tf.bfloat16)  # the batch below (5 non-zeros) is a batch
    assert dtypes == {tf.bfloat16.as_datatype_enum}
    np.testing.assert_allclose(out, expected, rtol=2e-2, atol=2e-2)  # bfloat16 keeps 8 bits of the operands
    assert not np.allclose(out, expected, rtol=1e-6, atol=1e-7)  # ... and they were rounded
    out, dtypes = inferred(2, tf.float32)
    assert dtypes == {tf.float32.as_datatype_enum}
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    out, _ = inferred(256, tf.bfloat16)  # a few non-zeros: sparse_dense_matmul in float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, batch_op", [("sparse", "SegmentSum"), ("dense", "MatMul")])
def test_a_served_graph_reads_any_bag_from_a_plain_read_of_the_table(monkeypatch, kind, batch_op):
    """Traced for a SavedModel, the sparse and dense bags read their tables as tensors too (one row through
    `sparse_dense_matmul`, batches their own way); traced for evaluation in the training process they keep
    reading the variable row-sparsely, as training does (a plain read would then copy the whole table)."""
    from tfxc.encoders import sparse_bow

    monkeypatch.setattr(sparse_bow, "SMALL_TABLE_BYTES", 0)
    monkeypatch.setattr(sparse_bow, "FEW_NONZEROS", 2)  # the batch below (5 non-zeros) is a batch
    encoder = SparseBowEncoder(num_features=10, embedding_dim=6, bag=kind, seed=2)
    encoder.build()
    batch, expected = ragged(IDS, VALUES, SPLITS), reference(encoder, normalize=False)

    def traced_ops():
        fn = tf.function(lambda b: encoder(b, training=False))
        graph = fn.get_concrete_function(batch).graph.as_graph_def()
        return fn, {node.op for f in graph.library.function for node in f.node_def} | {node.op for node in graph.node}

    with encoder.tracing_for_serving():
        served, ops = traced_ops()
    assert "ResourceGather" not in ops and {"SparseTensorDenseMatMul", batch_op} <= ops
    np.testing.assert_allclose(served(batch).numpy(), expected, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(sparse_bow, "FEW_NONZEROS", 256)  # read at tracing: a new trace, one row's way
    with encoder.tracing_for_serving():
        one_row, _ = traced_ops()
    np.testing.assert_allclose(one_row(batch).numpy(), expected, rtol=1e-5, atol=1e-6)
    evaluated, ops = traced_ops()
    assert "ResourceGather" in ops and "SparseTensorDenseMatMul" not in ops
    np.testing.assert_allclose(evaluated(batch).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_preprocess_drops_raw_text_so_strings_never_reach_the_replicas():
    encoder = SparseBowEncoder(num_features=10, embedding_dim=6, seed=2)
    batch = {**ragged(IDS, VALUES, SPLITS), "row_id": tf.constant([0, 1, 2], tf.int64),
             "text": tf.constant(["a", "", "b c"])}
    out = encoder.preprocess(batch)
    assert sorted(out) == ["feat_idx", "feat_val", "row_id"]
    np.testing.assert_array_equal(out["feat_idx"].flat_values.numpy(), IDS)
