"""A small Transformer text encoder (Vaswani et al., 2017) from keras-hub's layers, trained from scratch."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import tf
from tfxc.encoders.text_common import SequenceEncoder, SequenceEncoderConfig, masked_mean
from tfxc.errors import ConfigError


@dataclass(frozen=True)
class TextTransformerEncoderConfig(SequenceEncoderConfig):
    """Config of `TextTransformerEncoder` (and the shared fields of `SequenceEncoderConfig`).

    Attributes:
      name: "text_transformer".
      num_layers: encoder blocks.
      num_heads: attention heads (embedding_dim must be divisible by it).
      intermediate_dim: width of each block's feed-forward layer.
    """

    name: str = "text_transformer"
    embedding_dim: int = 256
    num_layers: int = 2
    num_heads: int = 4
    intermediate_dim: int = 512

    def validate(self, path: str) -> None:
        super().validate(path)
        if min(self.num_layers, self.num_heads, self.intermediate_dim) < 1:
            raise ConfigError(f"{path}: num_layers, num_heads and intermediate_dim must be >= 1")
        if self.embedding_dim % self.num_heads:
            raise ConfigError(f"{path}.embedding_dim ({self.embedding_dim}) must be divisible by num_heads "
                              f"({self.num_heads})")


class TextTransformerEncoder(SequenceEncoder):
    """Embeddings + sinusoidal positions -> keras-hub `TransformerEncoder` blocks -> mean over the real tokens.

    The blocks take the padding mask, so attention never reads a pad, and the batch
    axis stays first (the original's `batch_first=False` bug attended across the batch).

    Returns:
      float32 [B, embedding_dim].
    """

    def __init__(self, vocabulary, *, num_layers=2, num_heads=4, intermediate_dim=512, **kwargs):
        super().__init__(vocabulary, **kwargs)
        import keras_hub

        self.num_layers = num_layers
        self.positions = keras_hub.layers.SinePositionEncoding(name="positions")
        for i in range(num_layers):
            setattr(self, f"block_{i}", keras_hub.layers.TransformerEncoder(
                intermediate_dim, num_heads, dropout=self.dropout_rate, activation="gelu",
                kernel_initializer=self.initializer(10 + i), name=f"block_{i}"))

    @classmethod
    def from_config_dataclass(cls, config: TextTransformerEncoderConfig, context, *, name="encoder"):
        return cls(num_layers=config.num_layers, num_heads=config.num_heads,
                   intermediate_dim=config.intermediate_dim, **cls.common_args(config, context), name=name)

    @property
    def pooled_dim(self) -> int:
        return self.embedding_dim

    def build_encoder(self) -> None:
        for i in range(self.num_layers):
            getattr(self, f"block_{i}").build((None, None, self.embedding_dim))

    def encode(self, embedded, mask, training):
        x = embedded + self.positions(embedded)
        for i in range(self.num_layers):
            x = getattr(self, f"block_{i}")(x, padding_mask=mask, training=training)
        return masked_mean(x, mask)
