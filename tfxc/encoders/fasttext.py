"""FastText (Joulin et al., 2017, "Bag of Tricks for Efficient Text Classification"): a mean of hashed n-gram embeddings."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.encoders.base import Encoder
from tfxc.errors import ConfigError
from tfxc.text import DEFAULT_MAX_BYTES, fasttext_ids


@dataclass(frozen=True)
class FastTextEncoderConfig:
    """Config of `FastTextEncoder`.

    Attributes:
      name: "fasttext".
      embedding_dim: width of the embeddings (and of the output without a hidden layer).
      word_buckets: hash buckets of the words.
      ngram_buckets: hash buckets shared by word n-grams and character n-grams.
      word_ngrams: longest word n-gram (1: words only; FastText's -wordNgrams).
      min_char_ngram, max_char_ngram: character n-gram widths of each "<word>" (FastText's
        -minn/-maxn); max_char_ngram 0 turns them off.
      hidden_dim: > 0 adds Dense(hidden_dim) + ReLU after the mean (text_classifier's variant).
      dropout: dropout rate on the output.
      lowercase: lowercase before splitting into words.
      max_bytes: only a text's first this many bytes are read (cut at a character boundary), in
        training and in serving alike. FastText has no such cut, but its bag grows by ~2 ids a byte
        (a 1 MB request: 2.1 M ids, +0.7 GB); 64 KiB is 5x the longest text of the shared sets.
    """

    name: str = "fasttext"
    embedding_dim: int = 100
    word_buckets: int = 1 << 18
    ngram_buckets: int = 1 << 20
    word_ngrams: int = 2
    min_char_ngram: int = 3
    max_char_ngram: int = 5
    hidden_dim: int = 0
    dropout: float = 0.0
    lowercase: bool = True
    max_bytes: int = DEFAULT_MAX_BYTES

    def validate(self, path: str) -> None:
        if min(self.embedding_dim, self.word_buckets, self.ngram_buckets, self.word_ngrams) < 1:
            raise ConfigError(f"{path}: embedding_dim, word_buckets, ngram_buckets and word_ngrams must be >= 1")
        if self.max_char_ngram and not 1 <= self.min_char_ngram <= self.max_char_ngram:
            raise ConfigError(f"{path}: need 1 <= min_char_ngram ({self.min_char_ngram}) <= max_char_ngram "
                              f"({self.max_char_ngram}), or max_char_ngram 0")
        if self.max_bytes < 4:
            raise ConfigError(f"{path}.max_bytes ({self.max_bytes}) must be >= 4 (one UTF-8 character)")
        if self.hidden_dim < 0 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{path}: hidden_dim ({self.hidden_dim}) must be >= 0 and dropout ({self.dropout}) "
                              "in [0, 1)")


class FastTextEncoder(Encoder):
    """The mean of the embeddings of a text's words, word n-grams and character n-grams (all hashed).

    The embedding bag is a `tf.gather` + segment mean, so the table's gradient is
    row-sparse (only the batch's n-grams are updated). FastText initialises the
    table from U(-1/dim, 1/dim), as here.

    Call args:
      inputs: {"ngram_ids": int64 ragged [B, None]} (from `tokenize`, which reads a text's first
        `max_bytes` bytes only).

    Returns:
      float32 [B, hidden_dim or embedding_dim]; zeros for a text without words.
    """

    input_kind = "text"

    def __init__(self, *, embedding_dim=100, word_buckets=1 << 18, ngram_buckets=1 << 20, word_ngrams=2,
                 min_char_ngram=3, max_char_ngram=5, hidden_dim=0, dropout=0.0, lowercase=True,
                 max_bytes=DEFAULT_MAX_BYTES, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim, self.hidden_dim, self.dropout_rate, self.seed = embedding_dim, hidden_dim, dropout, seed
        self.hashing = dict(word_buckets=word_buckets, ngram_buckets=ngram_buckets, word_ngrams=word_ngrams,
                            min_char_ngram=min_char_ngram, max_char_ngram=max_char_ngram, lowercase=lowercase,
                            max_bytes=max_bytes)
        if hidden_dim:
            self.hidden = keras.layers.Dense(hidden_dim, activation="relu", name="hidden",
                                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed))
        if dropout:
            self.dropout = keras.layers.Dropout(dropout, seed=seed, name="dropout")

    @classmethod
    def from_config_dataclass(cls, config: FastTextEncoderConfig, context, *, name="encoder"):
        return cls(embedding_dim=config.embedding_dim, word_buckets=config.word_buckets,
                   ngram_buckets=config.ngram_buckets, word_ngrams=config.word_ngrams,
                   min_char_ngram=config.min_char_ngram, max_char_ngram=config.max_char_ngram,
                   hidden_dim=config.hidden_dim, dropout=config.dropout, lowercase=config.lowercase,
                   max_bytes=config.max_bytes, seed=context.seed, name=name)

    @property
    def output_dim(self) -> int:
        return self.hidden_dim or self.embedding_dim

    def tokenize(self, texts) -> dict:
        return {"ngram_ids": fasttext_ids(texts, **self.hashing)}

    def build(self, input_shape=None):
        rows = self.hashing["word_buckets"] + self.hashing["ngram_buckets"]
        bound = 1.0 / self.embedding_dim
        self.embeddings = self.add_weight(shape=(rows, self.embedding_dim), name="embeddings",
                                          initializer=keras.initializers.RandomUniform(-bound, bound, seed=self.seed))
        if self.hidden_dim:
            self.hidden.build((None, self.embedding_dim))
        self.built = True

    supports_embedding_perturbation = True

    def embed(self, inputs, training=False):
        """float32 ragged [B, None, E]: the embeddings of each text's hashed n-grams."""
        ids = inputs["ngram_ids"]
        return ids.with_values(tf.gather(self.embeddings.value, ids.values))

    def call(self, inputs, training=False):
        return self.from_embedded(self.embed(inputs, training), inputs, training)

    def from_embedded(self, embedded, inputs, training=False):
        x = tf.math.unsorted_segment_mean(embedded.values, embedded.value_rowids(), embedded.nrows())
        if self.hidden_dim:
            x = self.hidden(x)
        if self.dropout_rate:
            x = self.dropout(x, training=training)
        return x

    @property
    def sparse_variables(self) -> list:
        return [self.embeddings] if self.trainable else []
