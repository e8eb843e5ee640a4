"""Sparse bag-of-features encoder: an embedding bag followed by an optional MLP."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.encoders.base import Encoder
from tfxc.encoders.dropout import Dropout
from tfxc.errors import ConfigError
from tfxc.precision import mixed_matmul
from tfxc.utils.graph import uses_portable_ops


# The ways of computing the embedding bag (`SparseBowEncoderConfig.bag`).
BAGS = ("auto", "sparse", "dense", "full")


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
        depends on the batch at the level of one ulp), "full" (`full_embedding_bag`, one product
        with the whole table: its gradient is dense, so Adam updates every row every step, as it
        would any dense layer; for small feature spaces that a batch covers) or "auto" (full for rows
        with at least `FULL_BAG_SHARE` of a feature space of at most `FULL_BAG_MAX_FEATURES`, dense
        for rows with at least `DENSE_BAG_SHARE` of the feature space, else sparse).
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
    negative ids with three extra passes over the [nnz, dim] rows (docs/benchmarks-history.md,
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


def dense_rows(feat_idx: tf.RaggedTensor, feat_val: tf.RaggedTensor, columns: tf.Tensor, width) -> tf.Tensor:
    """The rows as a dense float32 [B, width] matrix: row b gets feat_val's values at `columns` (int64 [nnz],
    one per non-zero; repeated columns add up).

    One segment sum over the flat cell index b·width + column: 1.5-3.5× faster than `tf.scatter_nd` over
    (row, column) pairs on bibtex's, yeast's and delicious' batches (docs/benchmarks-history.md, "Speed").
    """
    rows = feat_idx.nrows()
    cells, values = feat_idx.value_rowids() * width + columns, feat_val.values
    if uses_portable_ops():  # tf2onnx's segment sum needs the ranks, which a branch's inputs lose there
        cells, values = tf.reshape(cells, [-1]), tf.reshape(values, [-1])
    return tf.reshape(tf.math.unsorted_segment_sum(values, cells, rows * width), tf.stack([rows, width]))


def dense_embedding_bag(table: tf.Variable, feat_idx: tf.RaggedTensor, feat_val: tf.RaggedTensor,
                        dtype: tf.DType = tf.float32, max_cells_per_nonzero: float | None = None) -> tf.Tensor:
    """`embedding_bag` as one matrix product over the batch's distinct features, for dense-ish rows.

    The rows become a dense [B, U] matrix over the U distinct feature ids of the batch, multiplied
    with those U rows of the table. Where rows have many features of a small space (delicious: 18
    of 500, bibtex: 68 of 1,836) that product is cheaper than gathering and summing a row per
    non-zero, forward and backward (docs/benchmarks-history.md, "Speed"); the table's gradient is still an
    IndexedSlices over the U rows (already distinct), so the lazy update is the same.

    Same arguments and result as `embedding_bag`, and
      dtype: the product's (`tfxc.precision.mixed_matmul`; the full bag's batches at inference take the
        bfloat16 its training products ran in).
      max_cells_per_nonzero: a batch whose [B, U] matrix has more cells than this per non-zero is
        summed by `embedding_bag` instead (inference: U grows with the batch, and a large batch of
        rows with a few features each costs the product far more than the segment sum).
    """
    unique, position = tf.unique(feat_idx.values)
    num_unique = tf.size(unique, out_type=tf.int64)

    def product():
        dense = dense_rows(feat_idx, feat_val, tf.cast(position, tf.int64), num_unique)
        return mixed_matmul(dense, tf.gather(table, unique), dtype)  # [B, U] x [U, dim]

    # A batch without features (an empty request) would be a product over an empty inner dimension,
    # which oneDNN refuses with an abort, not an error.
    if max_cells_per_nonzero is None:
        return tf.cond(num_unique > 0, product, lambda: tf.zeros(
            tf.stack([feat_idx.nrows(), tf.shape(table, out_type=tf.int64)[1]]), table.dtype))
    # One branch point, not two (each costs a dispatch): the segment sum also sums an empty batch.
    cells = tf.cast(feat_idx.nrows() * num_unique, tf.float32)
    small = cells <= max_cells_per_nonzero * tf.cast(tf.size(feat_idx.values), tf.float32)
    return tf.cond((num_unique > 0) & small, product, lambda: embedding_bag(table, feat_idx, feat_val))


def full_embedding_bag(table: tf.Variable, feat_idx: tf.RaggedTensor, feat_val: tf.RaggedTensor,
                       dtype: tf.DType = tf.float32) -> tf.Tensor:
    """`embedding_bag` as one product of the rows, dense [B, D], with the whole table [D, dim].

    For a feature space small enough that a training batch touches most of it (delicious: 500
    features, 128 rows of 18), no row is gathered or deduplicated and the table's gradient is a
    dense [D, dim] product, which Adam then updates in one fused pass instead of gathering and
    scattering the touched rows and their moments (docs/benchmarks-history.md, "Speed"). A table read this way
    must never also be read row-sparsely (`tf.gather` on the variable): TensorFlow then copies the
    whole variable on every later dense read.

    Same arguments and result as `embedding_bag`, except that the table's gradient is a dense tensor,
    and `dtype`: the product's (`tfxc.precision.mixed_matmul`; bfloat16 under `model.precision`
    mixed_bfloat16, delicious' step 7.4 -> 6.6 ms at the same test P@5).
    """
    dense = dense_rows(feat_idx, feat_val, feat_idx.values, tf.shape(table, out_type=tf.int64)[0])
    return mixed_matmul(dense, table, dtype)


# Rows with at least this share of the feature space non-zero on average take `dense_embedding_bag`
# (reuters' TF-IDF rows, 77 of 15,200 features: a training step 38.9 -> 27.5 ms; docs/benchmarks-history.md, "Speed").
DENSE_BAG_SHARE = 0.004
# ... and only up to this many features (the [B, U] matrix has U <= num_features columns).
DENSE_BAG_MAX_FEATURES = 65536
# Rows with at least this share of a feature space of at most FULL_BAG_MAX_FEATURES take `full_embedding_bag`:
# a batch of 64 such rows touches most of the table (delicious: 3.7 % of 500 features, bibtex: 3.7 % of 1,836,
# yeast: all 103). Where a batch touches few rows, dense Adam would move the untouched ones by their momentum
# alone: medical (0.9 % of 1,449, batches of 16) lost 2.3 test P@1 that way, corel5k (1.6 % of 499) 0.6 PSP@5.
FULL_BAG_SHARE = 0.02
FULL_BAG_MAX_FEATURES = 2048
# Evaluating and serving from a plain read of the table (`SparseBowEncoder._bag_from_tensor`): tables up to this
# size take the whole product (oneDNN runs products within the L2 cache on the calling thread), larger ones
# `sparse_dense_matmul` up to this many non-zeros in the request.
SMALL_TABLE_BYTES = 1 << 19
FEW_NONZEROS = 256
# ... and batches of the product bags by their product over the distinct rows up to this many cells of the
# [B, U] matrix per non-zero, by the segment sum beyond (`dense_embedding_bag`): on real test rows, 1,024 rows
# of reuters (100 cells a non-zero) 116 -> 58 ms, of medical (76) 14.2 -> 11.9 ms, while bibtex's and
# delicious' 26-32 keep their 2x faster product (docs/benchmarks-history.md, "Speed").
SERVED_MAX_CELLS_PER_NONZERO = 64


# How the sparse and dense bags sum a batch read row-sparsely from the variable (training, and evaluation in
# the training process); the full bag trains on `full_embedding_bag` and infers through `_bag_from_tensor`.
BATCH_BAGS = {"sparse": embedding_bag, "dense": dense_embedding_bag}


def auto_bag(bag: str, context) -> str:
    """The bag a config's `bag` means for this data ("auto" resolved; `SparseBowEncoderConfig.bag`)."""
    if bag != "auto":
        return bag
    dense_ish = context.features_per_point >= DENSE_BAG_SHARE * context.num_features
    if (context.features_per_point >= FULL_BAG_SHARE * context.num_features
            and context.num_features <= FULL_BAG_MAX_FEATURES):
        return "full"
    return "dense" if dense_ish and context.num_features <= DENSE_BAG_MAX_FEATURES else "sparse"


class SparseBowEncoder(Encoder):
    """Encodes sparse feature rows (bag of words, TF-IDF) into dense vectors.

    `x -> act(x·E + b) -> dropout -> [Dense -> act -> dropout]*`, where x·E is an
    embedding bag over the row's (feature id, value) pairs, i.e. a sparse
    matmul that never densifies x or E's gradient (except the "full" bag, for small
    feature spaces).

    Args:
      num_features: size of the feature space.
      embedding_dim: output width of the bag.
      hidden_units: widths of the following Dense layers.
      activation: Keras activation name.
      dropout: dropout rate after each activation.
      normalize_inputs: L2-normalise the feature values of each row.
      seed: seeds the initialisers and dropout (None: Keras' global seed).
      bag: "sparse" (`embedding_bag`), "dense" (`dense_embedding_bag`) or "full"
        (`full_embedding_bag`): the same sums, computed as suits the data (`auto_bag`).

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
                 dropout=0.0, normalize_inputs=False, seed=None, init_stddev=0.0, bag="sparse", **kwargs):
        super().__init__(**kwargs)
        if bag not in BAGS[1:]:
            raise ValueError(f"bag must be one of {', '.join(BAGS[1:])}; got {bag!r}")
        self.bag = bag
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
                setattr(self, f"dropout_{i}", Dropout(
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
        encoder = cls(context.num_features, config.embedding_dim, config.hidden_units, config.activation,
                      config.dropout, config.normalize_inputs, seed=context.seed,
                      init_stddev=config.init_stddev, bag=auto_bag(config.bag, context), name=name)
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
        if not training and (self.bag == "full" or self._serving):
            bag = self._bag_from_tensor(feat_idx, feat_val)
        elif self.bag == "full":
            bag = full_embedding_bag(self.embeddings.value, feat_idx, feat_val, self.matmul_dtype)
        else:
            bag = BATCH_BAGS[self.bag](self.embeddings.value, feat_idx, feat_val)
        x = self._act(bag + self.bias)
        if self.dropout_layers:
            x = self.dropout_layers[0](x, training=training)
        for i, layer in enumerate(self.hidden_layers):
            x = self._act(layer(x))
            if self.dropout_layers:
                x = self.dropout_layers[i + 1](x, training=training)
        return x

    _serving = False  # inside `tracing_for_serving`

    @contextlib.contextmanager
    def tracing_for_serving(self):
        """A SavedModel's signatures read every bag's table as a plain tensor (`_bag_from_tensor`).

        Evaluation in the training process cannot do that for the sparse and dense bags: training read
        their tables row-sparsely from the variable, and from then on TensorFlow copies the whole table on
        every plain read (copy-on-read). A served graph never reads the variable row-sparsely, and a loaded
        SavedModel has variables of its own.
        """
        saved, self._serving = self._serving, True
        try:
            yield
        finally:
            self._serving = saved

    def _bag_from_tensor(self, feat_idx: tf.RaggedTensor, feat_val: tf.RaggedTensor) -> tf.Tensor:
        """The bag's sums for the full bag's evaluation and for serving, from a plain read of the table
        (never from the variable row-sparsely, see `full_embedding_bag`), computed as suits the request.

        A one-row request is latency-bound: a product or gather big enough for TensorFlow to split over
        its thread pool waits longer for the pool than it computes (bibtex's 68 rows of a 7.5 MB table:
        +165 us gathered, +470 us as the whole product, +67 us by `tf.sparse.sparse_dense_matmul`, which
        runs on the calling thread). So: the whole product where the table is small enough for oneDNN to
        keep on one thread (yeast's 420 KB), `sparse_dense_matmul` for few non-zeros, and for batches
        the bag's own computation (bibtex's 256 rows: 4.2 ms by `dense_embedding_bag` against 18.7 ms by
        `sparse_dense_matmul`; docs/benchmarks-history.md, "Speed"), the full bag's in `matmul_dtype` as in training
        (bibtex's bag in bfloat16: 7.0 -> 3.8 ms a batch of 256 on this project's AMD machine).
        """
        table = tf.convert_to_tensor(self.embeddings.value)
        if self.num_features * self.embedding_dim * 4 <= SMALL_TABLE_BYTES:
            return full_embedding_bag(table, feat_idx, feat_val)

        def few():
            cells = tf.stack([feat_idx.value_rowids(), feat_idx.values], axis=1)
            rows = tf.SparseTensor(cells, feat_val.values, tf.stack([feat_idx.nrows(), self.num_features]))
            return tf.sparse.sparse_dense_matmul(rows, table)

        def batch():
            if self.bag == "sparse":
                return embedding_bag(table, feat_idx, feat_val)
            # The full bag in the dtype its training products ran in (bfloat16 under mixed precision).
            dtype = self.matmul_dtype if self.bag == "full" else tf.float32
            return dense_embedding_bag(table, feat_idx, feat_val, dtype, SERVED_MAX_CELLS_PER_NONZERO)

        if uses_portable_ops():  # ONNX has no sparse-dense product
            if self.bag == "full":  # rows that touch most of a small table: no Unique, no branch
                return full_embedding_bag(table, feat_idx, feat_val)
            return batch()
        return tf.cond(tf.size(feat_idx.values) <= FEW_NONZEROS, few, batch)

    @property
    def sparse_variables(self) -> list:
        """Variables whose gradients are IndexedSlices (updated row-sparsely)."""
        return [self.embeddings] if self.trainable and self.bag != "full" else []

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features, "embedding_dim": self.embedding_dim,
                "hidden_units": list(self.hidden_units), "activation": self.activation, "dropout": self.dropout,
                "normalize_inputs": self.normalize_inputs, "seed": self.seed, "init_stddev": self.init_stddev}
