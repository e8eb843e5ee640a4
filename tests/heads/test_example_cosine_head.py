"""A head added from outside tfxc (one module, `example_cosine_head`) passes the whole head contract."""

import os

import numpy as np
import pytest
from example_cosine_head import CosineHead
from head_harness import HARNESS_TIME, check_config_round_trip, run_head_test

from tfxc._tf import tf
from tfxc.heads.base import Head


@pytest.mark.slow(reason=HARNESS_TIME)
def test_cosine_head_trains_evaluates_and_exports_end_to_end(tmp_path):
    run_head_test(tmp_path, {"name": "cosine", "scale": 10.0}, imports=["example_cosine_head"],
                  import_path=os.path.dirname(__file__))


def built_cosine_head():
    head = CosineHead(10, 4.0, name="head")
    features = tf.random.stateless_normal([3, 5], seed=[1, 2])
    head(features)
    return head, features, tf.ragged.constant([[1], [2], [7]], tf.int64)


def test_the_harness_refuses_a_get_config_that_drops_or_misreports_an_argument(monkeypatch):
    head, features, labels = built_cosine_head()
    check_config_round_trip(head, features, labels)
    monkeypatch.setattr(CosineHead, "get_config", Head.get_config)  # `scale` left out
    with pytest.raises(AssertionError, match=r"CosineHead.get_config\(\) leaves out .*\['scale'\]"):
        check_config_round_trip(head, features, labels)
    monkeypatch.setattr(CosineHead, "get_config", lambda self: {**Head.get_config(self), "scale": 1.0})
    with pytest.raises(AssertionError, match="CosineHead outputs"):
        check_config_round_trip(head, features, labels)


def test_a_softmax_like_head_from_outside_gets_r_drop_multisample_dropout_and_distillation():
    # The objectives read the head's declared logits_kind, not its class name.
    from tfxc.encoders import SparseBowEncoder
    from tfxc.losses.base import HeadLoss, HeadLossConfig
    from tfxc.losses.distill import DistillConfig, DistillObjective
    from tfxc.model import XCModel

    encoder = SparseBowEncoder(num_features=20, embedding_dim=5, seed=1)
    model = XCModel(encoder, CosineHead(10, 4.0, name="head"))
    for config in (HeadLossConfig(r_drop=2.0), HeadLossConfig(multisample_dropout=3)):
        HeadLoss(config).check_model(model)
    DistillObjective(DistillConfig(teacher="unused"), np.zeros((4, 10), np.float32)).check_model(model)
    batch = {"feat_idx": tf.ragged.constant([[1, 4], [2], [7, 9, 11], [0]], tf.int64),
             "feat_val": tf.ragged.constant([[1.0, 0.5], [2.0], [1.0, 1.0, 1.0], [0.3]]),
             "labels": tf.ragged.constant([[1], [2], [7], [3]], tf.int64), "row_id": tf.range(4, dtype=tf.int64)}
    # Without dropout both R-Drop passes agree: the loss is the head's own, the KL term 0.
    total, reported = HeadLoss(HeadLossConfig(r_drop=2.0)).per_example_loss(model, batch)
    plain = model.per_example_loss(batch, training=True).numpy()
    np.testing.assert_allclose(total.numpy(), plain, rtol=1e-5)
    np.testing.assert_allclose(reported.numpy(), plain, rtol=1e-5)
