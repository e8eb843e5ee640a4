"""Verification metrics against scikit-learn's ROC and a brute-force LFW 10-fold protocol, on random scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from tfxc.eval.open_set import tar_at_far
from tfxc.eval.verification import best_threshold, kfold_accuracy, roc_auc, roc_curve, verification_report


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_roc_is_sklearns(seed, ties):
    rng = np.random.default_rng(seed)
    same = rng.random(3000) < 0.3
    scores = rng.normal(size=3000) + 1.2 * same
    if ties:
        scores = np.round(scores, 1)  # many equal similarities
    far, tar, thresholds = roc_curve(scores, same)
    ref_far, ref_tar, ref_thresholds = sklearn_roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_array_equal(far, ref_far)
    np.testing.assert_array_equal(tar, ref_tar)
    np.testing.assert_array_equal(thresholds[1:], ref_thresholds[1:])  # sklearn's first is max + 1 or inf
    assert roc_auc(scores, same) == pytest.approx(roc_auc_score(same, scores), abs=1e-12)


def test_tar_at_far_reads_off_the_roc():
    rng = np.random.default_rng(3)
    same = rng.random(20000) < 0.1
    scores = rng.normal(size=20000) + 2.0 * same
    far, tar, thresholds = roc_curve(scores, same)
    for rate in (1e-1, 1e-2, 1e-3):
        # The lowest threshold whose FAR is at most the rate: TAR there (strictly above it in tar_at_far's
        # definition, so the point before it on the ROC when scores are distinct).
        allowed = np.flatnonzero(far <= rate)
        assert tar_at_far(scores[same], scores[~same], rate) == pytest.approx(tar[allowed[-1]], abs=1.0 / same.sum())


def brute_force_best(scores, same):
    candidates = np.r_[scores.min() - 1, np.sort(scores), scores.max() + 1]
    return max(np.mean((scores >= t) == same) for t in candidates)


def test_best_threshold_is_the_best_cut():
    rng = np.random.default_rng(4)
    for trial in range(20):
        same = rng.random(200) < rng.uniform(0.1, 0.9)
        scores = np.round(rng.normal(size=200) + same, 1)
        threshold, accuracy = best_threshold(scores, same)
        assert accuracy == pytest.approx(brute_force_best(scores, same))
        assert np.mean((scores >= threshold) == same) == pytest.approx(accuracy)


def test_kfold_accuracy_chooses_each_threshold_on_the_other_folds():
    rng = np.random.default_rng(5)
    folds = np.repeat(np.arange(10), 600)
    same = np.tile(np.repeat([True, False], 300), 10)  # LFW's pairs.txt order: 300 genuine, 300 impostor a fold
    scores = rng.normal(size=6000) + 2.5 * same
    report = kfold_accuracy(scores, same, folds)
    expected = []
    for k in range(10):
        held = folds == k
        threshold, _ = best_threshold(scores[~held], same[~held])
        expected.append(np.mean((scores[held] >= threshold) == same[held]))
    assert report["accuracy"] == pytest.approx(np.mean(expected) * 100)
    assert report["folds"] == 10 and 85 < report["accuracy"] < 95  # two unit normals 2.5 apart: ~89 %
    # Perfectly separated scores verify perfectly.
    assert kfold_accuracy(same * 1.0 + rng.random(6000) * 0.1, same, folds)["accuracy"] == 100.0


def test_report_skips_fars_the_impostors_cannot_measure():
    rng = np.random.default_rng(6)
    same = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    scores = rng.normal(size=600) + same
    report = verification_report(scores, same)
    assert report["impostor_pairs"] == 300 and "tar@far=0.01" in report and "tar@far=0.001" not in report
    assert report["roc_auc"] == pytest.approx(roc_auc_score(same, scores) * 100)
    assert report["tar@far=0.01"] == pytest.approx(tar_at_far(scores[same], scores[~same], 0.01) * 100)
