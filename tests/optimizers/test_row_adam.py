"""The compiled row-sparse Adam step against its NumPy reference and Adam's definition."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc.optimizers import row_adam as adam

needs_kernel = pytest.mark.skipif(not adam.HAVE_COMPILED_ADAM, reason="tfxc.optimizers._adam not built")


def _rows(seed: int, shape=(300, 7)):
    g = np.random.default_rng(seed)
    return (g.standard_normal(shape).astype(np.float32), g.standard_normal(shape).astype(np.float32) * 0.1,
            g.random(shape).astype(np.float32) * 0.01, g.standard_normal(shape).astype(np.float32))


def test_one_step_by_hand():
    new_w, new_m, new_v = adam.adam_rows([[1.0, -2.0]], [[0.0, 0.5]], [[0.0, 0.25]], [[2.0, 1.0]],
                                         alpha=0.1, beta_1=0.9, beta_2=0.99, epsilon=0.0, compiled=False)
    np.testing.assert_allclose(new_m, [[0.2, 0.55]], rtol=1e-6)
    np.testing.assert_allclose(new_v, [[0.04, 0.2575]], rtol=1e-6)
    np.testing.assert_allclose(new_w, [[1.0 - 0.1 * 0.2 / 0.2, -2.0 - 0.1 * 0.55 / np.sqrt(0.2575)]], rtol=1e-6)


@needs_kernel
@pytest.mark.parametrize("shape", [(300, 7), (1000,), (0, 5)])
def test_the_kernel_gives_the_numpy_step(shape):
    rows = _rows(1, shape)
    settings = dict(alpha=0.003, beta_1=0.9, beta_2=0.999, epsilon=1e-7)
    for ours, reference in zip(adam.adam_rows(*rows, **settings, compiled=True),
                               adam.adam_rows(*rows, **settings, compiled=False)):
        assert ours.shape == shape and ours.dtype == np.float32
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-7)
