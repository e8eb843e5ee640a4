"""`propensity_rerank`: the beam's candidates ranked by score + τ·log(1/p_l), a prediction setting."""

import numpy as np
import pytest
from head_harness import HARNESS_TIME, run_head_test

from tfxc._tf import tf
from tfxc.data.propensity import propensities
from tfxc.heads.label_tree import LabelTreeHead
from tfxc.heads.label_tree.config import LabelTreePrediction, propensity_bonus
from tfxc.heads.label_tree.ops import in_log_space, propensity_rerank
from tfxc.tree import LabelTree

FREQ = np.array([40, 1, 0, 7, 7, 7, 2, 2, 3, 100, 100, 5])


def small_tree():
    # 12 labels in 4 leaf clusters of 3, under 2 top nodes.
    return LabelTree.from_leaf_codes(np.arange(12) // 3, 4, nr_splits=2, min_codes=2)


@pytest.mark.parametrize("log_space", [True, False])
def test_the_rerank_adds_the_bonus_in_log_space_and_keeps_empty_slots_last(log_space):
    scores = np.array([[2.0, 1.5, 1.0, -np.inf], [0.9, 0.8, 0.1, 0.05]], np.float32)
    nodes = np.array([[0, 1, 2, -1], [3, 2, 1, 0]], np.int32)
    bonus = np.array([0.0, 0.2, 1.5, 0.9], np.float32)
    got_scores, got_nodes = propensity_rerank(tf.constant(scores), tf.constant(nodes), tf.constant(bonus),
                                              log_space, tf.constant(3))
    safe = np.maximum(nodes, 0)
    keys = scores + bonus[safe] if log_space else scores * np.exp(bonus[safe])
    keys = np.where(nodes >= 0, keys, -np.inf)
    order = np.argsort(-keys, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(got_nodes.numpy(), np.take_along_axis(nodes, order, 1))
    np.testing.assert_allclose(got_scores.numpy(), np.take_along_axis(keys, order, 1), rtol=1e-6)
    assert got_nodes.numpy()[0].tolist() == [2, 0, 1]  # the rare node 2 rises from third to first


def test_the_bonus_is_tau_log_inverse_propensity_of_each_leaf_label():
    tree = small_tree()
    np.testing.assert_allclose(propensity_bonus(tree, FREQ, 200, 0.3), 0.3 * -np.log(propensities(FREQ, 200)),
                               rtol=1e-6)
    # A tree over the even labels of 24: a last-level node's bonus is its label's.
    freq = np.repeat(FREQ, 2)
    some = tree.over_labels(np.arange(0, 24, 2), 24)
    np.testing.assert_allclose(propensity_bonus(some, freq, 200, 1.0), -np.log(propensities(freq, 200))[::2],
                               rtol=1e-6)
    from tfxc.errors import ConfigError, DataError

    with pytest.raises(DataError, match="propensity_rerank needs the train split's label counts"):
        propensity_bonus(tree, None, 200, 0.3)
    with pytest.raises(ConfigError, match=r"model.head.prediction.propensity_rerank \(2.5\) must be in \[0, 2\]"):
        LabelTreePrediction(propensity_rerank=2.5).validate("model.head.prediction")


@pytest.mark.parametrize("final", ["noop", "sigmoid"])
def test_top_k_reranks_a_beam_wider_than_k(final):
    # A beam that keeps every node: the reranked top 2 of all 12 labels, though k = 2 < beam_size.
    bonus = propensity_bonus(small_tree(), FREQ, 200, 0.7)
    plain = LabelTreeHead(small_tree(), seed=1, beam_size=12, post_processor="sigmoid", final_post_processor=final)
    head = LabelTreeHead(small_tree(), seed=1, beam_size=12, post_processor="sigmoid", final_post_processor=final,
                         rerank_bonus=bonus)
    for h in (plain, head):
        h.build((None, 6))
    for t in range(3):
        kernel = tf.random.stateless_normal(head.kernels[t].shape, seed=[t, 9])
        plain.kernels[t].assign(kernel)
        head.kernels[t].assign(kernel)
    features = tf.random.stateless_normal([6, 6], seed=[1, 2])
    scores, ids = plain.top_k(features, 12)
    scores, ids = scores.numpy(), ids.numpy()
    keys = scores + bonus[ids] if in_log_space(final) else scores * np.exp(bonus[ids])
    order = np.argsort(-keys, axis=1, kind="stable")[:, :2]
    got_scores, got_ids = head.top_k(features, 2)
    np.testing.assert_array_equal(got_ids.numpy(), np.take_along_axis(ids, order, 1))
    np.testing.assert_allclose(got_scores.numpy(), np.take_along_axis(keys, order, 1), rtol=1e-5)
    assert (got_ids.numpy() != plain.top_k(features, 2)[1].numpy()).any()  # the bonus changed some ranking


@pytest.mark.slow(reason=HARNESS_TIME)
def test_label_tree_head_contract_with_the_propensity_rerank(tmp_path):
    # Restored, exported, served and mirrored alike, with the bonus rebuilt from the data card's label counts.
    run_head_test(tmp_path, {"name": "label_tree", "max_leaf_size": 4, "nr_splits": 2,
                             "post_processor": "sigmoid", "prediction": {"beam_size": 64, "propensity_rerank": 0.5}})
