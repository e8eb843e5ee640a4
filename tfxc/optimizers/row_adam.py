"""The row-sparse Adam step: compiled kernel, NumPy fallback.

`adam_rows` takes the rows of the weights and of Adam's two moments that a
gradient touches (gathered by the caller, `tfxc.optimizers.lazy.LazyAdam`) and
returns their new values, for the caller to scatter back. Kingma & Ba (2015),
with the bias corrections folded into `alpha` = lr·√(1−β2^t)/(1−β1^t), as Keras'
Adam does:

    m' = β1·m + (1−β1)·g,   v' = β2·v + (1−β2)·g²,   w' = w − alpha·m' / (√v' + ε)

`HAVE_COMPILED_ADAM` says whether the OpenMP kernel `tfxc.optimizers._adam` was
built (`pip install -e .`): one pass over the rows instead of one per operation.
"""

from __future__ import annotations

import numpy as np

from tfxc.utils import aligned

try:
    from tfxc.optimizers import _adam
except ImportError:  # pragma: no cover - only without a built extension
    _adam = None

HAVE_COMPILED_ADAM = _adam is not None


def adam_rows(weights, m, v, grad, alpha, beta_1, beta_2, epsilon,
              compiled: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Adam step of the touched rows: (weights', m', v'), float32 arrays of `weights`' shape.

    Args:
      weights, m, v, grad: float32 [U, ...], the rows of the weights, the moments and their gradient.
      alpha: lr·√(1−β2^t)/(1−β1^t) at step t (1-based); beta_1, beta_2, epsilon: Adam's constants.
      compiled: force the compiled kernel (True) or NumPy (False); default: the kernel when built.
    """
    shape = np.shape(weights)
    rows = (shape[0] if shape else 1, int(np.prod(shape[1:], dtype=np.int64)))
    flat = [np.ascontiguousarray(np.reshape(a, rows), np.float32) for a in (weights, m, v, grad)]
    alpha, beta_1, beta_2, epsilon = (np.float32(x) for x in (alpha, beta_1, beta_2, epsilon))
    if compiled is None:
        compiled = HAVE_COMPILED_ADAM
    if compiled:
        if _adam is None:
            raise RuntimeError("tfxc.optimizers._adam is not built: pip install -e . (needs Cython)")
        out = [aligned.empty(flat[0].shape) for _ in range(3)]  # TensorFlow takes these without a copy
        _adam.adam_rows(*flat, alpha, beta_1, beta_2, epsilon, *out)
    else:
        w, m, v, g = flat
        new_m = beta_1 * m + (1 - beta_1) * g
        new_v = beta_2 * v + (1 - beta_2) * np.square(g)
        out = [(w - alpha * new_m / (np.sqrt(new_v) + epsilon)).astype(np.float32), new_m, new_v]
    return tuple(np.reshape(a, shape) for a in out)

