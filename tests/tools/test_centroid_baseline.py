"""tools/centroid_baseline.py: the nearest-centroid classifier's P@k and PSP@k, by hand and on a tiny set."""

from __future__ import annotations

import os
import sys

import numpy as np
import scipy.sparse
from helpers import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))

import centroid_baseline  # noqa: E402


def test_precision_and_psp_by_hand():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]])
    y = scipy.sparse.csr_matrix(np.array([[0, 0, 1], [1, 1, 0]], np.float32))
    inverse_propensity = np.array([1.0, 2.0, 4.0])
    p1, p2, psp2 = centroid_baseline.precision_and_psp(scores, y, inverse_propensity, k=2)
    # Row 0 ranks 0, 2 (one hit, label 2); row 1 ranks 1, 2 (one hit, label 1).
    assert (p1, p2) == (50.0, 50.0)
    # Gained 4 + 2 of the best 4 + (2 + 1).
    np.testing.assert_allclose(psp2, 100 * 6 / 7)


def test_topic_shaped_labels_are_found_by_their_centroids(tmp_path, capsys):
    from tfxc.config.data_schema import SyntheticConfig
    from tfxc.data.synthetic import SyntheticXmc

    rows = list(SyntheticXmc(SyntheticConfig(num_train=2000, num_test=10, num_features=500, num_labels=50,
                                             labels_per_point=1.0, features_per_label=10, features_per_point=20,
                                             noise=0.1, seed=3)).rows("train"))
    indptr = np.cumsum([0] + [len(r.feat_idx) for r in rows])
    x = scipy.sparse.csr_matrix((np.concatenate([r.feat_val for r in rows]), np.concatenate([r.feat_idx for r in rows]),
                                 indptr), shape=(len(rows), 500))
    y = scipy.sparse.csr_matrix((np.ones(len(rows), np.float32), [r.labels[0] for r in rows], np.arange(len(rows) + 1)),
                                shape=(len(rows), 50))
    scipy.sparse.save_npz(tmp_path / "X.trn.npz", x)
    scipy.sparse.save_npz(tmp_path / "Y.trn.npz", y)
    centroid_baseline.main([str(tmp_path), "--support", "10"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["centroids", "idf-weighted centroids"]
    assert float(lines[0].split()[2]) > 90.0  # P@1 of 50 labels that own their features
