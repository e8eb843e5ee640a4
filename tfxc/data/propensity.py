"""Label propensities (Jain et al., 2016): a statistic of the training labels, read by the propensity-scored
metrics (PSP@k, PSnDCG@k) and by the losses that weigh rare labels up."""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_POINTS_FOR_PROPENSITIES", "dataset_propensities", "propensities"]

# The propensity model needs log N > 1; smaller (toy) sets get no PS metrics.
MIN_POINTS_FOR_PROPENSITIES = 3


def propensities(label_freq: np.ndarray, num_points: int, a: float = 0.55, b: float = 1.5) -> np.ndarray:
    """Label propensities of Jain, Prabhu & Varma (2016).

    The chance that a relevant label ``l`` is actually observed is modelled as

        p_l = 1 / (1 + C · exp(-A · log(N_l + B))),   C = (log N - 1) · (B + 1)^A,

    with natural logarithms, ``N_l`` the number of training points tagged with
    ``l`` and ``N`` the number of training points. Rare labels get small
    propensities (large weights ``1 / p_l``) and ``p_l → 1`` as ``N_l → ∞``.
    pyxclib's ``compute_inv_propesity`` returns ``1 / p_l`` of the same model.

    Reference:
        Jain, Prabhu & Varma, 2016, "Extreme Multi-label Loss Functions for
        Recommendation, Tagging, Ranking & Other Missing Label Applications",
        KDD, Section 4.

    Args:
        label_freq: ``N_l``, the training-set frequency of every label; any
            real dtype, shape ``[L]``. Usually
            ``np.bincount(Y.indices, minlength=L)`` for a CSR train matrix
            ``Y``.
        num_points: ``N``, the number of training points (>= 3, so that
            ``log N > 1``).
        a: ``A``. The paper uses 0.55 by default, 0.5 for Wikipedia-derived
            data sets and 0.6 for Amazon-derived ones.
        b: ``B``. 1.5 by default, 0.4 for Wikipedia and 2.6 for Amazon.

    Returns:
        float64 ``[L]``: ``p_l`` for every label, in ``(0, 1)``.

    Raises:
        ValueError: if ``label_freq`` is not 1-D or has negative entries, or
            ``num_points < 3``.

    Example:
        >>> p = propensities(np.array([0, 1, 10, 1000]), num_points=100)
        >>> np.round(p, 4).tolist()
        [0.1732, 0.2171, 0.391, 0.8822]
    """
    freq = np.asarray(label_freq, dtype=np.float64)
    if freq.ndim != 1:
        raise ValueError(f"label_freq must be 1-D [L], got shape {freq.shape}")
    if freq.size and freq.min() < 0:
        raise ValueError("label_freq must be non-negative")
    if num_points < 3:
        raise ValueError(f"num_points must be >= 3 (the model needs log N > 1), got {num_points}")
    c = (np.log(num_points) - 1.0) * (b + 1.0) ** a
    return 1.0 / (1.0 + c * np.exp(-a * np.log(freq + b)))


def dataset_propensities(info, a: float = 0.55, b: float = 1.5) -> np.ndarray | None:
    """Propensities of a converted data set's train labels, float64 [L] (None for < 3 train points).

    Args:
      info: a `tfxc.data.info.DatasetInfo` (its `label_freq` and train split size).
      a, b: the model's A and B (see `propensities`).
    """
    n = info.num_points("train")
    return propensities(info.label_freq, n, a, b) if n >= MIN_POINTS_FOR_PROPENSITIES else None
