"""graph_function (no AutoGraph) and BatchFunction (one trace for any batch size)."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.utils.graph import BatchFunction, graph_function


def test_graph_function_does_not_rewrite_python_control_flow():
    def python_if(x):
        if x > 0:  # AutoGraph would turn this into a tf.cond
            return x
        return -x

    with pytest.raises(TypeError, match="bool"):
        graph_function(python_if)(tf.constant(1.0))
    assert float(tf.function(python_if)(tf.constant(-2.0))) == 2.0  # what AutoGraph does instead
    loop = graph_function(lambda n: tf.while_loop(lambda i, s: i < n, lambda i, s: (i + 1, s + i), (0, 0))[1])
    assert int(loop(tf.constant(5))) == 10


def batch(rows: int) -> dict:
    splits = np.arange(rows + 1, dtype=np.int64) * 2
    return {"feat_idx": tf.RaggedTensor.from_row_splits(np.arange(2 * rows, dtype=np.int64), splits),
            "row_id": tf.range(rows, dtype=tf.int64)}


def test_a_batch_function_traces_once_for_every_batch_size():
    fn = BatchFunction(lambda b: tf.reduce_sum(b["feat_idx"], axis=1) + b["row_id"])
    for rows, want in [(4, [1, 6, 11, 16]), (2, [1, 6]), (3, [1, 6, 11])]:
        np.testing.assert_array_equal(fn(batch(rows)).numpy(), want)
    assert fn._function.experimental_get_tracing_count() == 1
    plain = tf.function(lambda b: tf.reduce_sum(b["feat_idx"], axis=1), reduce_retracing=True)
    for rows in (4, 2, 3):
        plain(batch(rows))
    assert plain.experimental_get_tracing_count() == 2  # what it saves: the retrace at the first new size


def test_a_batch_with_scalars_is_traced_as_tf_function_would():
    fn = BatchFunction(lambda b: b["x"] * b["scale"])
    assert float(fn({"x": tf.constant([2.0]), "scale": tf.constant(3.0)})[0]) == 6.0
