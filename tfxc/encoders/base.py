"""The contract every encoder implements: a batch of inputs -> dense features float32 [B, output_dim]."""

from __future__ import annotations

from tfxc._tf import keras


class Encoder(keras.layers.Layer):
    """Base class of encoders.

    An encoder reads the parsed batch dict of `tfxc.data.tfrecord` (e.g.
    `feat_idx`/`feat_val` int64/float32 ragged [B, None]) and returns float32
    [B, output_dim]. Heads are built on `output_dim`; `sparse_variables` names
    the variables whose gradients are row-sparse (`tf.IndexedSlices`), which the
    optimizers then update lazily.
    """

    @classmethod
    def from_config_dataclass(cls, config, context, *, name: str = "encoder") -> "Encoder":
        """Builds the encoder from its config dataclass and a `tfxc.build_context.BuildContext`."""
        raise NotImplementedError(f"{cls.__name__} must implement from_config_dataclass(config, context)")

    @property
    def output_dim(self) -> int:
        raise NotImplementedError

    @property
    def sparse_variables(self) -> list:
        return []
