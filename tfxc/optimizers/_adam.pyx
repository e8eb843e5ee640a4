# cython: language_level=3
"""Compiled row-sparse Adam step (API: tfxc/optimizers/row_adam.py).

A lazy Adam step over the U rows a gradient touches reads each row of the
weights and of both moments once and writes the three new rows once. As
TensorFlow ops the same step makes a dozen [U, d] temporaries (the products,
the square, the root, the quotient), one full pass each: at the label tree's
10^5 touched rows of 256 floats a step, those passes cost more than the
model's own arithmetic. OpenMP-parallel over rows; each row is written by one
thread, so the result does not depend on the thread count.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport sqrtf


def adam_rows(const float[:, ::1] weights, const float[:, ::1] m, const float[:, ::1] v, const float[:, ::1] grad,
              float alpha, float beta_1, float beta_2, float epsilon, float[:, ::1] out_weights,
              float[:, ::1] out_m, float[:, ::1] out_v) -> None:
    """out_m = β1·m + (1−β1)·g, out_v = β2·v + (1−β2)·g², out_weights = weights − α·out_m / (√out_v + ε)."""
    cdef Py_ssize_t rows = weights.shape[0], width = weights.shape[1]
    cdef Py_ssize_t r, j
    cdef float g, mj, vj
    for r in prange(rows, nogil=True, schedule="static"):
        for j in range(width):
            g = grad[r, j]
            mj = beta_1 * m[r, j] + (1 - beta_1) * g
            vj = beta_2 * v[r, j] + (1 - beta_2) * g * g
            out_m[r, j] = mj
            out_v[r, j] = vj
            out_weights[r, j] = weights[r, j] - alpha * mj / (sqrtf(vj) + epsilon)
