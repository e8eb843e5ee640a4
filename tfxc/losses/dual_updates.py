"""Dual-variable updates for the compositional entropic risk (log-sum-exp over a huge class set).

Reference: "A Geometry-Aware Efficient Algorithm for Compositional Entropic Risk Minimization"
(SCENT, arXiv 2602.02877), with the baselines it compares against; spec: algorithms.md §4.

The extreme-classification objective is rewritten with one dual variable ν_i per training example,
using log m = min_ν (m e^{−ν} + ν − 1):

    min_W min_ν (1/n) Σ_i [ m_i(W) e^{−ν_i} + ν_i − 1 ],   m_i(W) = mean over negatives k of exp(ℓ_ik),
    ℓ_ik = w_kᵀh(x_i) − w_{y_i}ᵀh(x_i).

Per batch, m_i is estimated from the batch's unique labels U (K = |U|) with the row's own label
masked: m̂_i = (1/(K−1)) Σ_{k∈U, k≠y_i} exp(ℓ_ik). Each algorithm is a pure function of
(ν_batch, ℓ, hyper-parameters) -> (ν_new, ν̃), where ν̃ is the constant the weight loss uses, in the
spirit of optax's (init, update) pairs: the state (ν, a vector of n floats indexed by row id) is
explicit, so the maths is testable in isolation and the checkpoint content is obvious.

Shapes: ℓ is float32 [b, K] with −inf at each row's own label; ν is float32 [b].
"""

from __future__ import annotations

import math

from tfxc._tf import tf

ALGORITHMS = ("bsgd", "asgd", "softplus", "umax", "sox", "scent")
DUAL_ALGORITHMS = ("asgd", "softplus", "umax", "sox", "scent")


def in_batch_margins(logits: tf.Tensor, label_columns: tf.Tensor) -> tf.Tensor:
    """ℓ_ik = z_ik − z_{i,y_i} over the batch's unique labels, with ℓ_{i,y_i} = −inf.

    Args:
      logits: float32 [b, K], the logits of the batch's K unique labels.
      label_columns: int [b], the column of each row's own label in `logits`.

    Returns:
      float32 [b, K].
    """
    own = tf.gather(logits, label_columns, batch_dims=1)
    mask = tf.one_hot(label_columns, tf.shape(logits)[1], on_value=True, off_value=False)
    return tf.where(mask, tf.constant(-math.inf, logits.dtype), logits - own[:, None])


def log_mean_negatives(margins: tf.Tensor) -> tf.Tensor:
    """log m̂_i = logsumexp_k ℓ_ik − log(K − 1) (the masked column contributes 0). float32 [b]."""
    k = tf.cast(tf.shape(margins)[1], margins.dtype)
    return tf.reduce_logsumexp(margins, axis=1) - tf.math.log(k - 1.0)


def softplus_mean(margins: tf.Tensor, nu: tf.Tensor, rho: float) -> tf.Tensor:
    """q̂_i = mean over all K columns of a/(1+ρa), a = exp(ℓ_ik − ν_i) (the masked column adds 0). [b]."""
    # a/(1+ρa) = σ(ℓ − ν + log ρ)/ρ: no overflow when ℓ − ν is large.
    return tf.reduce_mean(tf.sigmoid(margins - nu[:, None] + math.log(rho)), axis=1) / rho


def scent_gamma(nu: tf.Tensor, g: float) -> tf.Tensor:
    """SCENT's per-sample step γ_i = σ(g + ν_i) = α e^{ν_i} / (1 + α e^{ν_i}), α = e^g."""
    return tf.sigmoid(g + nu)


def _moving_average(nu, log_m, gamma):
    # ν ← log((1 − γ) e^ν + γ m̂), evaluated in log space so large ν or m̂ cannot overflow.
    return tf.reduce_logsumexp(tf.stack([tf.math.log1p(-gamma) + nu, tf.math.log(gamma) + log_m]), axis=0)


def dual_step(algorithm: str, nu: tf.Tensor, margins: tf.Tensor, gamma, rho: float = 1.0,
              delta: float = math.inf) -> tuple[tf.Tensor, tf.Tensor]:
    """One ν update for the rows of a batch (algorithms.md §4.3).

    First-visit rule: where ν_i == 0 exactly (never visited), ν_i is first set to log m̂_i
    (for softplus: to the log of the softplus-mean at ν = 0) and used as the current value.

    Args:
      algorithm: one of DUAL_ALGORITHMS.
      nu: float32 [b], the rows' current dual variables.
      margins: float32 [b, K] from `in_batch_margins`.
      gamma: the step: γ for asgd/softplus/umax/sox (already scheduled, see
        `gamma_at_epoch`), g = log α for scent.
      rho: softplus's ρ.
      delta: U-max's δ (inf = ASGD).

    Returns:
      (ν_new [b] to store, ν̃ [b] to use in the weight loss).
    """
    log_m = tf.stop_gradient(log_mean_negatives(margins))
    margins = tf.stop_gradient(margins)
    if algorithm == "softplus":
        start = tf.math.log(softplus_mean(margins, tf.zeros_like(nu), rho))
    else:
        start = log_m
    nu = tf.where(tf.equal(nu, 0.0), start, nu)
    if algorithm == "asgd":
        return nu - gamma * (1.0 - tf.exp(log_m - nu)), nu
    if algorithm == "softplus":
        return nu - gamma * (1.0 - softplus_mean(margins, nu, rho)), nu
    if algorithm == "umax":
        stepped = nu - gamma * (1.0 - tf.exp(log_m - nu))
        new = tf.where(stepped < log_m - delta, log_m, stepped)
        return new, new
    if algorithm == "sox":
        new = _moving_average(nu, log_m, tf.cast(gamma, nu.dtype))
        return new, new
    if algorithm == "scent":
        new = _moving_average(nu, log_m, scent_gamma(nu, gamma))
        return new, new
    raise ValueError(f"unknown dual algorithm '{algorithm}'; known: {', '.join(DUAL_ALGORITHMS)}")


def weight_loss(algorithm: str, margins: tf.Tensor, nu_tilde: tf.Tensor | None = None,
                rho: float = 1.0) -> tf.Tensor:
    """Per-example loss whose gradient is the weight step, float32 [b] (ν̃ is a constant).

    * bsgd: logsumexp over the negatives (no dual variable);
    * softplus: (1/ρ) mean over all K columns of log(1 + ρ e^{ℓ_ik − ν̃_i});
    * the others: (1/(K−1)) Σ_k e^{ℓ_ik − ν̃_i}, whose gradient is e^{−ν̃_i} ∇m̂_i.
    """
    if algorithm == "bsgd":
        return tf.reduce_logsumexp(margins, axis=1)
    nu_tilde = tf.stop_gradient(nu_tilde)
    if algorithm == "softplus":
        # log(1 + ρ e^x) = softplus(x + log ρ), stable for large x.
        return tf.reduce_mean(tf.nn.softplus(margins - nu_tilde[:, None] + math.log(rho)), axis=1) / rho
    k = tf.cast(tf.shape(margins)[1], margins.dtype)
    return tf.reduce_sum(tf.exp(margins - nu_tilde[:, None]), axis=1) / (k - 1.0)


def gamma_at_epoch(algorithm: str, gamma0: float, epoch: int, total_epochs: int) -> float:
    """The γ used during epoch `epoch` (1..T), set at the start of each epoch (algorithms.md §4.3).

    asgd/softplus/umax: cosine from γ₀ to 0 at e = T; sox: ½(1−γ₀)(1+cos(πe/T)) + γ₀ (≈1 early,
    → γ₀), with γ₀ = 4.177·T^−0.7265 when given 0; scent: g is constant; bsgd: no γ.
    """
    cosine = 0.5 * (1.0 + math.cos(math.pi * epoch / total_epochs))
    if algorithm in ("asgd", "softplus", "umax"):
        return gamma0 * cosine
    if algorithm == "sox":
        g0 = gamma0 if gamma0 else 4.177 * total_epochs ** -0.7265
        return (1.0 - g0) * cosine + g0
    return gamma0
