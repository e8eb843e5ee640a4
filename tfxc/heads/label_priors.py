"""What a head takes from the train split's label counts: the weight of a label's positives in the loss (by its
propensity) and a softmax's logit adjustment (by its prior), with the check of the weight's power."""

from __future__ import annotations

import numpy as np

from tfxc.data.propensity import MIN_POINTS_FOR_PROPENSITIES, propensities
from tfxc.errors import ConfigError, DataError


def positive_label_weights(label_freq, num_points: int, power: float) -> np.ndarray:
    """float32 [L]: (1/p_l)^power per label, p_l its propensity (Jain et al., KDD 2016; A=0.55, B=1.5),
    scaled so that the training label occurrences weigh 1 on average (the loss keeps its scale)."""
    if label_freq is None or num_points < MIN_POINTS_FOR_PROPENSITIES:
        raise DataError("propensity_weight needs the train split's label counts and size")
    weights = (1.0 / propensities(label_freq, num_points)) ** power
    occurrences = np.asarray(label_freq, np.float64)
    mean = float(np.sum(weights * occurrences) / max(np.sum(occurrences), 1.0))
    return (weights / max(mean, 1e-12)).astype(np.float32)


def prior_adjustment(label_freq, tau: float) -> np.ndarray:
    """float32 [L]: −τ·log π_l, added to a softmax's logits at prediction (logit adjustment; Menon et al.,
    "Long-tail learning via logit adjustment", ICLR 2021). π_l = (N_l + 1) / (Σ N + L) is label l's share
    of the training labels, add-one smoothed so that a label absent from train gets a finite prior."""
    if label_freq is None:
        raise DataError("logit_adjustment needs the train split's label counts")
    freq = np.asarray(label_freq, np.float64)
    return (-tau * np.log((freq + 1.0) / (freq.sum() + freq.size))).astype(np.float32)


def check_propensity_weight(config, path: str) -> None:
    """Refuses a head config whose `propensity_weight` (the power α of `positive_label_weights`) is outside [0, 2]."""
    if not 0.0 <= config.propensity_weight <= 2.0:
        raise ConfigError(f"{path}.propensity_weight ({config.propensity_weight}) must be in [0, 2]")
