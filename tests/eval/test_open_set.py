"""Open-set and verification metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc.eval.open_set import auroc, fpr_at_tpr, pair_similarities, tar_at_far


def test_auroc_counts_ties_as_half():
    # Pairs: 3>1, 3>2, 2>1, 2=2 (half): 3.5 of 4.
    assert auroc([3, 2], [1, 2]) == pytest.approx(0.875)
    assert auroc([5, 6], [1, 2]) == 1.0 and auroc([1, 2], [5, 6]) == 0.0
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 400), rng.normal(0, 1, 500)
    brute = np.mean(pos[:, None] > neg[None, :]) + 0.5 * np.mean(pos[:, None] == neg[None, :])
    assert auroc(pos, neg) == pytest.approx(brute, abs=1e-12)


def test_fpr_at_tpr_uses_the_threshold_that_keeps_the_share_of_positives():
    positives = np.arange(1, 21, dtype=float)             # 20 positives; 95 % = 19 of them: threshold 2
    negatives = np.array([0.5, 1.5, 2.0, 2.5, 30.0])
    assert fpr_at_tpr(positives, negatives, 0.95) == pytest.approx(3 / 5)   # 2.0, 2.5 and 30 are accepted
    assert fpr_at_tpr(positives, negatives, 0.5) == pytest.approx(1 / 5)    # threshold 11


def test_tar_at_far_picks_the_lowest_threshold_within_the_false_accept_budget():
    impostor = np.linspace(0, 1, 1000, endpoint=False)     # 0.000 .. 0.999
    genuine = np.array([0.9995, 0.995, 0.95, 0.5])
    # FAR 1e-3: one impostor may pass -> threshold 0.998 (only 0.999 above): one genuine pair accepted.
    assert tar_at_far(genuine, impostor, 1e-3) == pytest.approx(0.25)
    # FAR 1e-2: ten may pass -> threshold 0.989: 0.9995 and 0.995 accepted.
    assert tar_at_far(genuine, impostor, 1e-2) == pytest.approx(0.5)


def test_pairs_split_into_genuine_and_impostor():
    embeddings = np.array([[1, 0], [2, 0], [0, 3], [1, 1]], float)
    genuine, impostor = pair_similarities(embeddings, [0, 0, 1, 1])
    np.testing.assert_allclose(sorted(genuine), sorted([1.0, np.sqrt(0.5)]))
    assert impostor.size == 4
    np.testing.assert_allclose(sorted(impostor), sorted([0.0, np.sqrt(0.5), 0.0, np.sqrt(0.5)]))
