"""Open-set detection and verification metrics from scores (no model in here).

Open set (Hendrycks & Gimpel, ICLR 2017, the maximum-softmax-probability
baseline; Larson et al., EMNLP 2019 for CLINC150's out-of-scope protocol): a
score per example, higher = more in-scope; AUROC and the false-positive rate
at 95 % true-positive rate with in-scope as the positive class.

Verification (the face-recognition protocol, e.g. IJB-B/C's TAR@FAR): a
similarity per pair; the true-accept rate at the threshold whose false-accept
rate over impostor pairs is at most `far`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats


def auroc(positive_scores, negative_scores) -> float:
    """P(a positive scores above a negative) + ½·P(tie): the area under the ROC curve, in [0, 1].

    The Mann–Whitney U statistic with average ranks for ties, O(n log n).
    """
    pos, neg = np.asarray(positive_scores, np.float64), np.asarray(negative_scores, np.float64)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    ranks = scipy.stats.rankdata(np.concatenate([pos, neg]))
    u = ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def fpr_at_tpr(positive_scores, negative_scores, tpr: float = 0.95) -> float:
    """The share of negatives accepted at the highest threshold that accepts at least `tpr` of the positives
    (accept: score ≥ threshold)."""
    pos = np.sort(np.asarray(positive_scores, np.float64))[::-1]
    if pos.size == 0:
        raise ValueError("fpr_at_tpr needs positive scores")
    threshold = pos[max(math.ceil(tpr * pos.size) - 1, 0)]
    return float(np.mean(np.asarray(negative_scores, np.float64) >= threshold))


def tar_at_far(genuine_scores, impostor_scores, far: float) -> float:
    """The share of genuine pairs accepted (similarity > threshold) at the lowest threshold whose false-accept
    rate over the impostor pairs is at most `far`."""
    impostor = np.sort(np.asarray(impostor_scores, np.float64))[::-1]
    if impostor.size == 0:
        raise ValueError("tar_at_far needs impostor scores")
    allowed = int(math.floor(far * impostor.size))  # impostors that may score above the threshold
    threshold = impostor[min(allowed, impostor.size - 1)]
    return float(np.mean(np.asarray(genuine_scores, np.float64) > threshold))


def pair_similarities(embeddings, groups) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of every unordered pair of rows: (genuine: same group, impostor: different groups).

    Args:
      embeddings: float [n, dim] (normalised here).
      groups: int [n], e.g. the intent of each row.
    """
    x = np.asarray(embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    groups = np.asarray(groups)
    upper = np.triu_indices(x.shape[0], 1)
    similarity = (x @ x.T)[upper]
    same = groups[upper[0]] == groups[upper[1]]
    return similarity[same], similarity[~same]
