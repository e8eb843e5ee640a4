"""Jain et al. (2016) propensities: hand values, closed forms, input checks, and a data set's propensities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tfxc.data.propensity import dataset_propensities, propensities


def test_propensities_hand_values():
    # Default A = 0.55, B = 1.5, N = 100:
    #   C = (ln 100 - 1) * 2.5^0.55 = 3.605170186 * 1.655262990 = 5.967504781
    #   N_l = 0:    1.5^-0.55    = 0.800110201 -> p = 1 / (1 + C * 0.800110201) = 1 / 5.774661451 = 0.173170325
    #   N_l = 10:   11.5^-0.55   = 0.260985385 -> p = 1 / 2.557431533 = 0.391017311
    #   N_l = 1000: 1001.5^-0.55 = 0.022368763 -> p = 1 / 1.133485702 = 0.882234331
    # N_l = 1 is exact for any A, B: (1 + B)^-A cancels (B + 1)^A, so p = 1 / (1 + ln N - 1) = 1 / ln N.
    p = propensities(np.array([0, 1, 10, 1000]), num_points=100)
    assert p.dtype == np.float64 and p.shape == (4,)
    np.testing.assert_allclose(p, [0.173170325, 1 / math.log(100), 0.391017311, 0.882234331], rtol=0, atol=1e-9)


def test_propensities_closed_forms_and_shape():
    # A = 1, B = 1: C = 2 (ln N - 1); N_l = 3 -> 1 + 2 (ln N - 1) / 4 = (1 + ln N) / 2 -> p = 2 / (1 + ln N).
    n = 5000
    p = propensities(np.array([1, 3]), num_points=n, a=1.0, b=1.0)
    np.testing.assert_allclose(p, [1 / math.log(n), 2 / (1 + math.log(n))], rtol=1e-14)
    # Same as the paper's exp/log form, element-wise, on random frequencies and (A, B) pairs.
    rng = np.random.default_rng(0)
    freq = rng.integers(0, 10**6, size=50)
    for a, b in [(0.55, 1.5), (0.5, 0.4), (0.6, 2.6)]:
        c = (math.log(n) - 1) * (b + 1) ** a
        expected = [1 / (1 + c * math.exp(-a * math.log(f + b))) for f in freq]
        np.testing.assert_allclose(propensities(freq, n, a, b), expected, rtol=1e-13)
    # Monotone in the frequency, inside (0, 1), tending to 1.
    p = propensities(np.array([0, 1, 2, 10, 100, 10**4, 10**9]), num_points=n)
    assert np.all(np.diff(p) > 0) and np.all((p > 0) & (p < 1)) and p[-1] > 0.99


def test_propensities_rejects_bad_input():
    with pytest.raises(ValueError, match="num_points"):
        propensities(np.array([1, 2]), num_points=2)
    with pytest.raises(ValueError, match="non-negative"):
        propensities(np.array([1, -2]), num_points=100)
    with pytest.raises(ValueError, match="1-D"):
        propensities(np.ones((2, 2)), num_points=100)


def test_dataset_propensities_follow_the_train_label_counts(tmp_path):
    from tfxc.config import load_config
    from tfxc.data.convert import ensure_converted

    config = load_config(None, ["data.format=synthetic", f"data.dir={tmp_path / 'data'}",
                                "data.synthetic.num_train=50", "data.synthetic.num_test=10",
                                "data.synthetic.num_labels=20", "data.synthetic.num_features=100"])
    info = ensure_converted(config.data)
    np.testing.assert_allclose(dataset_propensities(info, 0.6, 2.6), propensities(info.label_freq, 50, 0.6, 2.6))
    tiny = load_config(None, ["data.format=synthetic", f"data.dir={tmp_path / 'tiny'}",
                              "data.synthetic.num_train=2", "data.synthetic.num_test=1",
                              "data.synthetic.num_labels=4", "data.synthetic.num_features=100"])
    assert dataset_propensities(ensure_converted(tiny.data)) is None  # log N must exceed 1
