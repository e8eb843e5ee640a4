"""Top-k list ensembles (tfxc.eval.ensemble.combine) against hand-computed values, and python -m tfxc.ensemble."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import run_cli, tiny_config

from tfxc.errors import TfxcError
from tfxc.eval.ensemble import METHODS, combine

INF = float("inf")


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


# Two models, two rows. Model 0 lists 3 labels per row (row 1 padded with -1), model 1 lists 2 (row 1 padded).
# Label 2 is listed by both models in row 0, label 3 by both in row 1.
TWO_SCORES = [np.array([[3.0, 1.0, 0.5], [2.0, 1.0, 0.0]], np.float32),
              np.array([[2.0, 1.0], [4.0, 7.0]], np.float32)]
TWO_IDS = [np.array([[5, 2, 7], [1, 3, -1]]), np.array([[2, 9], [3, -1]])]


def check(method, expected_ids, expected_scores, scores=TWO_SCORES, ids=TWO_IDS, k=4):
    out_scores, out_ids = combine(scores, ids, method, k)
    assert out_scores.dtype == np.float32 and out_ids.dtype == np.int64
    assert out_scores.shape == out_ids.shape == (2, k)
    np.testing.assert_array_equal(out_ids, expected_ids)
    np.testing.assert_allclose(out_scores, np.array(expected_scores, np.float32), rtol=1e-6)


def test_average_sums_shared_labels_and_breaks_ties_by_id():
    # Row 0: 2 -> (1 + 2) / 2 = 1.5 ties with 5 -> 3 / 2 = 1.5, and the smaller id goes first.
    check("average", [[2, 5, 9, 7], [3, 1, -1, -1]], [[1.5, 1.5, 0.5, 0.25], [2.5, 1.0, -INF, -INF]])


def test_softmax_average_normalises_over_each_models_listed_entries_only():
    p0, p1 = softmax([3.0, 1.0, 0.5]), softmax([2.0, 1.0])  # row 0
    q0 = softmax([2.0, 1.0])  # row 1, model 0: the padded slot is not part of the softmax
    check("softmax_average", [[2, 5, 9, 7], [3, 1, -1, -1]],
          [[(p0[1] + p1[0]) / 2, p0[0] / 2, p1[1] / 2, p0[2] / 2], [(q0[1] + 1.0) / 2, q0[0] / 2, -INF, -INF]])


def test_sigmoid_average_ignores_padding():
    # A padded slot would add sigmoid(score) >= 0; it must add nothing.
    check("sigmoid_average", [[2, 5, 9, 7], [3, 1, -1, -1]],
          [[(sigmoid(1) + sigmoid(2)) / 2, sigmoid(3) / 2, sigmoid(1) / 2, sigmoid(0.5) / 2],
           [(sigmoid(1) + sigmoid(4)) / 2, sigmoid(2) / 2, -INF, -INF]])


def test_rank_average_uses_mm_minus_rank_with_mm_the_longest_list():
    # mm = 3. Row 0: 2 -> (2 + 3) / 2, 5 -> 3 / 2, 9 -> 2 / 2, 7 -> 1 / 2. Row 1: 3 -> (2 + 3) / 2, 1 -> 3 / 2.
    check("rank_average", [[2, 5, 9, 7], [3, 1, -1, -1]], [[2.5, 1.5, 1.0, 0.5], [2.5, 1.5, -INF, -INF]])


def test_round_robin_interleaves_and_skips_labels_taken():
    # Row 0: model 0's 5, model 1's 2, model 0's 2 (taken), model 1's 9, model 0's 7.
    # PECOS's score: (mm - rank + (M - m) / (M + 1)) / M with mm = 3, M = 2.
    check("round_robin", [[5, 2, 9, 7], [1, 3, -1, -1]],
          [[(3 + 2 / 3) / 2, (3 + 1 / 3) / 2, (2 + 1 / 3) / 2, (1 + 2 / 3) / 2],
           [(3 + 2 / 3) / 2, (3 + 1 / 3) / 2, -INF, -INF]])


# Three models of different list lengths; model 2's row 1 is all padding.
THREE_SCORES = [np.array([[0.9, 0.8], [0.3, 0.2]], np.float32), np.array([[0.7, 0.6], [0.1, 9.0]], np.float32),
                np.array([[0.5, 0.4], [5.0, 5.0]], np.float32)]
THREE_IDS = [np.array([[10, 20], [1, 2]]), np.array([[20, 30], [2, -1]]), np.array([[40, 5], [-1, -1]])]


def test_three_models_rank_average_ties_go_to_the_smaller_id():
    # mm = 2. Row 0: 20 -> 1 + 2, 10 -> 2, 40 -> 2, 30 -> 1, 5 -> 1 (30 is listed before 5, but 5 < 30).
    check("rank_average", [[20, 10, 40, 5, 30], [2, 1, -1, -1, -1]],
          [[1, 2 / 3, 2 / 3, 1 / 3, 1 / 3], [1, 2 / 3, -INF, -INF, -INF]], THREE_SCORES, THREE_IDS, k=5)


def test_three_models_average_and_round_robin():
    check("average", [[20, 10, 30, 40, 5], [1, 2, -1, -1, -1]],
          [[(0.8 + 0.7) / 3, 0.9 / 3, 0.6 / 3, 0.5 / 3, 0.4 / 3], [0.3 / 3, (0.2 + 0.1) / 3, -INF, -INF, -INF]],
          THREE_SCORES, THREE_IDS, k=5)
    # Row 0: 10, 20, 40, (20), 30, (10)... then 5 at rank 1 of model 2.
    check("round_robin", [[10, 20, 40, 30, 5], [1, 2, -1, -1, -1]],
          [[(2 + 3 / 4) / 3, (2 + 2 / 4) / 3, (2 + 1 / 4) / 3, (1 + 2 / 4) / 3, (1 + 1 / 4) / 3],
           [(2 + 3 / 4) / 3, (2 + 2 / 4) / 3, -INF, -INF, -INF]], THREE_SCORES, THREE_IDS, k=5)


def test_output_is_cut_to_k():
    scores, ids = combine(TWO_SCORES, TWO_IDS, "average", 1)
    np.testing.assert_array_equal(ids, [[2], [3]])
    np.testing.assert_allclose(scores, [[1.5], [2.5]])


def reference(scores_list, ids_list, method, k):
    """Row by row with dicts and, for round_robin, the literal interleaving."""
    num_models, mm = len(scores_list), max(i.shape[1] for i in ids_list)
    out_scores, out_ids = np.full((len(ids_list[0]), k), -np.inf), np.full((len(ids_list[0]), k), -1)
    for row in range(len(ids_list[0])):
        lists = [[(int(i), float(s)) for i, s in zip(ids[row], scores[row]) if i >= 0]
                 for scores, ids in zip(scores_list, ids_list)]
        total = {}
        if method == "round_robin":
            for rank in range(mm):
                for m, entries in enumerate(lists):
                    if rank < len(entries) and entries[rank][0] not in total:
                        total[entries[rank][0]] = (mm - rank + (num_models - m) / (num_models + 1)) / num_models
        else:
            for entries in lists:
                values = [s for _, s in entries]
                if method == "softmax_average" and values:
                    values = softmax([v - max(values) for v in values])
                elif method == "sigmoid_average":
                    values = [sigmoid(v) for v in values]
                elif method == "rank_average":
                    values = [mm - rank for rank in range(len(values))]
                elif method == "log_average":
                    values = [math.log(max(v, 1e-30)) - math.log(1e-30) for v in values]
                for (label, _), value in zip(entries, values):
                    total[label] = total.get(label, 0.0) + value
            total = {label: value / num_models for label, value in total.items()}
        ranked = sorted(total.items(), key=lambda item: (-item[1], item[0]))[:k]
        for j, (label, value) in enumerate(ranked):
            out_ids[row, j], out_scores[row, j] = label, value
    return out_scores, out_ids


@pytest.mark.parametrize("method", METHODS)
def test_matches_a_row_by_row_reference_on_random_lists(method):
    rng = np.random.default_rng(0)
    rows, scores_list, ids_list = 50, [], []
    for width in (6, 4, 8):
        ids = np.stack([rng.permutation(15)[:width] for _ in range(rows)]).astype(np.int64)
        scores = -np.sort(-rng.normal(size=(rows, width)).astype(np.float32), axis=1)
        listed = rng.integers(0, width + 1, size=rows)  # the rest of the row is padding
        ids[np.arange(width)[None, :] >= listed[:, None]] = -1
        scores_list.append(scores)
        ids_list.append(ids)
    out_scores, out_ids = combine(scores_list, ids_list, method, 10)
    ref_scores, ref_ids = reference(scores_list, ids_list, method, 10)
    np.testing.assert_array_equal(out_ids, ref_ids)
    np.testing.assert_allclose(out_scores, ref_scores.astype(np.float32), rtol=1e-5)


@pytest.mark.parametrize("method", ["average", "softmax_average", "sigmoid_average", "rank_average", "round_robin"])
def test_a_model_with_itself_keeps_its_ranking(method):
    scores, ids = TWO_SCORES[0], TWO_IDS[0]
    out_scores, out_ids = combine([scores, scores], [ids, ids], method, 3)
    np.testing.assert_array_equal(out_ids, ids)
    if method == "average":
        np.testing.assert_array_equal(out_scores[ids >= 0], scores[ids >= 0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown ensemble method 'median'; known: average, softmax_average"):
        combine(TWO_SCORES, TWO_IDS, "median", 3)
    with pytest.raises(ValueError, match="k must be >= 1"):
        combine(TWO_SCORES, TWO_IDS, "average", 0)
    with pytest.raises(ValueError, match="model 1"):
        combine([TWO_SCORES[0], TWO_SCORES[1][:1]], [TWO_IDS[0], TWO_IDS[1][:1]], "average", 3)
    empty_scores, empty_ids = combine([np.zeros((0, 2), np.float32)] * 2, [np.zeros((0, 2), np.int64)] * 2,
                                      "softmax_average", 3)
    assert empty_scores.shape == empty_ids.shape == (0, 3)


# === python -m tfxc.ensemble ===
@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """Two tiny models on the same converted data, trained with different seeds."""
    tmp = tmp_path_factory.mktemp("ensemble")
    config = tiny_config(tmp)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp / "a"), timeout=120)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp / "b"), "--set", "runtime.seed=11",
            timeout=120)
    return str(tmp / "a"), str(tmp / "b")


def ensemble_json(*args):
    return json.loads(run_cli("tfxc.ensemble", *args, "--json", timeout=120).stdout.strip().splitlines()[-1])


def test_cli_ensembles_two_models(two_models):
    a, b = two_models
    result = ensemble_json("--model-dir", a, "--model-dir", b, "--method", "softmax_average")
    assert result["method"] == "softmax_average" and result["split"] == "test"
    assert result["list_size"] == 40  # --list-size 100, clipped to the 40 labels
    assert 0.0 <= result["ensemble"]["P@1"] <= 100.0 and result["ensemble"]["num_points"] == 256
    for model, path in zip(result["models"], (a, b)):  # each model's own metrics are its training run's
        with open(f"{path}/metrics.json") as f:
            trained = json.load(f)
        assert model["model_dir"] == path
        assert model["P@1"] == round(trained["P@1"], 4) and model["PSP@5"] == round(trained["PSP@5"], 4)


def test_cli_a_model_with_itself_under_average_is_that_model(two_models):
    a, _ = two_models
    result = ensemble_json("--model-dir", a, "--model-dir", a, "--method", "average", "--list-size", "7")
    assert result["list_size"] == 7
    model = {k: v for k, v in result["models"][0].items() if k != "model_dir"}
    assert result["ensemble"] == model


def test_cli_refuses_bad_arguments(capsys):
    from tfxc.ensemble import main

    a, b = "model-a", "model-b"  # checked before any model directory is read
    with pytest.raises(SystemExit) as exit_info:
        main(["--model-dir", a])
    assert exit_info.value.code == 2
    assert "needs at least 2 --model-dir, got 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model-dir", a, "--model-dir", b, "--method", "median"])
    assert "unknown --method 'median'; known: average, softmax_average, sigmoid_average" in capsys.readouterr().err


def test_models_of_different_data_are_refused(tmp_path):
    from tfxc.data.info import DatasetInfo
    from tfxc.ensemble import _check_same_data

    def info(num_labels, test_points):
        splits = {"train": {"num_points": 10}, "test": {"num_points": test_points}}
        return DatasetInfo(str(tmp_path), 5, num_labels, splits, np.ones(num_labels, np.int64))

    _check_same_data("m1", info(4, 3), "m2", info(4, 3), "test")
    with pytest.raises(TfxcError, match=r"m1 and m2 were not trained on the same converted data \(4 vs 6 labels; "
                                        r"3 vs 2 test points\)"):
        _check_same_data("m1", info(4, 3), "m2", info(6, 2), "test")


def test_log_average_of_full_softmax_lists_ranks_as_the_averaged_logits():
    rng = np.random.default_rng(4)
    logits = [rng.normal(size=(6, 9)) for _ in range(3)]
    scores, ids = [], []
    for z in logits:  # each model's full list, best first: probabilities
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        order = np.argsort(-p, axis=1, kind="stable")
        scores.append(np.take_along_axis(p, order, 1).astype(np.float32))
        ids.append(order.astype(np.int64))
    _, got = combine(scores, ids, "log_average", 9)
    np.testing.assert_array_equal(got, np.argsort(-np.mean(logits, axis=0), axis=1, kind="stable"))
