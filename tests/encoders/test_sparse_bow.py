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


@pytest.mark.parametrize("dense", [False, True])
def test_embedding_bag_and_its_row_sparse_gradient_with_leading_and_trailing_empty_rows(dense):
    """The bag (a sorted segment sum padded back to B rows, or one product over the batch's distinct features)
    and its table gradient, an IndexedSlices; a feature twice in a row counts twice."""
    from tfxc.encoders.sparse_bow import dense_embedding_bag, embedding_bag

    embedding_bag = dense_embedding_bag if dense else embedding_bag
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
    assert isinstance(gradient, tf.IndexedSlices)
    np.testing.assert_allclose(tf.convert_to_tensor(gradient).numpy(), x.T @ weights, rtol=1e-5, atol=1e-6)
    # Batches without a single feature (an empty request, all-empty rows) are zeros, not a crash.
    for splits in ([0], [0, 0, 0]):
        empty = ragged(np.zeros(0, np.int64), np.zeros(0, np.float32), np.array(splits, np.int64))
        bag = tf.function(embedding_bag)(table, empty["feat_idx"], empty["feat_val"])
        np.testing.assert_array_equal(bag.numpy(), np.zeros((len(splits) - 1, 4), np.float32))


def test_the_dense_bag_is_chosen_for_rows_with_many_features_of_a_small_space():
    from tfxc.build_context import BuildContext
    from tfxc.encoders.sparse_bow import SparseBowEncoderConfig

    def chosen(num_features, per_point):
        context = BuildContext(num_features=num_features, num_labels=5, features_per_point=per_point)
        return SparseBowEncoder.from_config_dataclass(SparseBowEncoderConfig(), context).dense_bag

    assert chosen(500, 18.4) and chosen(1836, 68.0) and chosen(15200, 76.9)  # delicious, bibtex, reuters
    assert not chosen(38565, 12.8) and not chosen(100_000, 29.0)  # wordnet-hypernyms, the synthetic scale sets
    context = BuildContext(num_features=500, num_labels=5, features_per_point=18.4)
    for bag, dense in (("sparse", False), ("dense", True)):
        config = SparseBowEncoderConfig(bag=bag)
        assert SparseBowEncoder.from_config_dataclass(config, context).dense_bag == dense
    with pytest.raises(ConfigError, match="bag 'segments' is not one of auto, sparse, dense"):
        SparseBowEncoderConfig(bag="segments").validate("model.encoder")


def test_preprocess_drops_raw_text_so_strings_never_reach_the_replicas():
    encoder = SparseBowEncoder(num_features=10, embedding_dim=6, seed=2)
    batch = {**ragged(IDS, VALUES, SPLITS), "row_id": tf.constant([0, 1, 2], tf.int64),
             "text": tf.constant(["a", "", "b c"])}
    out = encoder.preprocess(batch)
    assert sorted(out) == ["feat_idx", "feat_val", "row_id"]
    np.testing.assert_array_equal(out["feat_idx"].flat_values.numpy(), IDS)
