"""Arrays whose data starts on a 64-byte boundary, for the kernels' results that go back to TensorFlow.

TensorFlow takes a `tf.numpy_function` result as its tensor only when the data is
aligned as its own tensors are (64 bytes); any other array is copied first, one
more pass and, for arrays above glibc's mmap threshold, fresh pages to fault in.
NumPy's large arrays start 16 bytes past a page boundary, so a kernel's [U, d]
gradient or updated rows were copied at every step.
"""

from __future__ import annotations

import numpy as np

ALIGNMENT = 64


def _aligned(shape, dtype, allocate) -> np.ndarray:
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = allocate(size + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start:start + size].view(dtype).reshape(shape)


def empty(shape, dtype=np.float32) -> np.ndarray:
    """An uninitialised array of `shape` and `dtype`, 64-byte aligned."""
    return _aligned(shape, dtype, np.empty)


def zeros(shape, dtype=np.float32) -> np.ndarray:
    """A zero-filled array of `shape` and `dtype`, 64-byte aligned."""
    return _aligned(shape, dtype, np.zeros)
