"""`graph_function`: `tf.function` without AutoGraph, for tfxc's own graphs; `portable_ops`: graphs traced
for another runtime than TensorFlow.

tfxc writes its graphs' control flow as TensorFlow ops (`tf.cond`, `tf.while_loop`), so AutoGraph's
rewriting of every called function's Python source is pure start-up cost: on delicious it was most of
the first training loop's 1.4 s of tracing and of the first evaluation's 0.65 s (docs/benchmarks-history.md,
"Speed"). Without it, a Python `if` or `for` on a tensor inside such a graph fails while tracing
("using a tf.Tensor as a Python bool is not allowed"): write it as `tf.cond` / `tf.while_loop`.
"""

from __future__ import annotations

import contextlib
import functools
import threading

from tfxc._tf import tf

_portable = threading.local()


@contextlib.contextmanager
def portable_ops():
    """Inside, tfxc's graphs are traced for another runtime (ONNX, `tfxc.export.onnx`): where TensorFlow has a
    kernel no converter maps (the sorted search `LowerBound`), the ops that build it from gathers and
    compares are traced instead (`uses_portable_ops` tells them)."""
    saved = getattr(_portable, "on", False)
    _portable.on = True
    try:
        yield
    finally:
        _portable.on = saved


def uses_portable_ops() -> bool:
    """Whether the graph being traced is for another runtime (`portable_ops`)."""
    return getattr(_portable, "on", False)


def graph_function(fn=None, **kwargs):
    """`tf.function(fn, autograph=False, **kwargs)`; also usable as `@graph_function(...)` with arguments."""
    if fn is None:
        return functools.partial(graph_function, **kwargs)
    return tf.function(fn, autograph=False, **kwargs)


def _any_rows(value):
    """The TypeSpec of `value` (a tensor or a ragged tensor) with its first (batch) dimension unknown; else None."""
    if isinstance(value, tf.RaggedTensor):
        return tf.RaggedTensorSpec([None, *value.shape[1:]], value.dtype, value.ragged_rank, value.row_splits.dtype)
    if isinstance(value, tf.Tensor) and value.shape.rank:
        return tf.TensorSpec([None, *value.shape[1:]], value.dtype)
    return None


class BatchFunction:
    """A `graph_function` of one batch (a nest of tensors and ragged tensors) traced once for any batch size.

    A plain `tf.function` traces its first batch's exact shapes and traces again at the first batch of
    another size (an evaluation's last, shorter batch), each trace a Python pass over the model and a
    graph optimisation. This one traces the first batch's structure with the batch dimension unknown, so
    an evaluation traces once.

    Args:
      fn: batch -> tensors; **kwargs: for `tf.function`. A batch with anything but tensors and ragged
        tensors of rank >= 1 is traced as `tf.function` would.
    """

    def __init__(self, fn, **kwargs):
        self._function = graph_function(fn, **kwargs)
        self._traced = False

    def __call__(self, batch):
        if not self._traced:
            specs = tf.nest.map_structure(_any_rows, batch)
            if all(spec is not None for spec in tf.nest.flatten(specs)):  # else: traced per shape, as usual
                self._function.get_concrete_function(specs)
            self._traced = True
        return self._function(batch)
