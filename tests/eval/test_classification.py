"""ClassificationMetrics against scikit-learn on random label sets, streamed in batches and summed over shards."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.preprocessing import MultiLabelBinarizer

from tfxc.eval.classification import CLASSIFICATION_METRICS, ClassificationMetrics, predicted_sets


def random_sets(rng, rows, labels, mean_size, width):
    """Each row's label set (sorted ids; some rows empty) and a padded [rows, width] array of the same sets."""
    sets = [np.sort(rng.choice(labels, size=min(rng.poisson(mean_size), width), replace=False)) for _ in range(rows)]
    padded = np.full((rows, width), -1, np.int64)
    for i, s in enumerate(sets):
        padded[i, :len(s)] = rng.permutation(s)  # predicted sets come in score order, not sorted
    return sets, padded


def feed(metrics, pred, truth, batch):
    for start in range(0, len(truth), batch):
        part = truth[start:start + batch]
        indptr = np.concatenate([[0], np.cumsum([len(s) for s in part])])
        indices = np.concatenate([s for s in part] + [np.zeros(0, np.int64)]).astype(np.int64)
        metrics.update(pred[start:start + batch], indptr, indices)


@pytest.mark.parametrize("seed,labels,mean_size", [(0, 7, 1.5), (1, 40, 3.0), (2, 200, 0.8)])
def test_multi_label_sets_match_scikit_learn(seed, labels, mean_size):
    rng = np.random.default_rng(seed)
    truth, _ = random_sets(rng, 300, labels, mean_size, 6)
    pred_sets, pred = random_sets(rng, 300, labels, mean_size, 6)
    shards = [ClassificationMetrics(labels), ClassificationMetrics(labels)]
    feed(shards[0], pred[:170], truth[:170], batch=32)
    feed(shards[1], pred[170:], truth[170:], batch=50)
    got = ClassificationMetrics(labels).load_sums(shards[0].sums() + shards[1].sums()).result()

    binarizer = MultiLabelBinarizer(classes=range(labels))
    y_true, y_pred = binarizer.fit_transform(truth), binarizer.transform(pred_sets)
    present = np.flatnonzero(y_true.any(axis=0) | y_pred.any(axis=0))
    for average in ("micro", "macro", "weighted", "samples"):
        p, r, f, _ = sk.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0,
                                                        labels=present if average == "macro" else None)
        assert got[f"P-{average}"] == pytest.approx(100 * p, abs=1e-9), average
        assert got[f"R-{average}"] == pytest.approx(100 * r, abs=1e-9), average
        assert got[f"F1-{average}"] == pytest.approx(100 * f, abs=1e-9), average
    assert got["accuracy"] == pytest.approx(100 * sk.accuracy_score(y_true, y_pred))
    assert list(got) == list(CLASSIFICATION_METRICS)


def test_top_label_of_a_multi_class_model_matches_scikit_learn_and_its_report():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 12, size=500)
    scores = rng.random((500, 5)).astype(np.float32)
    ids = np.stack([rng.permutation(12)[:5] for _ in range(500)])
    ids[:250, 0] = y[:250]  # half the top labels right
    order = np.argsort(-scores, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    metrics = ClassificationMetrics(12)
    top = predicted_sets(ids, scores, threshold=None)
    assert top.shape == (500, 1)
    metrics.update(top, np.arange(501), y)
    got = metrics.result()
    y_pred = ids[:, 0]
    assert got["accuracy"] == pytest.approx(100 * sk.accuracy_score(y, y_pred))
    assert got["F1-micro"] == pytest.approx(got["accuracy"])
    assert got["F1-macro"] == pytest.approx(100 * sk.f1_score(y, y_pred, average="macro", zero_division=0))
    report = metrics.report([f"c{i}" for i in range(12)])
    reference = sk.classification_report(y, y_pred, output_dict=True, zero_division=0)
    assert [row["support"] for row in report] == sorted((row["support"] for row in report), reverse=True)
    for row in report:
        want = reference[row["label"][1:]]
        assert row["f1"] == pytest.approx(100 * want["f1-score"]) and row["support"] == want["support"]
        assert row["precision"] == pytest.approx(100 * want["precision"])


def test_thresholded_sets_and_edge_cases():
    ids = np.array([[3, 1, 0], [2, 0, -1]])
    scores = np.array([[0.9, 0.6, 0.4], [0.5, 0.2, 0.0]], np.float32)
    np.testing.assert_array_equal(predicted_sets(ids, scores, threshold=0.5), [[3, 1, -1], [-1, -1, -1]])
    metrics = ClassificationMetrics(4)
    assert all(np.isnan(v) for v in metrics.result().values())
    metrics.update(predicted_sets(ids, scores, threshold=0.5), np.array([0, 2, 2]), np.array([1, 3]))
    got = metrics.result()  # row 0 exact, row 1 (no labels, none predicted) exact too
    assert got["accuracy"] == 100.0 and got["P-micro"] == 100.0 and got["F1-samples"] == 50.0
    with pytest.raises(ValueError, match="label ids"):
        metrics.update(np.array([[4]]), np.array([0, 0]), np.zeros(0, np.int64))


def test_a_threshold_on_a_softmax_says_how_many_labels_it_can_keep(tmp_path):
    import json

    from tfxc.eval.classification import export_threshold_meaning, threshold_meaning

    # A row's softmax scores sum to 1: at most one above 0.5, three above 0.3 or 0.25 (four would pass 1).
    for threshold, most in ((0.5, "at most 1 label(s) a row"), (0.3, "at most 3 label(s)"),
                            (0.25, "at most 3 label(s)"), (0.0, "every label")):
        note = threshold_meaning({"name": "softmax"}, threshold)
        assert note.startswith("the model's head is a softmax: a row's scores sum to 1") and most in note, note
    assert threshold_meaning({"name": "one_vs_all"}, 0.5) is None  # σ > 0.5: the label's own probability
    assert threshold_meaning({"name": "label_tree"}, 0.5) is None
    # Every head whose scores are one softmax over the labels, named by config dict, dataclass or name.
    from tfxc.heads.linear import LinearHeadConfig

    assert "the model's head is a softmax" in threshold_meaning(LinearHeadConfig(), 0.5)
    assert "at most 1 label(s) a row" in threshold_meaning("mhs", 0.5)
    assert threshold_meaning("mach", 0.5) is None and threshold_meaning(None, 0.5) is None
    # An export's head is read off its config asset; no asset (or a damaged one) says nothing.
    assets = tmp_path / "assets.extra" / "tfxc"
    assert export_threshold_meaning(str(tmp_path), 0.5) is None
    assets.mkdir(parents=True)
    (assets / "config.json").write_text(json.dumps({"model": {"head": {"name": "softmax"}}}))
    assert "at most 1 label(s) a row" in export_threshold_meaning(str(tmp_path), 0.5)
    (assets / "config.json").write_text("{not json")
    assert export_threshold_meaning(str(tmp_path), 0.5) is None
