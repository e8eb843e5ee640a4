"""Model building blocks: encoder, heads, the checkpoint covering every variable."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.config import load_config
from tfxc.build_context import BuildContext
from tfxc.model import build_model


def batch():
    return {"feat_idx": tf.ragged.constant([[1, 5], [], [3, 4, 9]], tf.int64),
            "feat_val": tf.ragged.constant([[1.0, 0.5], [], [2.0, 1.0, 1.0]]),
            "labels": tf.ragged.constant([[1, 2], [], [7]], tf.int64)}


def make(head="one_vs_all", **encoder):
    encoder = {"hidden_units": [8], "dropout": 0.2, "embedding_dim": 12, **encoder}
    overrides = ["data.dir=unused", f"model.head.name={head}"] + [
        f"model.encoder.{k}={v if not isinstance(v, list) else list(v)}" for k, v in encoder.items()]
    config = load_config(None, [o.replace("'", '"') for o in overrides])
    return build_model(config.model, BuildContext(num_features=10, num_labels=11, seed=1))


@pytest.mark.parametrize("head", ["one_vs_all", "softmax"])
def test_checkpoint_holds_every_model_variable(head, tmp_path):
    model = make(head)
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    saved = sorted(tuple(s) for k, s in shapes.items() if k.startswith("model/"))
    expected = sorted(tuple(v.shape) for v in model.trainable_variables)
    assert saved == expected


def test_empty_rows_encode_to_the_bias_and_embedding_gradient_is_sparse():
    model = make(hidden_units=[], dropout=0.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model.per_example_loss(batch(), training=True))
    grads = dict(zip([v.path for v in model.trainable_variables], tape.gradient(loss, model.trainable_variables)))
    assert isinstance(grads["encoder/embeddings"], tf.IndexedSlices)
    features = model.encoder(batch())
    np.testing.assert_allclose(features[1].numpy(), np.maximum(model.encoder.bias.numpy(), 0))


def brute_force_loss(logits, labels, head):
    out = []
    for z, y in zip(logits, labels):
        if head == "one_vs_all":
            t = np.zeros_like(z)
            t[y] = 1
            out.append(np.sum(np.logaddexp(0, z) - t * z))
        else:
            lse = np.log(np.sum(np.exp(z)))
            out.append(np.mean(lse - z[y]) if len(y) else 0.0)
    return np.array(out)


@pytest.mark.parametrize("head", ["one_vs_all", "softmax"])
def test_losses_match_a_dense_numpy_reference(head):
    model = make(head, dropout=0.0)
    logits = model(batch()).numpy()
    labels = [[1, 2], [], [7]]
    np.testing.assert_allclose(model.per_example_loss(batch()).numpy(), brute_force_loss(logits, labels, head),
                               rtol=1e-5)


@pytest.mark.parametrize("head", ["one_vs_all", "softmax"])
def test_top_k_equals_brute_force_also_across_label_chunks(head, monkeypatch):
    import tfxc.heads.top_k as top_k

    model = make(head, dropout=0.0)
    logits = model(batch()).numpy()
    expected = np.argsort(-logits, axis=1, kind="stable")[:, :4]
    probs = 1 / (1 + np.exp(-logits)) if head == "one_vs_all" else \
        np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for chunk in (65536, 3):  # one chunk, and 4 chunks of <= 3 labels merged
        monkeypatch.setattr(top_k, "LABEL_CHUNK", chunk)
        scores, ids = model.top_k(batch(), 4)
        np.testing.assert_array_equal(ids.numpy(), expected)
        np.testing.assert_allclose(scores.numpy(), np.take_along_axis(probs, expected, 1), rtol=1e-5)
