"""Imports TensorFlow once, quietly.

TF prints oneDNN/CUDA banners to fd 2 while its shared libraries load, before
any logging setting applies (tf-notes §0); we silence fd 2 only for the import.
Set TFXC_VERBOSE_TF=1 to see them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if os.environ.get("TFXC_VERBOSE_TF"):
    import tensorflow as tf  # noqa: F401
else:
    _saved = os.dup(2)
    _null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(_null, 2)
    try:
        import tensorflow as tf  # noqa: F401

        tf.config.list_physical_devices()  # also swallows the cuInit error line
    finally:
        os.dup2(_saved, 2)
        os.close(_saved)
        os.close(_null)

import keras  # noqa: E402,F401  (after TF so Keras picks the TF backend quietly)

__all__ = ["tf", "keras"]
