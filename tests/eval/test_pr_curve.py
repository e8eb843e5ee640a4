"""tfxc.eval.pr_curve: thresholded multi-label precision and recall from top-k lists, against a dense count."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.eval.pr_curve import PrCurve


def random_split(rows=40, labels=12, k=5, seed=0):
    rng = np.random.default_rng(seed)
    truth = [rng.choice(labels, rng.integers(1, 4), replace=False) for _ in range(rows)]
    scores = np.round(rng.random((rows, labels)), 2)  # rounded: ties between labels, as real scores have
    ids = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    ids[3, 4] = -1  # a beam that reached fewer than k labels
    return truth, np.take_along_axis(scores, np.maximum(ids, 0), 1), ids


def test_each_point_is_the_micro_precision_and_recall_of_predicting_at_least_the_threshold():
    truth, scores, ids = random_split()
    curve = PrCurve()
    for start in (0, 16):  # two batches
        part = slice(start, start + 16 if start == 0 else None)
        rows = truth[part]
        curve.update(scores[part], ids[part], np.r_[0, np.cumsum([len(t) for t in rows])], np.concatenate(rows))
    thresholds, precision, recall = curve.curve()
    assert np.all(np.diff(thresholds) < 0)
    total = sum(len(t) for t in truth)
    for t, p, r in zip(thresholds, precision, recall):
        predicted = [(i, j) for i in range(len(truth)) for j, s in zip(ids[i], scores[i]) if j >= 0 and s >= t]
        correct = sum(j in truth[i] for i, j in predicted)
        assert (p, r) == pytest.approx((correct / len(predicted), correct / total))


def test_the_evaluate_flag_writes_the_curve_and_its_picture(tmp_path, capsys):
    from tfxc.evaluate import write_pr_curve_of

    truth, scores, ids = random_split()

    class Lists:  # what `Evaluator.predictions` yields
        def predictions(self):
            labels = tf.ragged.constant([list(t) for t in truth], tf.int64)
            yield scores, ids, labels

    write_pr_curve_of(Lists(), str(tmp_path / "pr.csv"))
    lines = (tmp_path / "pr.csv").read_text().splitlines()
    assert lines[0] == "threshold,precision,recall" and len(lines) > 10
    assert ET.parse(tmp_path / "pr.svg").getroot().tag.endswith("svg")
    assert "precision-recall curve written to" in capsys.readouterr().err
