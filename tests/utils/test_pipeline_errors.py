"""A TfxcError raised inside a tf.data pipeline comes out as itself, not as TensorFlow's wrapped traceback."""

from __future__ import annotations

import numpy as np
import pytest

from tfxc._tf import tf
from tfxc.errors import DataError
from tfxc.utils.pipeline_errors import PipelineErrors


def rows():
    yield 1
    raise DataError("cannot read the image (No such file or directory)", path="b/gone.jpg")


def test_a_generator_error_is_raised_as_it_was():
    errors = PipelineErrors()
    ds = tf.data.Dataset.from_generator(errors.generator(rows), output_signature=tf.TensorSpec([], tf.int32))
    with pytest.raises(DataError, match=r"^b/gone.jpg: cannot read the image \(No such file or directory\)$"):
        with errors.unwrapped():
            list(ds.map(lambda x: x + 1, num_parallel_calls=2).prefetch(2))
    # Unwrapped, TensorFlow's error is a traceback in an UnknownError.
    with pytest.raises(tf.errors.UnknownError, match="Traceback"):
        list(tf.data.Dataset.from_generator(rows, output_signature=tf.TensorSpec([], tf.int32)))


def test_a_py_function_error_is_raised_as_it_was_and_other_errors_pass():
    errors = PipelineErrors()

    def check(x):
        if x.numpy() == 3:
            raise DataError("row 3 is bad")
        return x

    ds = tf.data.Dataset.range(5).map(lambda x: tf.py_function(errors.function(check), [x], tf.int64))
    with pytest.raises(DataError, match="^row 3 is bad$"):
        with errors.unwrapped():
            list(ds)
    with pytest.raises(tf.errors.InvalidArgumentError):  # no TfxcError remembered: TensorFlow's own passes
        with PipelineErrors().unwrapped():
            tf.debugging.assert_equal(np.int32(1), np.int32(2))
