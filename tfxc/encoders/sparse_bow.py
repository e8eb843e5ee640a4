"""Sparse bag-of-features encoder: an embedding bag followed by an optional MLP."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.encoders.base import Encoder
from tfxc.errors import ConfigError


# The ways of computing the embedding bag (`SparseBowEncoderConfig.bag`).
BAGS = ("auto", "sparse", "dense")


@dataclass(frozen=True)
class SparseBowEncoderConfig:
    """Config of `SparseBowEncoder`.

    Attributes:
      name: "sparse_bow".
      embedding_dim: width of the embedding bag (the first hidden layer).
      hidden_units: widths of further Dense layers after the bag.
      activation: applied after the bag and after each hidden layer.
      dropout: dropout rate after each activation.
      normalize_inputs: L2-normalise each row's feature values first.
      init_stddev: > 0 draws the embedding table from N(0, init_stddev²) instead of Glorot uniform.
      trainable: false freezes the whole encoder (e.g. a fixed random projection of the
        bag of words, so that a linear head on top is a convex problem).
      raw_text: compute the TF-IDF features from the raw text in the graph (data converted from
        JSONL; `tfxc.text.tfidf`), in tf.data and in the SavedModel, which then takes strings.
      bag: how the embedding bag is computed: "sparse" (`embedding_bag`, a segment sum per row:
        a row's embedding is bit-identical in any batch), "dense" (`dense_embedding_bag`, one matrix
        product over the batch's distinct features: faster on dense-ish rows, with rounding that
        depends on the batch at the level of one ulp) or "auto" (dense for rows with at least
        `DENSE_BAG_SHARE` of the feature space, else sparse).
    """

    name: str = "sparse_bow"
    embedding_dim: int = 512
    hidden_units: tuple[int, ...] = ()
    activation: str = "relu"
    dropout: float = 0.0
    normalize_inputs: bool = False
    init_stddev: float = 0.0
    trainable: bool = True
    raw_text: bool = False
    bag: str = "auto"

    def validate(self, path: str) -> None:
        if self.bag not in BAGS:
            raise ConfigError(f"{path}.bag '{self.bag}' is not one of {', '.join(BAGS)}")
        if self.embedding_dim < 1 or any(u < 1 for u in self.hidden_units):
            raise ConfigError(f"{path}: embedding_dim ({self.embedding_dim}) and hidden_units "
                              f"{list(self.hidden_units)} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{path}.dropout ({self.dropout}) must be in [0, 1)")
        if self.init_stddev < 0:
            raise ConfigError(f"{path}.init_stddev ({self.init_stddev}) must be >= 0")
        try:
            keras.activations.get(self.activation)
        except ValueError:
            raise ConfigError(f"{path}.activation '{self.activation}' is not a Keras activation") from None


def embedding_bag(table: tf.Variable, feat_idx: tf.RaggedTensor, feat_val: tf.RaggedTensor) -> tf.Tensor:
    """Σ_j value_j · table[id_j] per row.

    `tf.gather` on the raw variable keeps the table gradient an IndexedSlices
    over the touched rows only, so optimizers can update the table sparsely.
    A ragged row's values are contiguous, so the sum is a *sorted* segment sum:
    TF's unsorted one is about twice as slow on CPU, and its gradient masks
    negative ids with three extra passes over the [nnz, dim] rows (BENCHMARKS.md,
    "Speed"). Trailing rows without features, which a segment sum leaves out, are
    padded back as zeros.

    Args:
      table: float32 [num_features, dim].
      feat_idx: int64 ragged [B, None].
      feat_val: float32 ragged [B, None], same row lengths as feat_idx.

    Returns:
      float32 [B, dim].
    """
    rows = tf.gather(table, feat_idx.values) * feat_val.values[:, None]
    sums = tf.math.segment_sum(rows, feat_idx.value_rowids())
    return tf.pad(sums, [[0, feat_idx.nrows() - tf.shape(sums, out_type=tf.int64)[0]], [0, 0]])


def dense_embedding_bag(table: tf.Variable, feat_idx: tf.RaggedTensor, feat_val: tf.RaggedTensor) -> tf.Tensor:
    """`embedding_bag` as one matrix product over the batch's distinct features, for dense-ish rows.

    The rows become a dense [B, U] matrix over the U distinct feature ids of the batch, multiplied
    with those U rows of the table. Where rows have many features of a small space (delicious: 18
    of 500, bibtex: 68 of 1,836) that product is cheaper than gathering and summing a row per
    non-zero, forward and backward (BENCHMARKS.md, "Speed"); the table's gradient is still an
    IndexedSlices over the U rows (already distinct), so the lazy update is the same.

    Same arguments and result as `embedding_bag`.
    """
    unique, position = tf.unique(feat_idx.values)
    cells = tf.stack([feat_idx.value_rowids(), tf.cast(position, tf.int64)], axis=1)
    num_unique = tf.size(unique, out_type=tf.int64)

    def product():
        dense = tf.scatter_nd(cells, feat_val.values, tf.stack([feat_idx.nrows(), num_unique]))
        return tf.matmul(dense, tf.gather(table, unique))  # [B, U] x [U, dim]

    # A batch without features (an empty request) would be a product over an empty inner dimension,
    # which oneDNN refuses with an abort, not an error.
    return tf.cond(num_unique > 0, product,
                   lambda: tf.zeros(tf.stack([feat_idx.nrows(), tf.shape(table, out_type=tf.int64)[1]]), table.dtype))


# Rows with at least this share of the feature space non-zero on average take `dense_embedding_bag`
# (reuters' TF-IDF rows, 77 of 15,200 features: a training step 38.9 -> 27.5 ms; BENCHMARKS.md, "Speed").
DENSE_BAG_SHARE = 0.004
# ... and only up to this many features (the [B, U] matrix has U <= num_features columns).
DENSE_BAG_MAX_FEATURES = 65536


class SparseBowEncoder(Encoder):
    """Encodes sparse feature rows (bag of words, TF-IDF) into dense vectors.

    `x -> act(x·E + b) -> dropout -> [Dense -> act -> dropout]*`, where x·E is an
    embedding bag over the row's (feature id, value) pairs, i.e. a sparse
    matmul that never densifies x or E's gradient.

    Args:
      num_features: size of the feature space.
      embedding_dim: output width of the bag.
      hidden_units: widths of the following Dense layers.
      activation: Keras activation name.
      dropout: dropout rate after each activation.
      normalize_inputs: L2-normalise the feature values of each row.
      seed: seeds the initialisers and dropout (None: Keras' global seed).
      dense_bag: compute the bag with `dense_embedding_bag` (the same result; faster on rows with
        many features of a small space, see `DENSE_BAG_SHARE`).

    Call args:
      inputs: {"feat_idx": int64 ragged [B, None], "feat_val": float32 ragged [B, None]}.
      training: enables dropout.

    Returns:
      float32 [B, output_dim].

    Example:
      enc = SparseBowEncoder(num_features=1000, embedding_dim=64)
      x = {"feat_idx": tf.ragged.constant([[1, 5]], tf.int64), "feat_val": tf.ragged.constant([[1., .5]])}
      enc(x).shape  # (1, 64)
    """

    def __init__(self, num_features: int, embedding_dim: int, hidden_units=(), activation="relu",
                 dropout=0.0, normalize_inputs=False, seed=None, init_stddev=0.0, dense_bag=False, **kwargs):
        super().__init__(**kwargs)
        self.dense_bag = dense_bag
        self.init_stddev = init_stddev
        self.num_features = num_features
        self.embedding_dim = embedding_dim
        self.hidden_units = tuple(hidden_units)
        self.activation = activation
        self.dropout = dropout
        self.normalize_inputs = normalize_inputs
        self.seed = seed
        self._act = keras.activations.get(activation)
        # Sub-layers are plain attributes, not list items: tf.train.Checkpoint
        # does not see into Keras 3's tracked lists, so listed layers would be
        # silently missing from checkpoints.
        for i, units in enumerate(self.hidden_units):
            setattr(self, f"hidden_{i}", keras.layers.Dense(units, name=f"hidden_{i}",
                                                            kernel_initializer=self._initializer(i + 1)))
        if dropout > 0:
            for i in range(len(self.hidden_units) + 1):
                setattr(self, f"dropout_{i}", keras.layers.Dropout(
                    dropout, seed=None if seed is None else seed + i, name=f"dropout_{i}"))

    @property
    def hidden_layers(self) -> list:
        return [getattr(self, f"hidden_{i}") for i in range(len(self.hidden_units))]

    @property
    def dropout_layers(self) -> list:
        return [getattr(self, f"dropout_{i}") for i in range(len(self.hidden_units) + 1)] if self.dropout > 0 else []

    def _initializer(self, index: int):
        return keras.initializers.GlorotUniform(seed=None if self.seed is None else self.seed + 101 * index)

    @classmethod
    def from_config_dataclass(cls, config: SparseBowEncoderConfig, context, *, name="encoder"):
        dense_bag = config.bag == "dense" or (
            config.bag == "auto" and context.num_features <= DENSE_BAG_MAX_FEATURES
            and context.features_per_point >= DENSE_BAG_SHARE * context.num_features)
        encoder = cls(context.num_features, config.embedding_dim, config.hidden_units, config.activation,
                      config.dropout, config.normalize_inputs, seed=context.seed,
                      init_stddev=config.init_stddev, dense_bag=dense_bag, name=name)
        encoder.trainable = config.trainable
        if config.raw_text:
            from tfxc.encoders.text_common import tfidf_vectorizer

            encoder.vectorizer = tfidf_vectorizer(context)
        return encoder

    vectorizer = None  # a `TfidfVectorizer` when the encoder reads raw text

    @property
    def input_kind(self) -> str:
        return "text" if self.vectorizer is not None else "features"

    def tokenize(self, texts) -> dict:
        if self.vectorizer is None:
            return super().tokenize(texts)
        return self.vectorizer(texts)

    @property
    def output_dim(self) -> int:
        return self.hidden_units[-1] if self.hidden_units else self.embedding_dim

    def build(self, input_shape=None):
        initializer = (keras.initializers.RandomNormal(stddev=self.init_stddev, seed=self.seed)
                       if self.init_stddev else self._initializer(0))
        self.embeddings = self.add_weight(shape=(self.num_features, self.embedding_dim), name="embeddings",
                                          initializer=initializer)
        self.bias = self.add_weight(shape=(self.embedding_dim,), name="bias", initializer="zeros")
        width = self.embedding_dim
        for layer in self.hidden_layers:
            layer.build((None, width))
            width = layer.units
        self.built = True

    def call(self, inputs, training=False):
        feat_idx, feat_val = inputs["feat_idx"], inputs["feat_val"]
        if self.normalize_inputs:
            norm = tf.sqrt(tf.reduce_sum(tf.square(feat_val), axis=1, keepdims=True))
            feat_val = feat_val / tf.maximum(norm, 1e-12)
        bag = dense_embedding_bag if self.dense_bag else embedding_bag
        x = self._act(bag(self.embeddings.value, feat_idx, feat_val) + self.bias)
        if self.dropout_layers:
            x = self.dropout_layers[0](x, training=training)
        for i, layer in enumerate(self.hidden_layers):
            x = self._act(layer(x))
            if self.dropout_layers:
                x = self.dropout_layers[i + 1](x, training=training)
        return x

    @property
    def sparse_variables(self) -> list:
        """Variables whose gradients are IndexedSlices (updated row-sparsely)."""
        return [self.embeddings] if self.trainable else []

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features, "embedding_dim": self.embedding_dim,
                "hidden_units": list(self.hidden_units), "activation": self.activation, "dropout": self.dropout,
                "normalize_inputs": self.normalize_inputs, "seed": self.seed, "init_stddev": self.init_stddev}
