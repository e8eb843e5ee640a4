"""Independent encoders of the same inputs, stacked along axis 1 (e.g. MACH's per-repetition networks)."""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.encoders.base import Encoder


class RepeatedEncoder(Encoder):
    """Applies R independent encoders to the same inputs.

    Args:
      encoders: the per-repetition encoders (equal output widths).
      repetitions: the repetition id of each encoder (names the sub-layers).

    Returns:
      float32 [batch, R, dim].
    """

    def __init__(self, encoders, repetitions, **kwargs):
        super().__init__(**kwargs)
        self.repetitions = tuple(repetitions)
        # Attributes, not a list: tf.train.Checkpoint does not see into Keras 3's tracked lists.
        for r, encoder in zip(self.repetitions, encoders):
            setattr(self, f"rep_{r}", encoder)

    @property
    def encoders(self) -> list:
        return [getattr(self, f"rep_{r}") for r in self.repetitions]

    @property
    def output_dim(self) -> int:
        return self.encoders[0].output_dim

    @property
    def input_kind(self) -> str:
        return self.encoders[0].input_kind

    def tokenize(self, texts) -> dict:
        # The repetitions share one config, hence one tokenisation (hashed ids or the same vocabulary).
        return self.encoders[0].tokenize(texts)

    def decode_images(self, images) -> dict:
        return self.encoders[0].decode_images(images)

    def save_tokenizer(self, directory: str) -> None:
        self.encoders[0].save_tokenizer(directory)

    def build(self, input_shape=None):
        for encoder in self.encoders:
            encoder.build()
        self.built = True

    def call(self, inputs, training=False):
        return tf.stack([encoder(inputs, training=training) for encoder in self.encoders], axis=1)

    @property
    def sparse_variables(self) -> list:
        return [v for encoder in self.encoders for v in encoder.sparse_variables]

    def memory_step_bytes(self, batch_size: int, training: bool = True) -> int:
        return sum(encoder.memory_step_bytes(batch_size, training) for encoder in self.encoders)

    def memory_input_bytes(self) -> int:
        return self.encoders[0].memory_input_bytes()
