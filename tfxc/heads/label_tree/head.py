"""A hierarchical label tree head: per-level node scorers, sampled training, beam-search prediction.

The XR-Linear / XR-Transformer family in TensorFlow. References: Zhang et al., "Fast Multi-Resolution
Transformer Fine-tuning for Extreme Multi-label Text Classification" (NeurIPS 2021); Yu et al., "PECOS"
(JMLR 2022). Spec: algorithms.md §1.2–1.6.

The labels are clustered into a tree (`tfxc.tree`: PIFA label features,
balanced 2-means, an nr_splits-ary chain; or a user's taxonomy). Level t has
K_t nodes, each with a vector w and bias b over the encoder's features h; the
last level's nodes are the labels.

Training scores, at every level, only the row's *active* nodes: the children
of its positive parents (teacher-forced negatives, `tfn`) and of the previous
level's beam computed by the model being trained (matcher-aware negatives,
`man`), optionally capped by sampling negatives. Only those rows of the node
tables are gathered, so their gradients are row-sparse.

With `sparse_support` > 0 every node also weighs the row's raw input features
(the [X ⊕ E] ranker of XR-Transformer, §1.6 steps 3–5, here trained jointly
with the rest): node c adds Σ_j u_cj · x[f_cj] over a fixed support f_c of
input features, the top of its PIFA centroid (`tfxc.tree.support`). The
encoder then carries the row's sparse features next to h
(`tfxc.encoders.sparse_input`), and only the touched nodes' rows of u get
gradients.

Prediction is a beam search (§1.5; `tfxc.heads.label_tree.search`): level 0 scores all its nodes; each next
level scores the children of the `beam_size` best nodes, combining the child's
transformed score with its parent's (the post-processor), and keeps the best;
the last level keeps k. A prediction reads beam_size × fan-out vectors per
level instead of all L. With `shortlist_size`, the labels of a nearest-centroid
ranker over all L join the beam's (`tfxc.heads.label_tree.shortlist`).
"""

from __future__ import annotations

from tfxc._tf import keras, tf
from tfxc.heads.base import Head
from tfxc.heads.gather_dot import gather_dot
from tfxc.heads.label_tree.config import (HEAD_OPTIONS, LabelTreeHeadConfig, Shortlist,
                                          load_or_build_support, load_or_build_tree, node_positive_weights,
                                          propensity_bonus)
from tfxc.heads.label_tree.loss import active_nodes, cap_active, level_loss, positive_nodes
from tfxc.heads.label_tree.ops import sparse_node_logits
from tfxc.heads.label_tree.search import TreeSearch
from tfxc.heads.label_tree.shortlist import impact_index
from tfxc.heads.pair_scores import pair_logits, sparse_pair_logits, sparse_pair_scores
from tfxc.heads.sparse_term import SparseInput, SparseTermSpec, starting_weights
from tfxc.kernels.pairs import HAVE_COMPILED_PAIRS


def _per_level(kind: str) -> property:
    """A property: the head's variables `kind`_t of every level t, None where a level has none."""
    return property(lambda self: [getattr(self, f"{kind}_{t}", None) for t in range(len(self.sizes))])


class LabelTreeHead(TreeSearch, Head):
    """Per-level node scorers over a label tree (see the module docstring).

    Args:
      tree: a `tfxc.tree.LabelTree` over the L labels.
      negatives, max_active, loss, reduction, dense_level_max, use_bias, init_stddev, beam_size,
        post_processor, final_post_processor: as in `LabelTreeHeadConfig`.
      seed: seeds the node initialisers and the negative sampling.
      sparse: None, or a `SparseTermSpec` (per level): each node also weighs some of the row's input features.
      node_weights: None, or per level float32 [K_t]: the weight of a positive node in the loss
        (`node_positive_weights`: inverse propensity); kept as non-trainable weights of the model.
      shortlist: None, or a `Shortlist` (needs `sparse`): the labels of a nearest-centroid ranker join
        the beam's candidates.

    `get_config` reports these arguments; the weights (the tree's tables among them) are the model's.

    Call returns the features unchanged (float32 [B, dim]): which nodes are
    scored depends on the labels, so scoring happens in `per_example_loss`.
    """

    # The beam search is ~15 small ops per level; XLA fuses them (one row: 0.85 -> 0.45 ms).
    serving_jit_compile = True
    # Training scores (row, node) pairs with the compiled kernels where they were built (`pair_scores`).
    use_pair_kernel = HAVE_COMPILED_PAIRS

    def __init__(self, tree, negatives="tfn+man", max_active=0, loss="squared_hinge", reduction="mean",
                 dense_level_max=LabelTreeHeadConfig.dense_level_max, use_bias=True, init_stddev=0.02, beam_size=10, post_processor="l3-hinge",
                 final_post_processor="", seed=None, sparse: SparseTermSpec | None = None, node_weights=None,
                 shortlist: Shortlist | None = None, rerank_bonus=None, **kwargs):
        super().__init__(tree.num_labels, **kwargs)
        if shortlist is not None and sparse is None:
            raise ValueError("the shortlist ranks labels on their input features: it needs the sparse term")
        self.tree, self.sizes = tree, tree.sizes
        self.negatives, self.max_active, self.loss, self.reduction = negatives, max_active, loss, reduction
        self.dense_level_max = dense_level_max
        self.use_bias, self.init_stddev, self.seed = use_bias, init_stddev, seed
        self.beam_size, self.post_processor, self.final_post_processor = beam_size, post_processor, final_post_processor
        self.post_processors = [post_processor] * (len(self.sizes) - 1) + [final_post_processor or post_processor]
        self.sparse, self.shortlist, self._initial_node_weights = sparse, shortlist, node_weights
        self.sparse_input = None if sparse is None else SparseInput(sparse.max_nnz)
        # A constant, not a weight: the re-ranking is a prediction setting, changed on a trained model.
        self._initial_rerank_bonus = rerank_bonus
        self.rerank_bonus = None if rerank_bonus is None else tf.constant(rerank_bonus, tf.float32)

    @classmethod
    def from_config_dataclass(cls, config: LabelTreeHeadConfig, context):
        tree = load_or_build_tree(config, context)
        support, centroids = load_or_build_support(config, context, tree)
        sparse = shortlist = weights = None
        if support is not None:
            sparse = SparseTermSpec(support, config.sparse_max_nnz, starting_weights(config, centroids),
                                    context.num_features)
        if config.shortlist_size:
            shortlist = Shortlist(centroids[-1], config.shortlist_size, config.prediction.shortlist_weight,
                                  config.shortlist_postings)
        if config.propensity_weight:
            weights = node_positive_weights(tree, context.label_freq, context.num_points, config.propensity_weight)
        rerank = config.prediction.propensity_rerank
        bonus = propensity_bonus(tree, context.label_freq, context.num_points, rerank) if rerank else None
        return cls(tree, seed=context.seed, sparse=sparse, node_weights=weights, shortlist=shortlist,
                   rerank_bonus=bonus, beam_size=config.prediction.beam_size, name="head",
                   **{key: getattr(config, key) for key in HEAD_OPTIONS})

    def build(self, input_shape):
        dim = self.encoding_width(input_shape)
        # Weights are plain attributes, not list items: tf.train.Checkpoint does not see into Keras 3's
        # tracked lists (see `SparseBowEncoder`).
        for t, size in enumerate(self.sizes):
            seed = None if self.seed is None else self.seed * 7919 + t
            setattr(self, f"kernel_{t}", self.add_weight(
                shape=(size, dim), name=f"kernel_{t}",
                initializer=keras.initializers.RandomNormal(stddev=self.init_stddev, seed=seed)))
            if self.use_bias:
                setattr(self, f"bias_{t}", self.add_weight(shape=(size,), name=f"bias_{t}", initializer="zeros"))
            # The tree itself is part of the model's state: non-trainable int32 tables, saved and served with it.
            if t:
                self._add_table(f"children_{t}", self.tree.children(t), "int32")
            if t < len(self.sizes) - 1:
                self._add_table(f"ancestors_{t}", self.tree.ancestors(t), "int32")
            if self.sparse is not None:
                support = self._add_table(f"support_{t}", self.sparse.support[t], "int32")
                # Zero: the sparse term starts silent and grows where the input features help; or from
                # `sparse_init` (scaled PIFA centroids: a nearest-centroid score from the first step).
                start = "zeros" if self.sparse.init is None else keras.initializers.Constant(self.sparse.init[t])
                setattr(self, f"sparse_kernel_{t}", self.add_weight(
                    shape=support.shape, name=f"sparse_kernel_{t}", initializer=start))
            if self._initial_node_weights is not None:
                self._add_table(f"node_weight_{t}", self._initial_node_weights[t], "float32")
        if self.shortlist is not None:  # the centroids and their impact-ordered index (`tfxc.heads.label_tree.shortlist`)
            centroids = self.shortlist.centroids
            offsets, labels, values = impact_index(self.sparse.support[-1], centroids, self.sparse.num_features,
                                                   self.shortlist.postings)
            for name, value in (("shortlist_centroids", centroids), ("shortlist_offsets", offsets),
                                ("shortlist_labels", labels), ("shortlist_values", values)):
                self._add_table(name, value, value.dtype.name)
        self.leaf_labels = self.leaf_index = None
        if self.tree.leaf_labels is not None:  # a tree over some of the labels: label <-> last-level node
            self._add_table("leaf_labels", self.tree.leaf_labels, "int32")
            self._add_table("leaf_index", self.tree.leaf_index(), "int32")
        self.sample_step = self.add_weight(shape=(), dtype="int64", trainable=False, name="sample_step",
                                           initializer="zeros", aggregation="only_first_replica")
        self.built = True

    def _add_table(self, name: str, value, dtype: str):
        """Adds and returns the non-trainable weight `name` (also the attribute), holding `value` [any shape]."""
        weight = self.add_weight(shape=value.shape, dtype=dtype, trainable=False, name=name,
                                 initializer=keras.initializers.Constant(value))
        setattr(self, name, weight)
        return weight

    # The per-level variables (None where a level has none), e.g. kernels[t] is `kernel_t`.
    kernels = _per_level("kernel")
    biases = _per_level("bias")
    support_levels = _per_level("support")
    sparse_kernels = _per_level("sparse_kernel")
    node_weights = _per_level("node_weight")
    children = _per_level("children")
    ancestors = _per_level("ancestors")

    def call(self, features, training=False):
        return features

    # === Scoring ===
    def _sparse_logits(self, features: tf.Tensor, level: int, nodes: tf.Tensor, kernel=None,
                       pair_kernel: bool = False) -> tf.Tensor:
        """The sparse term of nodes int32 [B, C] of `level`, float32 [B, C] (`sparse_node_logits`), weighted by
        the level's sparse kernel or by `kernel` (float32 [K_level, S], e.g. the shortlist's centroids).
        `pair_kernel`: through the compiled pair kernel, without a gradient (training's beam search only)."""
        _, ids, values = self.sparse_input.split(features)
        kernel = self.sparse_kernels[level].value if kernel is None else kernel
        if pair_kernel:
            return sparse_pair_scores(nodes, (ids, values, self.support_levels[level].value, kernel),
                                      self.sparse.num_features)
        return sparse_node_logits(ids, values, self.support_levels[level].value, kernel, nodes,
                                  self.sparse.num_features)

    def _node_logits(self, features: tf.Tensor, level: int, nodes: tf.Tensor, whole=None,
                     differentiable: bool = True, pair_kernel: bool = False) -> tf.Tensor:
        """v = w_c·h + b_c (+ the sparse term) for nodes int32 [B, C] (negative ids give 0) -> float32 [B, C].

        With `whole`, the encoder-feature logits of every node of the level (float32
        [B, K], one matmul: the better deal when the level has fewer nodes than the
        batch touches, since BLAS runs far faster than the memory-bound gather of
        [B, C, dim] vectors), the rows' nodes are picked from it. Otherwise the rows'
        vectors are gathered from the raw variable, which keeps the gradient an
        IndexedSlices over the touched rows; `differentiable=False` (the beam
        search) gathers them in blocks instead (`gather_dot`: faster, dense gradient);
        with `pair_kernel` too (training's beam search) its sparse term runs in the compiled pair kernel.
        """
        safe = tf.maximum(nodes, 0)
        if differentiable and self.use_pair_kernel:
            return self._pair_logits(features, level, nodes, whole)
        if whole is not None:
            logits = tf.gather(whole, safe, batch_dims=1)
        elif not differentiable:
            logits = gather_dot(self.encoding(features), self.kernels[level].value, safe)
            if self.use_bias:
                logits += tf.gather(self.biases[level].value, safe)
        else:
            logits = tf.einsum("bd,bcd->bc", self.encoding(features), tf.gather(self.kernels[level].value, safe))
            if self.use_bias:
                logits += tf.gather(self.biases[level].value, safe)
        if self.sparse is not None:
            logits += self._sparse_logits(features, level, nodes, pair_kernel=pair_kernel)
        return logits

    def _pair_logits(self, features: tf.Tensor, level: int, nodes: tf.Tensor, whole=None) -> tf.Tensor:
        """`_node_logits` of training through the compiled pair kernels (`tfxc.heads.pair_scores`): the same
        values, with one gradient row per distinct node of the batch for the gathered tables."""
        sparse = None
        if self.sparse is not None:
            _, ids, values = self.sparse_input.split(features)
            sparse = (ids, values, self.support_levels[level].value, self.sparse_kernels[level].value)
        safe = tf.maximum(nodes, 0)
        if whole is not None:
            logits = tf.gather(whole, safe, batch_dims=1)
            if sparse is not None:
                logits += sparse_pair_logits(nodes, sparse, self.sparse.num_features)
            return logits
        bias = self.biases[level].value if self.use_bias else None
        return pair_logits(self.encoding(features), self.kernels[level].value, bias, nodes, sparse,
                           self.sparse.num_features if sparse is not None else 0)

    def _level_logits(self, features: tf.Tensor, level: int) -> tf.Tensor:
        """The encoder-feature logits w_c·h + b_c of every node of a level, float32 [B, K_level].

        Without the sparse term, which `_node_logits` adds for the nodes a row needs.
        """
        logits = self.matmul(self.encoding(features), self.kernels[level].value, transpose_b=True)
        return logits + self.biases[level].value if self.use_bias else logits

    def _top_level_logits(self, features: tf.Tensor, whole: dict, differentiable: bool = False,
                          pair_kernel: bool = False) -> tf.Tensor:
        """Every logit of level 0, float32 [B, K_0] (from `whole` when it has them); `differentiable`: for the
        loss, `pair_kernel`: for training's beam (`_node_logits`)."""
        logits = whole[0] if 0 in whole else self._level_logits(features, 0)
        if self.sparse is None:
            return logits
        nodes = tf.tile(tf.range(self.sizes[0])[None, :], [tf.shape(features)[0], 1])
        return self._node_logits(features, 0, nodes, logits, differentiable=differentiable, pair_kernel=pair_kernel)

    def _dense_in_training(self, level: int) -> bool:
        return self.sizes[level] <= self.dense_level_max

    # === Training ===
    def _positives(self, labels: tf.RaggedTensor, level: int) -> tf.Tensor:
        """`positive_nodes` of `level`: int32 [B, Q] (labels outside the tree, `leaf_labels`, have none)."""
        ancestors, leaf_index = self.ancestors[level], self.leaf_index
        return positive_nodes(labels, None if ancestors is None else ancestors.value,
                              None if leaf_index is None else leaf_index.value)

    def _active(self, positives: list, level: int, beam) -> tf.Tensor:
        """Active nodes int32 [B, C] of `level` (−1 = none; `active_nodes`); `positives`: `_positives` by level."""
        if level == 0:
            return tf.tile(tf.range(self.sizes[0])[None, :], [tf.shape(positives[0])[0], 1])
        return active_nodes(positives[level - 1], self.children[level].value, self.sizes[level - 1], beam)

    def _fanout(self, level: int) -> int:
        """The most nodes a parent of `level` has (level 0: all of its nodes)."""
        return self.sizes[0] if level == 0 else int(self.children[level].shape[-1])

    def per_example_loss(self, features, labels):
        """Σ over levels of the loss over each row's active nodes, float32 [B]."""
        levels = len(self.sizes)
        # Levels scored whole are scored once, for the loss and (without gradient) for the beam.
        whole = {t: self._level_logits(features, t) for t in range(levels) if t == 0 or self._dense_in_training(t)}
        beams = [None] * levels
        if self.negatives == "tfn+man" and levels > 1:
            frozen = {t: tf.stop_gradient(v) for t, v in whole.items()}
            _, last, found = self._beam_search(tf.stop_gradient(features), self.beam_size, levels - 1, frozen,
                                               pair_kernel=self.use_pair_kernel)
            beams = [None] + found + [last]  # the parents' level beam, for each level
        if self.max_active:
            self.sample_step.assign_add(1)
        positives = [self._positives(labels, t) for t in range(levels)]
        total = tf.zeros(tf.shape(features)[:1])
        for t in range(levels):
            nodes = self._active(positives, t, beams[t])
            # How many of the row's labels lie below each active node (0: a negative).
            counts = (tf.searchsorted(positives[t], nodes, side="right")
                      - tf.searchsorted(positives[t], nodes, side="left"))
            counts = tf.where(nodes >= 0, counts, 0)
            if self.max_active and t not in whole:  # the cap saves gathers; a level scored whole gains nothing
                seed = tf.stack([tf.cast(self.sample_step, tf.int32), (self.seed or 0) * 31 + t])
                nodes, counts = cap_active(nodes, counts, self.max_active, seed)
            logits = self._top_level_logits(features, whole, differentiable=True) if t == 0 else self._node_logits(
                features, t, nodes, whole.get(t))
            weights = None
            if self.node_weights[t] is not None:
                weights = tf.gather(self.node_weights[t].value, tf.maximum(nodes, 0))
            total += level_loss(logits, counts, nodes >= 0, loss=self.loss, reduction=self.reduction,
                                fanout=self._fanout(t), weights=weights)
        return total

    @property
    def sparse_variables(self) -> list:
        gathered = [t for t in range(1, len(self.sizes)) if not self._dense_in_training(t)]
        sparse = [v for v in self.sparse_kernels if v is not None]  # always gathered, row by node
        return ([self.kernels[t] for t in gathered] + ([self.biases[t] for t in gathered] if self.use_bias else [])
                + sparse)

    def memory_scores(self, training: bool, labels_per_point: float = 1.0) -> int:
        """Per level: its K_t logits where scored whole, else the active nodes: children of the row's true parents
        (and a padding one; of the beam with man negatives), in training each with its gathered [dim] row."""
        parents = (int(-(-labels_per_point // 1)) + 1 + self.beam_size * (self.negatives == "tfn+man")) if training \
            else self.beam_size
        active = [min(parents * self._fanout(t), self.max_active or 2**62) for t in range(len(self.sizes))]
        return sum(size if self._dense_in_training(t) else active[t] * (1 + int(self.kernels[t].shape[-1]) * training)
                   for t, size in enumerate(self.sizes))

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key != "num_labels"}  # the tree's
        return {**config, "tree": self.tree, **{key: getattr(self, key) for key in HEAD_OPTIONS}, "beam_size": self.beam_size,
                "seed": self.seed,
                "sparse": self.sparse, "node_weights": self._initial_node_weights, "shortlist": self.shortlist,
                "rerank_bonus": self._initial_rerank_bonus}
