"""A NumPy transcription of the dual-variable updates of algorithms.md §4.3 (SCENT and its baselines).

Row by row and without vectorisation, so it reads like the spec's table; the TF
implementation in `tfxc.losses.dual_updates` and the training loop are tested against it.
"""

from __future__ import annotations

import math

import numpy as np


def numpy_step(algorithm, nu, ell, gamma, rho=1.0, delta=math.inf):
    """Row by row, exactly as the table of §4.3 reads."""
    k = ell.shape[1]
    new, tilde = np.empty_like(nu), np.empty_like(nu)
    for i in range(len(nu)):
        neg = ell[i][np.isfinite(ell[i])]
        m = np.exp(neg).sum() / (k - 1)
        v = nu[i]
        if algorithm == "softplus":
            a0 = np.exp(ell[i])
            first = np.log(np.mean(a0 / (1 + rho * a0)))
        else:
            first = np.log(m)
        if v == 0.0:
            v = first
        if algorithm == "asgd":
            new[i], tilde[i] = v - gamma * (1 - m * np.exp(-v)), v
        elif algorithm == "softplus":
            a = np.exp(ell[i] - v)
            new[i], tilde[i] = v - gamma * (1 - np.mean(a / (1 + rho * a))), v
        elif algorithm == "umax":
            s = v - gamma * (1 - m * np.exp(-v))
            nu_hat = np.log(np.exp(neg).sum()) - np.log(k - 1)
            new[i] = tilde[i] = nu_hat if s < nu_hat - delta else s
        elif algorithm == "sox":
            new[i] = tilde[i] = np.log((1 - gamma) * np.exp(v) + gamma * m)
        elif algorithm == "scent":
            g = 1 / (1 + np.exp(-(gamma + v)))
            new[i] = tilde[i] = np.log((1 - g) * np.exp(v) + g * m)
    return new, tilde
