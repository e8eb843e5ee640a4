"""Recurrent text encoders: TextRNN (a BiLSTM/BiGRU with attention or pooling; Yang et al., 2016, for the
attention) and TextRCNN (Lai et al., 2015, "Recurrent Convolutional Neural Networks for Text Classification")."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.encoders.text_common import (SequenceEncoder, SequenceEncoderConfig, kernel_initializer, masked_max,
                                       masked_mean)
from tfxc.errors import ConfigError

CELLS = ("lstm", "gru")
POOLINGS = ("attention", "mean", "max")


@dataclass(frozen=True)
class TextRnnEncoderConfig(SequenceEncoderConfig):
    """Config of `TextRnnEncoder` (and the shared fields of `SequenceEncoderConfig`).

    Attributes:
      name: "text_rnn".
      cell: lstm or gru.
      hidden_dim: units per direction (the output has 2 * hidden_dim features).
      pooling: attention (a learnt query over the states), mean or max over the real tokens.
    """

    name: str = "text_rnn"
    cell: str = "lstm"
    hidden_dim: int = 256
    pooling: str = "attention"

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.cell not in CELLS or self.pooling not in POOLINGS:
            raise ConfigError(f"{path}: cell '{self.cell}' must be one of {', '.join(CELLS)} and pooling "
                              f"'{self.pooling}' one of {', '.join(POOLINGS)}")
        if self.hidden_dim < 1:
            raise ConfigError(f"{path}.hidden_dim ({self.hidden_dim}) must be >= 1")


@dataclass(frozen=True)
class TextRcnnEncoderConfig(SequenceEncoderConfig):
    """Config of `TextRcnnEncoder`.

    Attributes:
      name: "text_rcnn".
      cell: lstm or gru.
      hidden_dim: units per direction of the recurrent context.
      output_dim: width of the tanh projection of [left context; embedding; right context].
    """

    name: str = "text_rcnn"
    cell: str = "lstm"
    hidden_dim: int = 256
    output_dim: int = 512

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.cell not in CELLS:
            raise ConfigError(f"{path}.cell '{self.cell}' must be one of {', '.join(CELLS)}")
        if min(self.hidden_dim, self.output_dim) < 1:
            raise ConfigError(f"{path}: hidden_dim and output_dim must be >= 1")


def bidirectional(cell: str, units: int, seed, initializer: str = "xavier") -> keras.layers.Bidirectional:
    """A bidirectional LSTM/GRU returning every step; the mask keeps the backward pass off the padding."""
    layer = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
    init = dict(kernel_initializer=kernel_initializer(initializer, seed),
                recurrent_initializer=keras.initializers.Orthogonal(seed=seed))
    # Named explicitly: auto-generated names ("lstm_1") depend on what the process built before,
    # and the variable paths must be the same in every process that restores the model.
    return keras.layers.Bidirectional(layer(units, return_sequences=True, name=cell, **init), name="rnn")


class TextRnnEncoder(SequenceEncoder):
    """Embeddings -> BiLSTM/BiGRU -> pooling over the real tokens.

    Attention pooling: u_t = tanh(H_t W), α = softmax over real t of u_t·q, output Σ_t α_t H_t
    (W, q initialised U(-0.1, 0.1)). The original's unmasked sum over a fixed length is
    replaced by masked pooling, so padding never changes a text's encoding.

    Returns:
      float32 [B, 2 * hidden_dim].
    """

    def __init__(self, vocabulary, *, cell="lstm", hidden_dim=256, pooling="attention", **kwargs):
        super().__init__(vocabulary, **kwargs)
        self.cell, self.hidden_dim, self.pooling = cell, hidden_dim, pooling
        self.rnn = bidirectional(cell, hidden_dim, self._seed(10), self.initializer_name)

    @classmethod
    def from_config_dataclass(cls, config: TextRnnEncoderConfig, context, *, name="encoder"):
        return cls(cell=config.cell, hidden_dim=config.hidden_dim, pooling=config.pooling,
                   **cls.common_args(config, context), name=name)

    @property
    def pooled_dim(self) -> int:
        return 2 * self.hidden_dim

    def build_encoder(self) -> None:
        self.rnn.build((None, None, self.embedding_dim))
        if self.pooling == "attention":
            uniform = keras.initializers.RandomUniform(-0.1, 0.1, seed=self._seed(11))
            self.attention_kernel = self.add_weight(shape=(self.pooled_dim, self.pooled_dim), name="attention_kernel",
                                                    initializer=uniform)
            self.attention_query = self.add_weight(shape=(self.pooled_dim,), name="attention_query",
                                                   initializer=keras.initializers.RandomUniform(
                                                       -0.1, 0.1, seed=self._seed(12)))

    def encode(self, embedded, mask, training):
        states = self.rnn(embedded, mask=mask, training=training)  # [B, T, 2H]
        if self.pooling == "mean":
            return masked_mean(states, mask)
        if self.pooling == "max":
            return masked_max(states, mask)
        scores = tf.linalg.matvec(tf.tanh(tf.matmul(states, self.attention_kernel)), self.attention_query)
        scores = tf.where(mask, scores, tf.constant(-1e9, scores.dtype))
        weights = tf.nn.softmax(scores, axis=1) * tf.cast(mask, scores.dtype)  # 0 everywhere for an empty text
        return tf.reduce_sum(states * weights[:, :, None], axis=1)


class TextRcnnEncoder(SequenceEncoder):
    """Embeddings -> BiLSTM/BiGRU context -> tanh(W [h_left; e; h_right] + b) -> max over the real tokens.

    Returns:
      float32 [B, output_dim].
    """

    def __init__(self, vocabulary, *, cell="lstm", hidden_dim=256, output_dim=512, **kwargs):
        super().__init__(vocabulary, **kwargs)
        self.cell, self.hidden_dim, self._output_dim = cell, hidden_dim, output_dim
        self.rnn = bidirectional(cell, hidden_dim, self._seed(10), self.initializer_name)
        self.projection = keras.layers.Dense(output_dim, activation="tanh", name="projection",
                                             kernel_initializer=self.initializer(11))

    @classmethod
    def from_config_dataclass(cls, config: TextRcnnEncoderConfig, context, *, name="encoder"):
        return cls(cell=config.cell, hidden_dim=config.hidden_dim, output_dim=config.output_dim,
                   **cls.common_args(config, context), name=name)

    @property
    def pooled_dim(self) -> int:
        return self._output_dim

    def build_encoder(self) -> None:
        self.rnn.build((None, None, self.embedding_dim))
        self.projection.build((None, None, self.embedding_dim + 2 * self.hidden_dim))

    def encode(self, embedded, mask, training):
        states = self.rnn(embedded, mask=mask, training=training)  # [B, T, 2H]: forward and backward contexts
        return masked_max(self.projection(tf.concat([embedded, states], axis=-1)), mask)
