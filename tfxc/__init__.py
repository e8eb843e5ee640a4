"""tfxc: extreme classification in TensorFlow/Keras.

The Python API (`tfxc.fit`, `tfxc.load` → `Predictor`, `tfxc.load_xc`; see `tfxc.api`) is
imported on first use, so that `import tfxc` and the command-line tools stay
quick until TensorFlow is needed.
"""

from tfxc._version import __version__

_API = ("Predictions", "Predictor", "fit", "load", "load_xc")
__all__ = ["__version__", *_API]


def __getattr__(name):
    if name in _API:
        from tfxc import api

        return getattr(api, name)
    from tfxc.compat.deprecations import RENAMED, renamed  # names of earlier releases (`Classifier`), warned

    if name in RENAMED:
        from tfxc import api

        return renamed(__name__, name, vars(api))
    raise AttributeError(f"module 'tfxc' has no attribute {name!r}")


def __dir__():
    """The module's names and the lazily imported API's, for tab completion (`dir(tfxc)`)."""
    return sorted({*globals(), *_API})
