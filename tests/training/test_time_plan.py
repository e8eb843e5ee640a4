"""The training-time estimate's arithmetic (`tfxc.training.time_plan`); its rates are the machine's, not tested."""

from types import SimpleNamespace

import pytest

from tfxc.training.time_plan import (ADAM_BYTES_PER_WEIGHT, SCORE_BYTES, START_S, STEP_OVERHEAD_S, Rates,
                                     format_seconds, tree_levels, tree_nodes, tree_nodes_scored, work)

PROFILE = SimpleNamespace(num_points=1_000, num_features=200, num_labels=50, labels_per_point=1.0,
                          features_per_point=5.0)


def config(head=None, **trainer):
    return {"model": {"encoder": {"embedding_dim": 10}, "head": head or {"name": "softmax"}},
            "trainer": {"global_batch_size": 100, "epochs": 2, "eval_every_epochs": 1, **trainer}}


def test_an_exact_head_counts_its_products_their_gradients_and_adams_update():
    w = work(config(), PROFILE, val_points=100, bag="sparse")
    assert w.steps == 20  # 2 epochs of 1,000 / 100
    # Forward and both gradients (3 x 2 flops a multiply-add) of the bag (5 features a row) and the head's
    # [100, 10] x [10, 50].
    assert w.step_flops == 3 * 2 * 100 * (5 * 10 + 10 * 50)
    # Adam over the head's [10, 50] and the bag rows of the batch's features (all 200 here), and the loss's
    # passes over the [100, 50] scores.
    assert w.step_bytes == ADAM_BYTES_PER_WEIGHT * (10 * 50 + 200 * 10) + SCORE_BYTES * 100 * 50
    assert (w.evaluations, w.eval_flops) == (2, 2 * 100 * (5 * 10 + 10 * 50))
    rates = Rates(matmul_flops=1e6, memory_bytes=1e5, bfloat16_flops=2e6)
    assert w.seconds(rates) == pytest.approx(START_S + 20 * (0.33 + 1.9 + STEP_OVERHEAD_S) + 2 * 0.11)
    # Products in bfloat16 ("auto") at the bfloat16 rate, the update as before.
    auto = config()
    auto["model"]["precision"] = "auto"
    assert work(auto, PROFILE, 100).seconds(rates) == pytest.approx(
        START_S + 20 * (0.165 + 1.9 + STEP_OVERHEAD_S) + 2 * 0.055)


def test_the_full_and_dense_bags_the_sparse_term_and_no_validation():
    # The dense bag multiplies over the batch's features: at most 100 rows x 5 = 500, here all 200 of them.
    dense = work(config(), SimpleNamespace(**{**vars(PROFILE), "num_features": 1_000}), 0, bag="dense")
    assert dense.step_flops == 3 * 2 * 100 * (500 * 10 + 10 * 50)
    w = work(config({"name": "softmax", "sparse_support": 4}), PROFILE, val_points=0, bag="full")
    assert w.step_flops == 3 * 2 * 100 * (200 * 10 + 10 * 50 + 4 * 50)  # every feature, and 4 a label
    assert w.step_bytes == ADAM_BYTES_PER_WEIGHT * ((10 + 4) * 50 + 200 * 10) + SCORE_BYTES * 100 * 50
    assert w.evaluations == 0 and work(config(eval_every_epochs=0), PROFILE, 100).evaluations == 0


def test_a_label_tree_scores_its_positives_paths_and_their_siblings():
    head = {"name": "label_tree", "max_leaf_size": 16, "nr_splits": 16}
    # 10,440 labels in 653 leaves of 16: 3 levels of 16-way splits above the labels' level.
    assert tree_levels(head, 10_440) == 4 and tree_levels(head, 16) == 1
    assert tree_nodes(head, 10_440) == 11_136  # 10,440 x 16 / 15
    hypernyms = SimpleNamespace(num_labels=10_440, labels_per_point=9.0)
    assert tree_nodes_scored(head, hypernyms) == 4 * 9 * 16
    profile = SimpleNamespace(**{**vars(PROFILE), "num_labels": 10_440, "labels_per_point": 9.0})
    w = work(config(head), profile, val_points=0)
    assert w.step_flops == 3 * 2 * 100 * (5 * 10 + 10 * 576)
    assert w.step_bytes == ADAM_BYTES_PER_WEIGHT * (10 * 11_136 + 200 * 10) + SCORE_BYTES * 100 * 576


@pytest.mark.parametrize("seconds, text", [(4.26, "~4.3 s"), (12.4, "~12 s"), (200, "~3 min"), (7200, "~2.0 h")])
def test_estimates_read_as_one_short_figure(seconds, text):
    assert format_seconds(seconds) == text


def test_mach_scores_its_buckets_and_the_encoders_hidden_layers_count():
    head = {"name": "mach", "num_buckets": 20, "num_repetitions": 2}
    cfg = config(head)
    cfg["model"]["encoder"]["hidden_units"] = [6]
    w = work(cfg, PROFILE, val_points=100, bag="sparse")
    # The bag [5 x 10], the hidden [10 x 6] and the head's [6 x 40] (R x B buckets, not the 50 labels).
    assert w.step_flops == 3 * 2 * 100 * (5 * 10 + 10 * 6 + 6 * 40)
    assert w.step_bytes == ADAM_BYTES_PER_WEIGHT * (6 * 40 + 10 * 6 + 200 * 10) + SCORE_BYTES * 100 * 40
