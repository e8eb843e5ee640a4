"""A `TfxcError` raised inside a `tf.data` input pipeline, raised again as it was where the pipeline is read.

Python code that runs inside a pipeline (a `Dataset.from_generator` generator, a `tf.py_function` or
`tf.numpy_function`) is called from TensorFlow's runtime: an exception raised there reaches the loop
reading the dataset as a `tf.errors.UnknownError` (or another `OpError`) whose message is a Python
traceback, not the one line the error is (a file that cannot be opened, named). `PipelineErrors` remembers
the `TfxcError` raised in the wrapped code and, when TensorFlow's wrapped error arrives, raises the
original instead:

    errors = PipelineErrors()
    ds = tf.data.Dataset.from_generator(errors.generator(rows), output_signature=...)
    with errors.unwrapped():
        for batch in ds: ...
"""

from __future__ import annotations

import contextlib
import functools
import threading

from tfxc.errors import TfxcError


class PipelineErrors:
    """The first `TfxcError` raised by the code it wraps (module docstring)."""

    def __init__(self):
        self.error: TfxcError | None = None
        self._lock = threading.Lock()  # a parallel map may call the wrapped function on several threads

    def _remember(self, error: TfxcError) -> None:
        with self._lock:
            if self.error is None:
                self.error = error

    def generator(self, make):
        """`make` (a generator function) wrapped: what it yields, a `TfxcError` it raises remembered, then raised."""

        @functools.wraps(make)
        def wrapped(*args, **kwargs):
            try:
                yield from make(*args, **kwargs)
            except TfxcError as e:
                self._remember(e)
                raise

        return wrapped

    def function(self, fn):
        """`fn` (for `tf.py_function` / `tf.numpy_function`) wrapped as `generator` wraps a generator function."""

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except TfxcError as e:
                self._remember(e)
                raise

        return wrapped

    @contextlib.contextmanager
    def unwrapped(self):
        """Reads of the pipeline inside it raise the remembered `TfxcError` in place of TensorFlow's error."""
        from tfxc._tf import tf

        try:
            yield self
        except tf.errors.OpError:
            if self.error is None:
                raise
            raise self.error.with_traceback(None) from None
