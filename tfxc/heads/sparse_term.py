"""A sparse linear term over the input features for heads that score every label (softmax, one-vs-all).

XR-Linear scores a label with a sparse linear model over the TF-IDF row itself
(algorithms.md §1.4); the label tree adds such a term per node
(`LabelTreeHead`'s `sparse_support`). Here every label l weighs S input
features, the top of its PIFA centroid (optionally idf-weighted), with weights
u_l that start as a multiple of the unit-norm centroid there: the start is a
nearest-centroid (Rocchio) score, which a label seen once already has before
training has given it a step.

An exact head needs that term for all L labels of a row. A row has few
features and a feature belongs to few labels' supports (L·S / D on average:
3 at 10^4 labels × 32 features over 10^5 features), so the term is computed
from an inverted index, feature -> the (label, slot) entries that weigh it:
a row's features gather their entries, and the products x_f·u_l,slot are
scatter-added into the [B, L] logits. That costs O(entries touched), never a
[B, L, S] tensor or a dense [D, L] matrix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from tfxc._tf import keras, tf
from tfxc.encoders.sparse_input import split_sparse_input, with_sparse_input
from tfxc.errors import ConfigError

log = logging.getLogger("tfxc.heads")


# eq=False: the fields are arrays; a spec equals itself only.
@dataclass(frozen=True, eq=False)
class SparseTermSpec:
    """The sparse term a head holds (its config's `sparse_support`): each label, or each node of a label
    tree, also weighs some of the row's input features. The head's features are then [h, the row's sparse
    block] of `WithSparseInput`.

    Attributes:
      support: int32 [L, S] for a head of labels, or per level int32 [K_t, S] for a label tree: the input
        features each label (node) weighs, −1 padded (`label_support`; `tfxc.tree.support`).
      max_nnz: the width of the row's sparse block (`sparse_max_nnz`).
      init: None (the weights start at zero), or float32 arrays shaped as `support`: their starting values
        (`sparse_init` × the unit-norm centroids on the support).
      num_features: D, the input features (0: unknown; lookups then search the row instead of indexing it).
    """

    support: object
    max_nnz: int = 64
    init: object = None
    num_features: int = 0


@dataclass(frozen=True)
class SparseTermOptions:
    """The sparse term of the exact heads (`tfxc.heads.sparse_term`), shared by their configs.

    Attributes:
      sparse_support: > 0 adds to every label's (or tree node's) logit a sparse linear term over
        this many input features, the largest of its PIFA centroid (a node's: the sum of its
        labels'); needs sparse inputs (bag of words, TF-IDF). 0: the logits read only the
        encoder's output.
      sparse_max_nnz: the input features per row the term reads (a row with more keeps its
        sparse_max_nnz largest |values|).
      sparse_init: the term's starting weights: this times each unit-norm centroid on its
        features, a nearest-centroid (Rocchio) score that a label seen once has from the first
        step; 0 starts at zero and the term grows where the features help.
      sparse_idf: weigh the centroids by the features' inverse document frequency over the train
        split before the features are picked and the start is set (Rocchio's tf-idf prototypes):
        a feature on many rows, which a label's few points share with their other labels, no
        longer outweighs the label's own rarer features.
    """

    sparse_support: int = 0
    sparse_max_nnz: int = 64
    sparse_init: float = 0.0
    sparse_idf: bool = False

    def validate_sparse_term(self, path: str) -> None:
        if self.sparse_support < 0 or self.sparse_max_nnz < 1:
            raise ConfigError(f"{path}: sparse_support ({self.sparse_support}) must be >= 0 and sparse_max_nnz "
                              f"({self.sparse_max_nnz}) >= 1")
        for key in ("sparse_init", "sparse_idf"):
            if getattr(self, key) and not self.sparse_support:
                raise ConfigError(f"{path}.{key} ({getattr(self, key)}) sets up the sparse term: it needs "
                                  "sparse_support > 0")


# The labels' input features and starting weights, kept in the model directory for life (resume, evaluate, export).
LABEL_SUPPORT_FILE = "label_feature_support.npz"


def inverted_index(support: np.ndarray, num_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Feature -> entries of a support table.

    Args:
      support: int32 [L, S], each label's feature ids (−1 padded).
      num_features: D.

    Returns:
      (offsets int32 [D + 1], entries int32 [N]): the flat entries l·S + j with support[l, j] = f are
      entries[offsets[f]:offsets[f + 1]], ascending; N the non-padding entries of `support`.
    """
    flat = support.ravel()
    entries = np.flatnonzero(flat >= 0)
    entries = entries[np.argsort(flat[entries], kind="stable")]
    counts = np.bincount(flat[entries], minlength=num_features)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    if offsets[-1] >= 2 ** 31:
        raise ValueError(f"a sparse term of {offsets[-1]} entries does not fit int32 indices")
    return offsets.astype(np.int32), entries.astype(np.int32)


def scatter_sparse_logits(ids: tf.Tensor, values: tf.Tensor, offsets: tf.Tensor, entries: tf.Tensor,
                          kernel: tf.Tensor, start: int, stop: int) -> tf.Tensor:
    """Σ_j u_lj · x[f_lj] for the labels l in [start, stop): float32 [B, stop − start].

    Args:
      ids: int32 [B, W], each row's feature ids (ids ≥ D, such as `PAD_FEATURE`, are padding).
      values: float32 [B, W], their values.
      offsets, entries: the `inverted_index` of the support (int32 [D + 1], int32 [N]).
      kernel: float32 [L, S], the weights u.
      start, stop: the block of labels to score.
    """
    row, label, contribution = touched_entries(ids, values, offsets, entries, kernel)
    inside = (label >= start) & (label < stop)
    index = tf.stack([row, tf.where(inside, label - start, 0)], axis=1)
    return tf.scatter_nd(index, tf.where(inside, contribution, 0.0), tf.stack([tf.shape(ids)[0], stop - start]))


def scatter_sparse_logits_at(ids: tf.Tensor, values: tf.Tensor, offsets: tf.Tensor, entries: tf.Tensor,
                             kernel: tf.Tensor, columns: tf.Tensor, width) -> tf.Tensor:
    """The sparse term of a subset of labels: float32 [B, width], label l in column columns[l].

    As `scatter_sparse_logits`, with `columns` int32 [L] (−1 for the labels left out) and `width` the
    subset's size: an active set of labels scored in one pass (`tfxc.heads.active_set_losses`).
    """
    row, label, contribution = touched_entries(ids, values, offsets, entries, kernel)
    column = tf.gather(columns, label)
    inside = column >= 0
    index = tf.stack([row, tf.where(inside, column, 0)], axis=1)
    return tf.scatter_nd(index, tf.where(inside, contribution, 0.0), tf.stack([tf.shape(ids)[0], width]))


def touched_entries(ids: tf.Tensor, values: tf.Tensor, offsets: tf.Tensor, entries: tf.Tensor,
                    kernel: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The support entries the rows' features reach, each as (row int32 [N], label int32 [N], u_lj · x[f_lj]
    float32 [N]); arguments as for `scatter_sparse_logits`."""
    num_features = tf.shape(offsets)[0] - 1
    slots = tf.shape(kernel)[1]
    width = tf.shape(ids)[1]
    flat_ids = tf.reshape(ids, [-1])
    valid = (flat_ids >= 0) & (flat_ids < num_features)
    safe = tf.where(valid, flat_ids, 0)
    lo = tf.gather(offsets, safe)
    hi = tf.where(valid, tf.gather(offsets, safe + 1), lo)
    positions = tf.ragged.range(lo, hi)                                  # [B·W, None]
    entry = tf.gather(entries, positions.values)
    owner = tf.cast(positions.value_rowids(), tf.int32)                 # the (row, slot) of the row's feature
    label, slot = entry // slots, entry % slots
    weight = tf.gather_nd(kernel, tf.stack([label, slot], axis=1))
    contribution = weight * tf.gather(tf.reshape(values, [-1]), owner)
    return owner // width, label, contribution


def candidate_sparse_logits(ids: tf.Tensor, values: tf.Tensor, offsets: tf.Tensor, entries: tf.Tensor,
                            kernel: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """The sparse term of each row's own candidate labels: float32 [B, C] for candidates int32 [B, C].

    A row's candidates must be distinct. The entries the row's features reach (`touched_entries`) are
    matched to its candidates by a search in the sorted keys row·L + label, so the cost is the entries
    touched plus a sort of B·C keys, never a [B, L] block (a label index's candidates,
    `tfxc.heads.label_index`).
    """
    num_labels = tf.cast(tf.shape(kernel)[0], tf.int64)
    shape = tf.shape(candidates)
    rows = tf.range(tf.cast(shape[0], tf.int64))[:, None]
    keys = tf.reshape(rows * num_labels + tf.cast(candidates, tf.int64), [-1])
    order = tf.argsort(keys)
    sorted_keys = tf.gather(keys, order)
    row, label, contribution = touched_entries(ids, values, offsets, entries, kernel)
    wanted = tf.cast(row, tf.int64) * num_labels + tf.cast(label, tf.int64)
    at = tf.minimum(tf.searchsorted(sorted_keys, wanted), tf.size(keys) - 1)
    hit = tf.gather(sorted_keys, at) == wanted
    slot = tf.gather(order, at)
    flat = tf.scatter_nd(tf.where(hit, slot, 0)[:, None], tf.where(hit, contribution, 0.0), tf.shape(keys))
    return tf.reshape(flat, shape)


def label_centroid_support(z, size: int, feature_weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Each label's `size` features of largest PIFA mass and its unit-norm centroid there.

    Args:
      z: label features [L, D] (PIFA, CSR).
      size: S.
      feature_weights: None, or float32 [D] (the idf) to weigh the centroids by before picking.

    Returns:
      (int32 [L, S] feature ids, −1 padded; float32 [L, S] weights, unit L2 norm per label, 0 at the padding).
    """
    from tfxc.tree.support import top_unit_centroids, weigh_columns

    return top_unit_centroids(weigh_columns(z, feature_weights), size)


def support_matrix(ids: np.ndarray, weights: np.ndarray, num_features: int):
    """The table (ids int32 [L, S], −1 padded; weights float32 [L, S]) as a SciPy CSR matrix [L, D]."""
    kept = ids >= 0
    return scipy.sparse.csr_matrix((weights[kept], (np.nonzero(kept)[0], ids[kept])),
                                   shape=(ids.shape[0], num_features))


# The last tables built for a build without a model directory (the memory plan's, `model_shapes`), kept until the
# real build that follows takes them: the two builds of one run then pick the nodes' features once.
_UNSAVED: dict = {}


def load_or_build_support(config, context, filename: str, build, shapes: list,
                          structure: str = "", check_shapes: bool = True) -> tuple[list | None, list | None]:
    """The sparse term's support tables and starting weights for a head config with `sparse_support`.

    Read from `filename` in the model directory when there, else built from the train split's
    PIFA (idf-weighted with `sparse_idf`) and saved there, so that a resumed, evaluated or
    exported model reads the same tables.

    Args:
      config: a config with the `SparseTermOptions` fields.
      context: the `BuildContext`.
      filename: the tables' file in the model directory.
      build: (z CSR [L, D], size, feature weights float32 [D] or None) -> (support, weights), lists of
        int32 / float32 arrays (`tfxc.tree.support.node_centroid_support`, `label_centroid_support`).
      shapes: the arrays' shapes, to check a saved file against.
      structure: what else `build` depends on besides the data and the options (e.g. the label tree's
        `fingerprint`).
      check_shapes: False takes a saved file's tables as they are (a solver wrote them, each level as
        wide as its nodes need, at most `shapes`' widths); built ones still have `shapes`.

    Returns:
      (support, the unit-norm centroids on it: float32 arrays shaped like the support); (None, None)
      without `sparse_support`. The term starts at `starting_weights` of the centroids.
    """
    from tfxc.data.info import DatasetInfo
    from tfxc.encoders.sparse_input import PAD_FEATURE
    from tfxc.errors import DataError
    from tfxc.tree import cached_split_pifa
    from tfxc.tree.pifa import cached_split_idf
    from tfxc.tree.support import load_support, save_support

    if not config.sparse_support:
        return None, None
    if context.num_features >= PAD_FEATURE:
        raise ConfigError(f"model.head.sparse_support handles at most {PAD_FEATURE - 1} input features; the data "
                          f"has {context.num_features}")
    saved = os.path.join(context.model_dir, filename) if context.model_dir else None
    if saved and os.path.exists(saved):
        support, weights = load_support(saved, with_weights=True)
    elif context.data_dir:
        key = (os.path.realpath(context.data_dir), filename, config.sparse_support, config.sparse_idf,
               tuple(shapes), structure)
        if key in _UNSAVED:
            support, weights = _UNSAVED.pop(key)
        else:
            info = DatasetInfo.load(context.data_dir)
            support, weights = build(cached_split_pifa(info), config.sparse_support,
                                     cached_split_idf(info) if config.sparse_idf else None)
            if not saved:  # one entry at most: a later build of another model replaces it
                _UNSAVED.clear()
                _UNSAVED[key] = (support, weights)
    else:
        raise ConfigError("model.head.sparse_support picks the input features of each label or node from the "
                          "training data: train the model first")
    if check_shapes and [s.shape for s in support] != shapes:
        raise DataError(f"the sparse term's support has shapes {[s.shape for s in support]}; the model and "
                        f"sparse_support need {shapes}", path=saved)
    if saved and not os.path.exists(saved):
        save_support(saved, support, weights)
    return support, weights


def starting_weights(config, centroids: list | None) -> list | None:
    """The sparse term's starting weights: sparse_init × the unit-norm centroids (None: start at zero)."""
    if centroids is None or not config.sparse_init:
        return None
    return [config.sparse_init * w for w in centroids]


def label_support(config, context) -> tuple[np.ndarray | None, np.ndarray | None]:
    """An exact head's (support int32 [L, S], starting weights float32 [L, S] or None) (`load_or_build_support`)."""
    def build(z, size, idf):
        ids, weights = label_centroid_support(z, size, idf)
        return [ids], [weights]

    support, centroids = load_or_build_support(config, context, LABEL_SUPPORT_FILE, build,
                                               [(context.num_labels, config.sparse_support)])
    if support is None:
        return None, None
    init = starting_weights(config, centroids)
    log.info("sparse term: %d labels x %d input features (%d entries)", *support[0].shape, int((support[0] >= 0).sum()))
    return support[0], None if init is None else init[0]


class SparseTerm(keras.layers.Layer):
    """The weights of the sparse term and its inverted index, as variables of the model (saved and served).

    Args:
      support: int32 [L, S] (`label_centroid_support`).
      num_features: D.
      init: float32 [L, S] starting weights (zeros where None).
    """

    def __init__(self, support: np.ndarray, num_features: int, init: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        self._support, self._init, self.num_features = support, init, num_features

    def build(self, input_shape=None):
        offsets, entries = inverted_index(self._support, self.num_features)
        self.offsets = self.add_weight(shape=offsets.shape, dtype="int32", trainable=False, name="offsets",
                                       initializer=keras.initializers.Constant(offsets))
        self.entries = self.add_weight(shape=entries.shape, dtype="int32", trainable=False, name="entries",
                                       initializer=keras.initializers.Constant(entries))
        start = "zeros" if self._init is None else keras.initializers.Constant(self._init)
        self.kernel = self.add_weight(shape=self._support.shape, name="kernel", initializer=start)
        self.built = True

    def logits(self, ids: tf.Tensor, values: tf.Tensor, start: int, stop: int) -> tf.Tensor:
        """float32 [B, stop − start] for a row block of `WithSparseInput` (ids int32 [B, W], values float32 [B, W])."""
        return scatter_sparse_logits(ids, values, self.offsets.value, self.entries.value, self.kernel.value,
                                     start, stop)

    def logits_at(self, ids: tf.Tensor, values: tf.Tensor, columns: tf.Tensor, width) -> tf.Tensor:
        """float32 [B, width] for the labels l with columns[l] ≥ 0 (`scatter_sparse_logits_at`)."""
        return scatter_sparse_logits_at(ids, values, self.offsets.value, self.entries.value, self.kernel.value,
                                        columns, width)

    def candidate_logits(self, ids: tf.Tensor, values: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
        """float32 [B, C] of each row's distinct candidate labels int32 [B, C] (`candidate_sparse_logits`)."""
        return candidate_sparse_logits(ids, values, self.offsets.value, self.entries.value, self.kernel.value,
                                       candidates)


class SparseInput:
    """The input side of a sparse term, a part that a head with one holds (`DenseLabelHead`, `LabelTreeHead`).

    The head's encoder appends each row's `max_nnz` largest input features to its embedding
    (`tfxc.encoders.sparse_input.with_sparse_input`), so the head reads features float32
    [B, dim + 2·max_nnz]: h [B, dim], then the row's feature ids and values [B, max_nnz] each.
    `tfxc.heads.base.Head` asks the part to arrange the encoder and to strip the block from h;
    the head splits the block off itself where it scores the term.

    Args:
      max_nnz: the width of the row's sparse block (`sparse_max_nnz`).
    """

    def __init__(self, max_nnz: int):
        self.max_nnz = max_nnz

    def make_encoder(self, encoder, context):
        """`encoder` (an `Encoder`), made to append the row's sparse block to its embedding."""
        return with_sparse_input(encoder, self.max_nnz, context)

    def encoder_dim(self, input_shape) -> int:
        """dim: the width of the encoder's own embedding within features shaped `input_shape` [..., dim + 2·max_nnz]."""
        return input_shape[-1] - 2 * self.max_nnz

    def split(self, features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(h float32 [B, dim], ids int32 [B, max_nnz], values float32 [B, max_nnz]) of features [B, dim + 2·max_nnz]."""
        return split_sparse_input(features, self.max_nnz)
