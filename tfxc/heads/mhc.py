"""MHC: the Multi-Head Cascade head ("multi-head embedding"), MHE's head for XMC.

Reference: Liang et al., "Multi-Head Encoding for Extreme Label Classification"
(TPAMI 2025, arXiv 2412.10182), `XMC/src/model.py::XMLMHE` of its repository
(LightXML-style). Spec: algorithms.md §3.3.

Labels get mixed-radix codes with H digits (`tfxc.heads.label_codes`); the
level-h *nodes* are the codes' prefixes of h digits (level 1: the groups;
level H: the labels). With `num_group` the two levels are MHE's groups of k
consecutive codes (`check_group`); `num_classes` [n_1, n_2, n_3] gives a
3-level cascade.

  level 1   logits g = f·W_1 + b_1 over all groups;
  level h   e_h = f·P_h + c_h (width `hidden_dim`), and a candidate node v
            scores u_v = ⟨E_h[v], e_h⟩ (E_h: one Glorot-initialised row per node).

Training: the BCE of g against the row's groups (mean over the groups) plus,
per deeper level, the BCE of the candidates (mean over them): MHE's loss,
`loss="bce"`. `loss="softmax"` replaces each level's BCE by the cross entropy
of a softmax over the level's nodes (all groups; the candidates) against a
target spread evenly over the row's positives, the label tree's softmax loss
(`LabelTreeHead`): a positive is no longer one term among T·n mostly negative
ones, which lifts rare labels (PSP@k). The candidates
are the children of the T best parents by σ(logit) + [parent is positive], so
every positive parent is expanded (teacher forcing); T is `candidates_topk`,
raised for the batch to its largest count of positive parents, which covers
every positive label (MHE overwrites negative slots with uncovered positives
instead; the effect is the same).

Ranking: a beam down the levels; a node's score is the product of the
sigmoids on its path (σ(u_label)·σ(g_group) for two levels, as MHE's test).
With the softmax loss a node's score is its own logit: the parents only
choose the candidates. (Softmax logits are free up to a per-row shift, so
their sigmoids are not probabilities: on wordnet-hypernyms' validation split
σ(u)·σ(g) gave P@5 65.8, log-softmax(u) + log-softmax(g) 84.4, u alone 85.5.)
Each level keeps max(T, ⌈k / labels under a node⌉ + 1) nodes, so k labels are
always reachable, and top_k(L) ranks every label.

Candidate logits are computed for the batch's unique candidate nodes at once
(one matmul against their gathered rows), so the embedding gradient is
row-sparse over those rows (`sparse_variables`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import keras, tf
from tfxc.errors import ConfigError
from tfxc.heads.base import Head
from tfxc.heads.label_codes import LabelCodeOptions, LabelOrderTables, check_group, suffix_products

_FAR = tf.int64.max  # pads sorted positive lists: above every node id
LOSSES = ("bce", "softmax")


@dataclass(frozen=True)
class MhcHeadConfig(LabelCodeOptions):
    """Config of `MhcHead`.

    Attributes:
      name: "mhc".
      num_group: > 0: two levels, G groups of k consecutive codes with (G, k) = check_group(L, num_group)
        (MHE's runs: 8400 for Amazon-670K -> (8377, 80)); 0: the levels are `num_classes` (or
        `num_heads` balanced sizes, as for MHP).
      candidates_topk: T, the parents expanded per level (MHE: 75 for Amazon-670K, 32 for Wiki-500K).
      hidden_dim: width of the node embeddings of levels 2..H (MHE: 400 or 500).
      label_order: which label gets which code (`tfxc.heads.label_codes`).
      loss: "bce" (MHE's: per level the mean BCE of its nodes) or "softmax" (per level the cross
        entropy of a softmax over its nodes against the row's positives, evenly weighted).
    """

    name: str = "mhc"
    num_group: int = 0
    candidates_topk: int = 32
    hidden_dim: int = 400
    loss: str = "bce"

    def validate(self, path: str) -> None:
        self.validate_codes(path)
        if self.num_group < 0 or self.candidates_topk < 1 or self.hidden_dim < 1:
            raise ConfigError(f"{path}: num_group ({self.num_group}) must be >= 0, candidates_topk "
                              f"({self.candidates_topk}) and hidden_dim ({self.hidden_dim}) >= 1")
        if self.loss not in LOSSES:
            raise ConfigError(f"{path}.loss: unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.num_group and self.num_classes:
            raise ConfigError(f"{path}: give num_group (two levels) or num_classes, not both")

    def levels_for(self, num_labels: int, path: str = "model.head") -> list[int]:
        if self.num_group:
            groups, size = check_group(num_labels, self.num_group)
            return [groups, size]
        radices = self.radices_for(num_labels, path)
        if len(radices) < 2:
            raise ConfigError(f"{path}: a cascade needs at least two levels, got {radices}")
        return radices


def sorted_row_sets(rows: tf.Tensor, values: tf.Tensor, nrows) -> tf.Tensor:
    """Each row's values, sorted and padded with `_FAR`: int64 [B, P + 1] (one pad column at least)."""
    ragged = tf.RaggedTensor.from_value_rowids(tf.cast(values, tf.int64), rows, nrows=nrows)
    dense = ragged.to_tensor(default_value=_FAR)
    return tf.sort(tf.concat([dense, tf.fill([tf.shape(dense)[0], 1], _FAR)], axis=1), axis=1)


def membership(sorted_sets: tf.Tensor, candidates: tf.Tensor) -> tf.Tensor:
    """bool [B, C]: candidates[b, c] is in row b's sorted set (`sorted_row_sets`)."""
    position = tf.searchsorted(sorted_sets, candidates)
    position = tf.minimum(position, tf.shape(sorted_sets)[1] - 1)
    return tf.gather(sorted_sets, position, batch_dims=1) == candidates


class MhcHead(LabelOrderTables, Head):
    """Multi-head cascade (module docstring).

    Call returns the features float32 [B, dim] (the candidates depend on the
    labels in training). Scores of `top_k`: products of sigmoids down the path (`loss="bce"`)
    or the last level's logits (`loss="softmax"`).
    """

    def __init__(self, num_labels: int, radices, candidates_topk: int = 32, hidden_dim: int = 400, seed=None,
                 label_order=None, loss: str = "bce", **kwargs):
        super().__init__(num_labels, **kwargs)
        self.radices = [int(n) for n in radices]
        self.loss = loss
        self.candidates_topk, self.hidden_dim, self.seed = candidates_topk, hidden_dim, seed
        self.places = suffix_products(self.radices)
        # Nodes of level h (prefixes of h + 1 digits) with at least one real label below them.
        self.num_nodes = [-(-num_labels // place) for place in self.places]
        self._label_order = label_order

    @classmethod
    def from_config_dataclass(cls, config: MhcHeadConfig, context):
        radices = config.levels_for(context.num_labels)
        order = config.label_order_for(context, radices)
        return cls(context.num_labels, radices, candidates_topk=config.candidates_topk, hidden_dim=config.hidden_dim,
                   seed=context.seed, label_order=order, loss=config.loss, name="head")

    def build(self, input_shape):
        dim = input_shape[-1]
        glorot = lambda offset: keras.initializers.GlorotUniform(seed=None if self.seed is None else self.seed + offset)
        self.group_kernel = self.add_weight(shape=(dim, self.num_nodes[0]), name="group_kernel", initializer=glorot(0))
        self.group_bias = self.add_weight(shape=(self.num_nodes[0],), name="group_bias", initializer="zeros")
        # One attribute per level (variables kept in a Python list would not be checkpointed by name).
        for level in range(1, len(self.radices)):
            setattr(self, f"projection_{level}", self.add_weight(
                shape=(dim, self.hidden_dim), name=f"projection_{level}", initializer=glorot(2 * level)))
            setattr(self, f"projection_bias_{level}", self.add_weight(
                shape=(self.hidden_dim,), name=f"projection_bias_{level}", initializer="zeros"))
            setattr(self, f"node_embedding_{level}", self.add_weight(
                shape=(self.num_nodes[level], self.hidden_dim), name=f"node_embedding_{level}",
                initializer=glorot(2 * level + 1)))
        self.build_order_tables(self._label_order)
        self.built = True

    def call(self, features, training=False):
        return tf.cast(features, tf.float32)

    # === Scoring ===
    def group_logits(self, features: tf.Tensor) -> tf.Tensor:
        """Level-1 logits float32 [B, G]."""
        return tf.matmul(features, self.group_kernel.value) + self.group_bias.value

    def children(self, parents: tf.Tensor, level: int) -> tuple[tf.Tensor, tf.Tensor]:
        """The level-`level` children of parents int64 [B, T]: (nodes int64 [B, T·n], bool valid [B, T·n])."""
        n = self.radices[level]
        nodes = tf.reshape(parents[:, :, None] * n + tf.range(n, dtype=tf.int64), [tf.shape(parents)[0], -1])
        return nodes, nodes < self.num_nodes[level]

    def node_logits(self, features: tf.Tensor, nodes: tf.Tensor, level: int) -> tf.Tensor:
        """Logits float32 [B, C] of level-`level` nodes int64 [B, C] (invalid ids are clipped; mask them)."""
        e = (tf.matmul(features, getattr(self, f"projection_{level}").value)
             + getattr(self, f"projection_bias_{level}").value)
        flat = tf.minimum(tf.reshape(nodes, [-1]), self.num_nodes[level] - 1)
        unique, position = tf.unique(flat)
        # One matmul against the batch's unique candidates; tf.gather keeps the gradient row-sparse.
        logits = tf.matmul(e, tf.gather(getattr(self, f"node_embedding_{level}").value, unique), transpose_b=True)
        return tf.gather(logits, tf.reshape(position, tf.shape(nodes)), batch_dims=1)

    # === Training ===
    def _level_loss(self, logits: tf.Tensor, targets: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """One level's loss float32 [B] from its nodes' logits, 0/1 targets and 0/1 mask (float32 [B, C] each)."""
        if self.loss == "softmax":
            # −log of the softmax's mean over the positives' logits; a row without positives adds nothing.
            lse = tf.reduce_logsumexp(tf.where(mask > 0, logits, -1e9), axis=1)
            positives = tf.reduce_sum(targets, axis=1)
            mean_positive = tf.reduce_sum(logits * targets, axis=1) / tf.maximum(positives, 1.0)
            return tf.where(positives > 0, lse - mean_positive, 0.0)
        per_node = (tf.nn.softplus(logits) - logits * targets) * mask
        return tf.reduce_sum(per_node, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

    def per_example_loss(self, features, labels):
        rows = labels.value_rowids()
        nrows = labels.nrows(out_type=tf.int64)
        codes = self.codes_of(labels.values)
        g = self.group_logits(features)
        groups = codes // self.places[0]
        targets = tf.tensor_scatter_nd_update(tf.zeros_like(g), tf.stack([rows, groups], 1),
                                              tf.ones_like(groups, tf.float32))
        loss = self._level_loss(g, targets, tf.ones_like(g))
        scores, parents = tf.sigmoid(g), None
        positives_above = targets
        for level in range(1, len(self.radices)):
            # Teacher forcing: every positive parent is expanded, then the best of the others up to T.
            forced = tf.stop_gradient(scores) + positives_above
            most_positives = tf.cast(tf.reduce_max(tf.reduce_sum(positives_above, axis=1)), tf.int32)
            width = tf.minimum(tf.maximum(self.candidates_topk, most_positives), tf.shape(forced)[1])
            _, best = tf.math.top_k(forced, width)
            parents = tf.cast(best, tf.int64) if parents is None else tf.gather(parents, best, batch_dims=1)
            nodes, valid = self.children(parents, level)
            u = self.node_logits(features, nodes, level)
            positive = membership(sorted_row_sets(rows, codes // self.places[level], nrows), nodes)
            y, mask = tf.cast(positive & valid, tf.float32), tf.cast(valid, tf.float32)
            loss += self._level_loss(u, y, mask)
            scores = tf.where(valid, tf.sigmoid(u), -1.0)
            positives_above, parents = y, nodes
        return loss

    # === Ranking ===
    def top_k(self, features, k):
        features = tf.cast(features, tf.float32)
        k = tf.minimum(tf.cast(k, tf.int64), self.num_labels)
        scores = tf.sigmoid(self.group_logits(features))                      # [B, G]
        nodes = None
        for level in range(1, len(self.radices)):
            # Enough parents that k real labels lie below them (one may be the partly filled last node).
            needed = (k + self.places[level - 1] - 1) // self.places[level - 1] + 1
            width = tf.cast(tf.minimum(tf.maximum(needed, self.candidates_topk), self.num_nodes[level - 1]), tf.int32)
            width = tf.minimum(width, tf.shape(scores)[1])
            parent_scores, best = tf.math.top_k(scores, width)
            parents = tf.cast(best, tf.int64) if nodes is None else tf.gather(nodes, best, batch_dims=1)
            nodes, valid = self.children(parents, level)
            u = self.node_logits(features, nodes, level)
            if self.loss == "softmax":
                # A softmax over the candidates already weighs each against the others below the beam's
                # parents; multiplying in the parents' scores lowered validation P@5 (module docstring).
                scores = tf.where(valid, u, -1e30)
            else:
                path = tf.reshape(tf.repeat(parent_scores, self.radices[level], axis=1), tf.shape(u))
                scores = tf.where(valid, tf.sigmoid(u) * path, -1.0)
        top, best = tf.math.top_k(scores, tf.cast(k, tf.int32))
        return top, self.labels_of(tf.gather(nodes, best, batch_dims=1))

    @property
    def sparse_variables(self) -> list:
        return [getattr(self, f"node_embedding_{level}") for level in range(1, len(self.radices))]

    def get_config(self):
        return {**super().get_config(), "radices": self.radices, "candidates_topk": self.candidates_topk,
                "hidden_dim": self.hidden_dim, "seed": self.seed, "label_order": self._label_order, "loss": self.loss}
