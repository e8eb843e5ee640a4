"""TextCNN (Kim, 2014, "Convolutional Neural Networks for Sentence Classification")."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.encoders.text_common import SequenceEncoder, SequenceEncoderConfig, masked_max
from tfxc.errors import ConfigError


@dataclass(frozen=True)
class TextCnnEncoderConfig(SequenceEncoderConfig):
    """Config of `TextCnnEncoder` (and the shared fields of `SequenceEncoderConfig`).

    Attributes:
      name: "text_cnn".
      kernel_sizes: the n-gram widths of the convolutions.
      num_filters: filters per width (the output has len(kernel_sizes) * num_filters features).
    """

    name: str = "text_cnn"
    kernel_sizes: tuple[int, ...] = (2, 3, 4)
    num_filters: int = 128

    def validate(self, path: str) -> None:
        super().validate(path)
        if not self.kernel_sizes or min(self.kernel_sizes) < 1 or self.num_filters < 1:
            raise ConfigError(f"{path}: kernel_sizes {list(self.kernel_sizes)} and num_filters "
                              f"({self.num_filters}) must be >= 1")


class TextCnnEncoder(SequenceEncoder):
    """Token embeddings -> one ReLU convolution per n-gram width -> max over time -> concatenation.

    A window counts when it starts on a real token (padding embeddings are zero, so a
    window that runs past the end sees zeros), so a text encodes the same in any batch:
    nothing depends on the padded length, unlike fixed-length originals.

    Returns:
      float32 [B, len(kernel_sizes) * num_filters].
    """

    def __init__(self, vocabulary, *, kernel_sizes=(2, 3, 4), num_filters=128, **kwargs):
        super().__init__(vocabulary, **kwargs)
        self.kernel_sizes = tuple(kernel_sizes)
        self.num_filters = num_filters
        for i, width in enumerate(self.kernel_sizes):
            setattr(self, f"conv_{i}", keras.layers.Conv1D(num_filters, width, activation="relu", name=f"conv_{i}",
                                                           kernel_initializer=self.initializer(10 + i)))

    @classmethod
    def from_config_dataclass(cls, config: TextCnnEncoderConfig, context, *, name="encoder"):
        return cls(kernel_sizes=config.kernel_sizes, num_filters=config.num_filters,
                   **cls.common_args(config, context), name=name)

    @property
    def pooled_dim(self) -> int:
        return len(self.kernel_sizes) * self.num_filters

    def build_encoder(self) -> None:
        for i in range(len(self.kernel_sizes)):
            getattr(self, f"conv_{i}").build((None, None, self.embedding_dim))

    def encode(self, embedded, mask, training):
        # Every window that starts on a real token exists whatever the batch's padded length: pad the end by
        # the widest kernel minus one (zeros, like the padding embeddings), keep the first T windows, mask them.
        length = tf.shape(embedded)[1]
        embedded = tf.pad(embedded, [[0, 0], [0, max(self.kernel_sizes) - 1], [0, 0]])
        pooled = [masked_max(getattr(self, f"conv_{i}")(embedded)[:, :length], mask)
                  for i in range(len(self.kernel_sizes))]
        return tf.concat(pooled, axis=-1)
