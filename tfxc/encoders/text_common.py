"""What the text encoders share: their vocabulary's life cycle, the token-sequence encoder base and masked pooling.

A vocabulary is learnt once, from the raw text of the converted train split, and
kept in the model directory (`vocab.txt`), so resume, evaluation and export
tokenise exactly as training did; `vocabulary` in a config names a ready-made
`vocab.txt` instead (e.g. a pretrained model's).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.encoders.base import Encoder
from tfxc.errors import ConfigError, DataError
from tfxc.text import DEFAULT_MAX_BYTES, PAD, WordPieceSequences, learn_wordpiece_vocabulary, read_vocabulary, write_vocabulary

log = logging.getLogger("tfxc.encoders")

VOCABULARY_FILE = "vocab.txt"


def train_texts(data_dir: str) -> tf.data.Dataset:
    """The raw texts (string scalars) of a converted data set's train split, in file order.

    Raises:
      DataError: the split has no text (it was converted from a BoW/feature format).
    """
    from tfxc.data.info import DatasetInfo

    files = DatasetInfo.load(data_dir).files("train")
    texts = tf.data.TFRecordDataset(files).batch(1024).map(
        lambda s: tf.io.parse_example(s, {"text": tf.io.FixedLenFeature([], tf.string, default_value="")})["text"])
    first = next(iter(texts.take(1)), None)
    if first is None or not tf.reduce_any(tf.strings.length(first) > 0):
        raise DataError("the train split has no raw text: text encoders need data converted from JSONL "
                        "(data.format 'jsonl')", path=data_dir)
    return texts.unbatch()


def load_or_learn_vocabulary(config, context) -> list[str]:
    """The encoder's WordPiece vocabulary: the model directory's copy, else `config.vocabulary`, else learnt.

    Args:
      config: a text encoder config (`vocabulary`, `vocabulary_size`, `min_count`, `lowercase`).
      context: the `BuildContext` (its model_dir keeps the vocabulary; its data_dir has the train texts).
    """
    saved = os.path.join(context.model_dir, VOCABULARY_FILE) if context.model_dir else None
    if saved and os.path.exists(saved):
        return read_vocabulary(saved)
    if config.vocabulary:
        vocabulary = read_vocabulary(config.vocabulary)
    elif context.data_dir:
        vocabulary = learn_wordpiece_vocabulary(train_texts(context.data_dir), config.vocabulary_size,
                                                config.min_count, config.lowercase)
        log.info("learnt a WordPiece vocabulary of %d tokens from the train split", len(vocabulary))
    else:
        raise ConfigError("a text encoder needs its vocabulary: train the model first, or give model.encoder.vocabulary")
    if saved:
        write_vocabulary(saved, vocabulary)
    return vocabulary


def tfidf_vectorizer(context):
    """The converted data's TF-IDF featurizer (`featurizer.json`, fit on train) as graph ops (`TfidfVectorizer`).

    Raises:
      ConfigError: the data has no featurizer (it was not converted from JSONL text).
    """
    from tfxc.data.info import FEATURIZER_FILE
    from tfxc.data.text_features import TfidfFeaturizer
    from tfxc.text.tfidf import TfidfVectorizer

    path = os.path.join(context.data_dir, FEATURIZER_FILE) if context.data_dir else None
    if path is None or not os.path.exists(path):
        raise ConfigError("TF-IDF features from raw text need the featurizer of data converted from JSONL "
                          f"(data.format 'jsonl'); {context.data_dir or 'the data'} has none")
    return TfidfVectorizer(TfidfFeaturizer.load(path), name="tfidf")


def masked_mean(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean over time of the real positions: x float [B, T, D], mask bool [B, T] -> [B, D] (0 for empty rows)."""
    weights = tf.cast(mask, x.dtype)[:, :, None]
    return tf.reduce_sum(x * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)


def masked_max(x: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Max over time of the real positions: x float [B, T, D], mask bool [B, T] -> [B, D] (0 for empty rows)."""
    lowest = tf.constant(x.dtype.min, x.dtype)
    pooled = tf.reduce_max(tf.where(mask[:, :, None], x, lowest), axis=1)
    return tf.where(tf.reduce_any(mask, axis=1, keepdims=True), pooled, tf.zeros_like(pooled))


INITIALIZERS = ("xavier", "kaiming", "normal")


def kernel_initializer(name: str, seed: int | None):
    """The Keras initializer of `SequenceEncoderConfig.initializer` `name`."""
    if name == "kaiming":
        return keras.initializers.HeNormal(seed=seed)
    if name == "normal":
        return keras.initializers.RandomNormal(stddev=0.02, seed=seed)
    return keras.initializers.GlorotUniform(seed=seed)


@dataclass(frozen=True)
class SequenceEncoderConfig:
    """The fields every WordPiece token-sequence encoder has (its config subclasses add their own).

    Attributes:
      vocabulary: a vocab.txt (one token per line, [PAD] and [UNK] included) to use instead of
        learning one on the train split.
      vocabulary_size: the learnt vocabulary's size cap (reserved tokens included).
      min_count: a learnt token occurs at least this often in the train split.
      lowercase: lowercase before tokenising.
      max_length: tokens kept per text (longer texts are truncated).
      max_bytes: only a text's first this many bytes are tokenised (cut at a character boundary),
        in training and in serving alike, so that one request's work does not grow with its
        length; the default (64 KiB) is far more than max_length tokens of prose take.
      embedding_dim: width of the token embeddings.
      dropout: dropout rate on the embeddings and on the pooled output.
      projection_dim: > 0: a linear layer (no activation) to this width after the pooled, dropped-out
        features, the embedding the head and the `embed` signature see (the FC embedding layer of
        face-recognition backbones). A cosine head (ArcFace, CosFace) wants it after a ReLU/max-pooled
        encoder such as TextCNN, whose features all lie in the positive orthant.
      initializer: the kernels' initialisation (`INITIALIZERS`, text_classifier's choice for its small
        models): xavier (Glorot uniform, Glorot & Bengio 2010), kaiming (He normal, He et al. 2015, for ReLU
        layers) or normal (N(0, 0.02²)). The token embeddings start U(-0.05, 0.05) and recurrent kernels
        orthogonal whichever it is.
    """

    vocabulary: str = ""
    vocabulary_size: int = 30000
    min_count: int = 2
    lowercase: bool = True
    max_length: int = 128
    max_bytes: int = DEFAULT_MAX_BYTES
    embedding_dim: int = 300
    dropout: float = 0.1
    projection_dim: int = 0
    initializer: str = "xavier"

    def validate(self, path: str) -> None:
        if self.initializer not in INITIALIZERS:
            raise ConfigError(f"{path}.initializer '{self.initializer}' is not one of {', '.join(INITIALIZERS)}")
        if self.projection_dim < 0:
            raise ConfigError(f"{path}.projection_dim ({self.projection_dim}) must be >= 0")
        if self.max_bytes < 4:
            raise ConfigError(f"{path}.max_bytes ({self.max_bytes}) must be >= 4 (one UTF-8 character)")
        for key in ("vocabulary_size", "min_count", "max_length", "embedding_dim"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{path}.{key} ({getattr(self, key)}) must be >= 1")
        if self.vocabulary_size < 16:
            raise ConfigError(f"{path}.vocabulary_size ({self.vocabulary_size}) is too small for a WordPiece "
                              "vocabulary (reserved tokens and characters need room)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{path}.dropout ({self.dropout}) must be in [0, 1)")


class SequenceEncoder(Encoder):
    """Base of the encoders over WordPiece token sequences: tokeniser, embedding table, dropout.

    Subclasses implement `encode(embedded float32 [B, T, E], mask bool [B, T], training)
    -> float32 [B, pooled_dim]`, `pooled_dim` and `build_encoder()`; the base embeds the token ids
    (a `tf.gather` on the table, so its gradient stays row-sparse and the optimizer
    updates only the rows of the batch's tokens), zeroes the padding positions and
    applies dropout to the embeddings and to the pooled output, then the optional linear projection
    to `projection_dim` (the output is then [B, projection_dim]).

    Call args:
      inputs: {"token_ids": int32 [B, T], "padding_mask": bool [B, T]} (from `tokenize`).
    """

    input_kind = "text"

    def __init__(self, vocabulary: list[str], *, max_length: int, embedding_dim: int, dropout: float = 0.1,
                 lowercase: bool = True, seed: int | None = None, projection_dim: int = 0,
                 max_bytes: int = DEFAULT_MAX_BYTES, initializer: str = "xavier", **kwargs):
        super().__init__(**kwargs)
        self.initializer_name = initializer
        self.vocabulary = list(vocabulary)
        self.embedding_dim = embedding_dim
        self.projection_dim = projection_dim
        self.dropout_rate = dropout
        self.seed = seed
        self.tokenizer = WordPieceSequences(self.vocabulary, max_length, lowercase=lowercase, pad_token=PAD,
                                            max_bytes=max_bytes, name="tokenizer")
        if dropout > 0:
            self.embedding_dropout = keras.layers.Dropout(dropout, seed=self._seed(1), name="embedding_dropout")
            self.output_dropout = keras.layers.Dropout(dropout, seed=self._seed(2), name="output_dropout")
        if projection_dim:
            self.projection_layer = keras.layers.Dense(projection_dim, name="projection_layer",
                                                       kernel_initializer=self.initializer(4))

    def _seed(self, offset: int) -> int | None:
        return None if self.seed is None else self.seed + 1009 * offset

    def initializer(self, offset: int):
        """The kernels' initializer (`kernel_initializer` of the config's `initializer`), seeded by `offset`."""
        return kernel_initializer(self.initializer_name, self._seed(offset))

    @classmethod
    def common_args(cls, config, context) -> dict:
        return dict(vocabulary=load_or_learn_vocabulary(config, context), max_length=config.max_length,
                    embedding_dim=config.embedding_dim, dropout=config.dropout, lowercase=config.lowercase,
                    seed=context.seed, projection_dim=config.projection_dim, max_bytes=config.max_bytes,
                    initializer=config.initializer)

    def tokenize(self, texts) -> dict:
        return self.tokenizer(texts)

    def save_tokenizer(self, directory: str) -> None:
        write_vocabulary(os.path.join(directory, VOCABULARY_FILE), self.vocabulary)

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(shape=(len(self.vocabulary), self.embedding_dim), name="embeddings",
                                          initializer=keras.initializers.RandomUniform(-0.05, 0.05,
                                                                                       seed=self._seed(3)))
        self.build_encoder()
        if self.projection_dim:
            self.projection_layer.build((None, self.pooled_dim))
        self.built = True

    @property
    def pooled_dim(self) -> int:
        """Width of `encode`'s output."""
        raise NotImplementedError

    @property
    def output_dim(self) -> int:
        return self.projection_dim or self.pooled_dim

    def build_encoder(self) -> None:
        raise NotImplementedError

    def encode(self, embedded, mask, training):
        raise NotImplementedError

    supports_embedding_perturbation = True

    def embed(self, inputs, training=False):
        """float32 [B, T, E]: the token embeddings, zero on the padding."""
        mask = inputs["padding_mask"]
        return tf.gather(self.embeddings.value, inputs["token_ids"]) * tf.cast(mask, tf.float32)[:, :, None]

    def call(self, inputs, training=False):
        return self.from_embedded(self.embed(inputs, training), inputs, training)

    def from_embedded(self, embedded, inputs, training=False):
        mask = inputs["padding_mask"]
        # A perturbation (adversarial training) must not leak into the padding either.
        embedded = embedded * tf.cast(mask, embedded.dtype)[:, :, None]
        if self.dropout_rate > 0:
            embedded = self.embedding_dropout(embedded, training=training)
        pooled = self.encode(embedded, mask, training)
        if self.dropout_rate > 0:
            pooled = self.output_dropout(pooled, training=training)
        if self.projection_dim:
            pooled = self.projection_layer(pooled)
        return pooled

    @property
    def sparse_variables(self) -> list:
        return [self.embeddings] if self.trainable else []
