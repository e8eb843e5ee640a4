"""The dual-variable updates of SCENT and its baselines against a NumPy transcription of algorithms.md §4.3."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dual_reference import numpy_step

from tfxc._tf import tf
from tfxc.losses.dual_updates import (dual_step, gamma_at_epoch, in_batch_margins, log_mean_negatives, scent_gamma,
                                  weight_loss)

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(6, 5)).astype(np.float32) * 3
COLUMNS = np.array([0, 1, 2, 3, 4, 0])


def numpy_margins():
    ell = LOGITS - LOGITS[np.arange(6), COLUMNS][:, None]
    ell[np.arange(6), COLUMNS] = -np.inf
    return ell


def test_in_batch_margins_mask_the_own_label():
    ell = in_batch_margins(tf.constant(LOGITS), tf.constant(COLUMNS)).numpy()
    np.testing.assert_allclose(ell, numpy_margins(), rtol=1e-6)
    m = np.exp(numpy_margins()).sum(1) / 4
    np.testing.assert_allclose(log_mean_negatives(tf.constant(ell)).numpy(), np.log(m), rtol=1e-5)


@pytest.mark.parametrize("algorithm, gamma, extra", [
    ("asgd", 0.5, {}), ("softplus", 0.5, {"rho": 1e-3}), ("softplus", 0.5, {"rho": 1.0}),
    ("umax", 0.5, {"delta": 1.0}), ("umax", 0.5, {"delta": math.inf}), ("sox", 0.3, {}), ("scent", 2.0, {}),
])
def test_dual_step_matches_numpy_including_first_visits(algorithm, gamma, extra):
    nu = np.array([0.0, 0.7, -1.2, 0.0, 3.0, 0.2], np.float32)  # rows 0 and 3 are first visits
    ell = numpy_margins()
    got_new, got_tilde = dual_step(algorithm, tf.constant(nu), tf.constant(ell), gamma, **extra)
    want_new, want_tilde = numpy_step(algorithm, nu.astype(np.float64), ell.astype(np.float64), gamma, **extra)
    np.testing.assert_allclose(got_new.numpy(), want_new, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_tilde.numpy(), want_tilde, rtol=1e-5, atol=1e-5)


def test_first_visit_sets_nu_to_log_m_and_asgd_then_stays():
    ell = tf.constant(numpy_margins())
    new, tilde = dual_step("asgd", tf.zeros([6]), ell, 0.5)
    np.testing.assert_allclose(tilde.numpy(), log_mean_negatives(ell).numpy(), rtol=1e-6)
    np.testing.assert_allclose(new.numpy(), tilde.numpy(), rtol=1e-6)  # 1 − m̂ e^{−log m̂} = 0


def test_scent_gamma_test_vector():
    assert float(scent_gamma(tf.constant(0.0), 12.0)) == pytest.approx(1 / (1 + math.exp(-12)), rel=1e-7)
    assert float(scent_gamma(tf.constant(0.0), 12.0)) == pytest.approx(0.9999939, abs=1e-7)


def test_weight_losses_and_their_gradient():
    ell = tf.constant(numpy_margins())
    nu = tf.constant(np.linspace(-1, 1, 6).astype(np.float32))
    np.testing.assert_allclose(weight_loss("bsgd", ell).numpy(), log_mean_negatives(ell).numpy() + math.log(4),
                               rtol=1e-5)
    expected = np.exp(numpy_margins() - nu.numpy()[:, None]).sum(1) / 4
    np.testing.assert_allclose(weight_loss("scent", ell, nu).numpy(), expected, rtol=1e-5)
    a = np.exp(numpy_margins() - nu.numpy()[:, None])
    np.testing.assert_allclose(weight_loss("softplus", ell, nu, rho=0.5).numpy(), np.log1p(0.5 * a).mean(1) / 0.5,
                               rtol=1e-5)
    # ν̃ is a constant: the gradient w.r.t. ν is zero, w.r.t. the margins it is e^{ℓ−ν̃}/(K−1).
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([ell, nu])
        loss = tf.reduce_sum(weight_loss("sox", ell, nu))
    assert tape.gradient(loss, nu) is None
    np.testing.assert_allclose(tape.gradient(loss, ell).numpy(), np.exp(numpy_margins() - nu.numpy()[:, None]) / 4,
                               rtol=1e-5)


def test_gamma_schedules():
    assert gamma_at_epoch("asgd", 1.0, 50, 50) == pytest.approx(0.0, abs=1e-12)
    assert gamma_at_epoch("asgd", 1.0, 25, 50) == pytest.approx(0.5)
    assert gamma_at_epoch("sox", 1e-5, 50, 50) == pytest.approx(1e-5)
    assert gamma_at_epoch("sox", 1e-5, 1, 50) == pytest.approx(0.5 * (1 - 1e-5) * (1 + math.cos(math.pi / 50)) + 1e-5)
    assert gamma_at_epoch("sox", 0.0, 50, 50) == pytest.approx(4.177 * 50 ** -0.7265)
    assert gamma_at_epoch("scent", 12.0, 7, 50) == 12.0
