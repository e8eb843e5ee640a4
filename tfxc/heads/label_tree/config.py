"""The label tree head's config, its grouped options, and the structure a model keeps for life: its tree and its
nodes' input features.

The tree and the features are read from the model directory when there
(resume, evaluate, export), else built from the training data and saved there
(`tfxc.heads.label_tree`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import ClassVar

from tfxc.config.roles import PREDICTION
from tfxc.errors import ConfigError
from tfxc.heads.label_priors import check_propensity_weight
from tfxc.heads.sparse_term import SparseTermOptions

log = logging.getLogger("tfxc.heads")

# The tree of a model, saved in its directory when the model is first built and reused from then on.
TREE_FILE = "label_tree.npz"
# Likewise the input features each node weighs (`sparse_support`).
SUPPORT_FILE = "node_feature_support.npz"
LOSSES = ("squared_hinge", "weighted_squared_hinge", "bce", "softmax")
POST_PROCESSORS = ("noop", "sigmoid", "log-sigmoid") + tuple(
    f"{log_}l{p}-hinge" for log_ in ("", "log-") for p in range(1, 5))
NEGATIVES = ("tfn", "tfn+man")
REDUCTIONS = ("mean", "sum")

# The head's scalar options: arguments of `LabelTreeHead` named and defaulted as in `LabelTreeHeadConfig`.
HEAD_OPTIONS = ("negatives", "max_active", "loss", "reduction", "dense_level_max", "use_bias", "init_stddev",
                "post_processor", "final_post_processor")


@dataclass(frozen=True, eq=False)
class Shortlist:
    """The label tree's shortlist (`tfxc.heads.label_tree.shortlist`; needs the sparse term): in prediction, the labels
    of a nearest-centroid ranker over all L join the beam's candidates.

    Attributes:
      centroids: float32 [K_last, S]: the last level's unit-norm centroids on its support.
      size, weight, postings: `shortlist_size` (> 0), `shortlist_weight`, `shortlist_postings` of the config.
    """

    centroids: object
    size: int
    weight: float = 0.3
    postings: int = 64


@dataclass(frozen=True)
class LabelTreePrediction:
    """How a trained label tree ranks (`LabelTreeHeadConfig.prediction`): settings of a model, not of its
    training, so `--set model.head.prediction.beam_size=20` on `tfxc.evaluate`, `tfxc.predict` or `tfxc.export`
    tries another value on the trained weights (choose it on the validation split). PECOS keeps its tree
    models' `PredParams` apart from their `TrainParams` the same way.

    Attributes:
      beam_size: nodes kept per level. With `tfn+man` negatives training reads it too (the beam's
        nodes are the matcher-aware negatives), and then a resumed run may not change it.
      propensity_rerank: τ ≥ 0: the beam's last-level candidates (at least beam_size of them) are ranked
        by their score plus τ·log(1/p_l), p_l the label's propensity: a rare label the beam found moves up
        past a frequent one of a close score. τ = 1 on probability scores is the PSP@k-optimal rule of
        propensity-scored PLTs (Wydmuch et al., SIGIR 2021); a small τ trades little P@k for PSP@k.
      shortlist_weight: with `shortlist_size`, a candidate's rank is its tree path score + this × x · c_l
        (≥ 0; `tfxc.heads.label_tree.shortlist`).
    """

    ROLE: ClassVar[str] = PREDICTION

    beam_size: int = 10
    propensity_rerank: float = 0.0
    shortlist_weight: float = 0.3

    def validate(self, path: str) -> None:
        if self.beam_size < 1:
            raise ConfigError(f"{path}.beam_size ({self.beam_size}) must be >= 1")
        if not 0.0 <= self.propensity_rerank <= 2.0:
            raise ConfigError(f"{path}.propensity_rerank ({self.propensity_rerank}) must be in [0, 2]")
        if self.shortlist_weight < 0:
            raise ConfigError(f"{path}.shortlist_weight ({self.shortlist_weight}) must be >= 0")


@dataclass(frozen=True)
class LabelTreeHeadConfig(SparseTermOptions):
    """Config of `LabelTreeHead`.

    Attributes:
      name: "label_tree".
      tree_file: a saved tree (.npz, e.g. another model's label_tree.npz) or a taxonomy
        (.tsv: `label<TAB>top ancestor<TAB>...`); empty: cluster PIFA label features of the train split.
      max_leaf_size: clustering: the most labels per leaf cluster (PECOS default 100).
      nr_splits: clustering: children per node above the leaf clusters (PECOS default 16).
      min_codes: clustering: stop adding levels at this many nodes (0: nr_splits).
      kmeans_max_iter: clustering: 2-means passes per node.
      spherical: clustering: spherical centroids (PECOS default).
      tree_seed: clustering seed.
      skip_unseen_labels: clustering: leave the labels that no training row has out of the
        tree. They could not be learned and are never predicted; at 10^7 labels of which
        10^5 occur, their node vectors would be nearly all of the model.
      negatives: "tfn" (siblings under the true parents) or "tfn+man" (also the children of
        the previous level's beam, computed by the model being trained).
      max_active: > 0 caps the active nodes per row on the levels whose vectors are gathered
        (see dense_level_max), keeping every positive and a random sample of the negatives:
        the cost of those levels grows with the active nodes per row.
      loss: per level, over the active nodes: "squared_hinge", "weighted_squared_hinge"
        (positives weighted by how many of the row's labels they hold), "bce" or "softmax"
        (cross-entropy over the active nodes, target uniform over the positives).
      reduction: how a row's per-node losses of a level add up (not for "softmax"): "mean" over
        its active nodes, or "sum" divided by the level's fan-out (a constant), so every
        (row, node) pair weighs the same whatever the row's label count: each node is its own
        binary problem over the rows that reach it, as in a probabilistic label tree
        (Jasinska et al., ICML 2016; napkinXC). For a row with one label both are equal.
      dense_level_max: in training, levels with at most this many nodes are scored whole
        by one matmul (fast BLAS, dense gradient); bigger levels score only each row's active
        nodes (the compiled pair kernels of `tfxc.heads.pair_scores`; row-sparse gradient). A
        speed knob: both give the same loss. At a batch of 1024 the whole product costs more
        than the pairs from a few thousand nodes on (BENCHMARKS.md, "The label tree's step").
      use_bias: a bias per node.
      init_stddev: node vectors start as N(0, init_stddev²).
      post_processor: how a child's score v combines with its parent's p on the upper levels:
        noop, sigmoid, log-sigmoid, lP-hinge or log-lP-hinge with P in 1..4 (§1.5).
      final_post_processor: the same for the last level ("": post_processor). PECOS's
        XR-Transformer rankers use "noop": the raw label score, within the beam.
      sparse_support, sparse_max_nnz, sparse_init, sparse_idf: the sparse term over the input
        features (`tfxc.heads.sparse_term.SparseTermOptions`), per node: its centroid is the sum
        of its labels' PIFA rows.
      shortlist_size: > 0 (needs sparse_support) adds, in prediction, this many labels to the beam's
        candidates: those of largest x · c_l, c_l the label's unit-norm (idf-weighted with
        sparse_idf) PIFA centroid on its support, over all labels; every candidate is then
        ranked by its tree path score + prediction.shortlist_weight × x · c_l
        (`tfxc.heads.label_tree.shortlist`). A tail label under a busy branch, which the beam never
        reaches, is found this way.
      shortlist_postings: the shortlist reads, per input feature of a row, the labels that weigh
        the feature most, at most this many: a row's cost is bounded by its features.
      propensity_weight: α ≥ 0: a positive node weighs (1/p)^α in its level's loss, p the
        propensity (Jain et al., KDD 2016) of the node's training frequency (the label's own
        at the last level; the sum over its labels above), so that α > 0 leans toward the
        rare labels, as the exact heads' `propensity_weight` does.
      prediction: how the trained model ranks (`LabelTreePrediction`): beam_size, propensity_rerank,
        shortlist_weight.
    """

    name: str = "label_tree"
    tree_file: str = ""
    max_leaf_size: int = 100
    nr_splits: int = 16
    min_codes: int = 0
    kmeans_max_iter: int = 20
    spherical: bool = True
    tree_seed: int = 0
    skip_unseen_labels: bool = True
    negatives: str = "tfn+man"
    max_active: int = 0
    loss: str = "squared_hinge"
    reduction: str = "mean"
    dense_level_max: int = 2048
    use_bias: bool = True
    init_stddev: float = 0.02
    post_processor: str = "l3-hinge"
    final_post_processor: str = ""
    propensity_weight: float = 0.0
    shortlist_size: int = 0
    shortlist_postings: int = 64
    prediction: LabelTreePrediction = field(default_factory=LabelTreePrediction)

    def reads_in_training(self) -> tuple[str, ...]:
        """The prediction settings training reads too (`tfxc.config.roles.role_of`): the beam, where its nodes
        are the negatives."""
        return ("prediction.beam_size",) if "man" in self.negatives else ()

    @property
    def solved_support(self) -> bool:
        """Whether a solver writes the nodes' features into the model directory before the model is built (each
        level's tables then as wide as its nodes need, which can exceed sparse_support on levels of few nodes; a
        build without that file, such as the memory plan's, takes the PIFA centroids' sparse_support features)."""
        return False

    def validate(self, path: str) -> None:
        if self.max_leaf_size < 1 or self.nr_splits < 2 or self.min_codes < 0 or self.kmeans_max_iter < 1:
            raise ConfigError(f"{path}: max_leaf_size ({self.max_leaf_size}) and kmeans_max_iter "
                              f"({self.kmeans_max_iter}) must be >= 1, nr_splits ({self.nr_splits}) >= 2, "
                              f"min_codes ({self.min_codes}) >= 0")
        if self.max_active < 0 or self.init_stddev <= 0 or self.dense_level_max < 0:
            raise ConfigError(f"{path}: max_active ({self.max_active}) and dense_level_max ({self.dense_level_max}) "
                              f"must be >= 0, init_stddev ({self.init_stddev}) > 0")
        for key, value, options in (("negatives", self.negatives, NEGATIVES), ("loss", self.loss, LOSSES),
                                    ("reduction", self.reduction, REDUCTIONS),
                                    ("post_processor", self.post_processor, POST_PROCESSORS),
                                    ("final_post_processor", self.final_post_processor or "noop", POST_PROCESSORS)):
            if value not in options:
                raise ConfigError(f"{path}.{key} '{value}' is not one of {', '.join(options)}")
        self.validate_sparse_term(path)
        check_propensity_weight(self, path)
        if self.shortlist_size < 0 or self.shortlist_postings < 1:
            raise ConfigError(f"{path}: shortlist_size ({self.shortlist_size}) must be >= 0, shortlist_postings "
                              f"({self.shortlist_postings}) >= 1")
        if self.shortlist_size and not self.sparse_support:
            raise ConfigError(f"{path}.shortlist_size ({self.shortlist_size}) ranks labels by their centroids on "
                              "their input features: it needs sparse_support > 0")
        if self.tree_file and not self.tree_file.endswith((".npz", ".tsv")):
            raise ConfigError(f"{path}.tree_file '{self.tree_file}' must be a saved tree (.npz) or a taxonomy (.tsv)")


def load_or_build_tree(config: LabelTreeHeadConfig, context):
    """The head's `LabelTree`: the model directory's copy, else `tree_file`, else PIFA clustering.

    A new tree is saved in the model directory, so a model keeps its tree for
    life (resume, evaluate, export) and later runs can reuse it via `tree_file`.
    """
    from tfxc.data.info import DatasetInfo
    from tfxc.errors import DataError
    from tfxc.tree import LabelTree, cached_cluster_labels

    saved = os.path.join(context.model_dir, TREE_FILE) if context.model_dir else None
    if saved and os.path.exists(saved):
        tree = LabelTree.load(saved)
    elif config.tree_file.endswith(".npz"):
        tree = LabelTree.load(config.tree_file)
    else:
        if not context.data_dir:
            raise ConfigError("the label tree head needs its tree: train it first, or give model.head.tree_file")
        info = DatasetInfo.load(context.data_dir)
        if config.tree_file:
            tree = LabelTree.read_tsv(config.tree_file, info.label_names())
        else:
            tree = cached_cluster_labels(info, max_leaf_size=config.max_leaf_size, nr_splits=config.nr_splits,
                                         min_codes=config.min_codes or None, seed=config.tree_seed,
                                         max_iter=config.kmeans_max_iter, spherical=config.spherical,
                                         skip_unseen=config.skip_unseen_labels)
    if tree.num_labels != context.num_labels:
        raise DataError(f"the label tree has {tree.num_labels} labels but the data has {context.num_labels}",
                        path=saved if saved and os.path.exists(saved) else config.tree_file or None)
    if saved and not os.path.exists(saved):
        tree.save(saved)
    log.info("label tree: %s", tree.describe())
    return tree


def load_or_build_support(config: LabelTreeHeadConfig, context, tree) -> tuple[list | None, list | None]:
    """The nodes' input features for `sparse_support` and their unit-norm centroids there, one array per
    level ((None, None) without it): the model directory's copy, else the top of each node's PIFA centroid,
    saved in the model directory like the tree (`tfxc.heads.sparse_term.load_or_build_support`)."""
    from tfxc.heads.sparse_term import load_or_build_support as load_or_build
    from tfxc.tree.support import node_centroid_support

    return load_or_build(config, context, SUPPORT_FILE,
                         lambda z, size, idf: node_centroid_support(tree, z, size, idf),
                         [(size, config.sparse_support) for size in tree.sizes], tree.fingerprint(),
                         check_shapes=not config.solved_support)


def node_positive_weights(tree, label_freq, num_points: int, power: float) -> list:
    """Per level, float32 [K_t]: the weight (1/p)^power of a positive node, p the propensity of its frequency.

    A node's frequency is the sum of its labels' training counts (a row with two labels under
    a node counts twice: an upper bound, and only the last levels are rare enough to matter).
    Each level is scaled like `positive_label_weights`: its positive occurrences weigh 1 on average.
    """
    import numpy as np

    from tfxc.errors import DataError
    from tfxc.heads.label_priors import positive_label_weights

    if label_freq is None:
        raise DataError("model.head.propensity_weight needs the train split's label counts")
    freq = np.asarray(label_freq, np.float64)
    leaf_freq = freq if tree.leaf_labels is None else freq[tree.leaf_labels]
    return [positive_label_weights(np.bincount(tree.ancestors(t), weights=leaf_freq, minlength=size),
                                   num_points, power) for t, size in enumerate(tree.sizes)]


def propensity_bonus(tree, label_freq, num_points: int, tau: float):
    """float32 [K_last]: τ·log(1/p) per last-level node, p its label's propensity (Jain et al., KDD 2016;
    A = 0.55, B = 1.5, as `propensity_weight`'s); the prediction bonus of `propensity_rerank`."""
    import numpy as np

    from tfxc.data.propensity import MIN_POINTS_FOR_PROPENSITIES, propensities
    from tfxc.errors import DataError

    if label_freq is None or num_points < MIN_POINTS_FOR_PROPENSITIES:
        raise DataError("model.head.prediction.propensity_rerank needs the train split's label counts and size")
    bonus = tau * -np.log(propensities(label_freq, num_points))
    return (bonus if tree.leaf_labels is None else bonus[tree.leaf_labels]).astype(np.float32)
