"""One resolution of XR-Transformer's multi-resolution fine-tuning: a head over one level of the label tree.

Reference: Zhang et al., "Fast Multi-Resolution Transformer Fine-tuning for Extreme
Multi-label Text Classification" (NeurIPS 2021); PECOS `xmc/xtransformer/matcher.py`.
Spec: algorithms.md §1.6 and xr-transformer.md §1–2.

XR-Transformer fine-tunes one encoder level by level, coarse to fine, along a
preliminary label tree (`tfxc.xr` drives the levels). At level l the encoder
gets a new head: a vector w_c and bias b_c for each of the level's K_l clusters.
A row's target for cluster c is the number of its labels below c.

Level 0 scores all its clusters. Below it, a row scores only its *active*
clusters: the children of its true clusters one level up (teacher-forced
negatives, `tfn`), of the clusters the previous level predicted for it
(matcher-aware negatives, `man`, computed once before the level and looked up
by the row's id, `tfxc.encoders.row_input`), and its own positives; capped at
`max_active` with every positive kept (the paper-era code's cap). Only those
rows of the cluster table are gathered, so their gradients are row-sparse (PECOS
switches the head to SparseAdam there). The loss is PECOS's hinge family over
the active slots, summed and divided by `max_active`, PECOS's padded width.

The head may start from given weights (the bootstrap of `tfxc.xr.bootstrap`) and
holds its `man` table: both come from `START_FILE` in the model directory,
written before the level's run builds the model and kept for life.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from tfxc._tf import keras, tf
from tfxc.encoders.row_input import split_row_id
from tfxc.errors import ConfigError, DataError
from tfxc.heads.base import Head
from tfxc.heads.label_tree.config import TREE_FILE
from tfxc.heads.label_tree.loss import cap_active, level_loss, positive_nodes
from tfxc.heads.label_tree.ops import PAD, unique_per_row

# The head's starting weights and `man` table, in its model directory (`write_start`).
START_FILE = "xr_level_start.npz"
NEGATIVES = ("tfn", "man", "tfn+man")
LOSSES = ("squared_hinge", "weighted_squared_hinge", "hinge", "weighted_hinge", "bce")


@dataclass(frozen=True)
class XrLevelHeadConfig:
    """Config of `XrLevelHead`.

    Attributes:
      name: "xr_level".
      tree_file: the preliminary label tree (.npz) whose level the head scores; copied into the model
        directory on first build and read from there afterwards.
      level: the tree level scored (0: the coarsest; the last level is the labels).
      negatives: "tfn", "man" or "tfn+man" (levels > 0; `man` needs the start file's table).
      max_active: the most clusters a row scores on a level > 0 (PECOS's
        `max_active_matching_labels`): every positive, then a random sample of the negatives.
        Also the padded width the row's loss is divided by.
      loss: "squared_hinge", "weighted_squared_hinge" (a positive weighs its label count),
        "hinge", "weighted_hinge" or "bce".
      init_stddev: without starting weights, w ~ N(0, init_stddev²) and b = 0.
    """

    name: str = "xr_level"
    tree_file: str = ""
    level: int = 0
    negatives: str = "tfn+man"
    max_active: int = 1000
    loss: str = "weighted_squared_hinge"
    init_stddev: float = 0.02

    def validate(self, path: str) -> None:
        if self.level < 0 or self.max_active < 1 or self.init_stddev <= 0:
            raise ConfigError(f"{path}: level ({self.level}) must be >= 0, max_active ({self.max_active}) >= 1, "
                              f"init_stddev ({self.init_stddev}) > 0")
        for key, value, options in (("negatives", self.negatives, NEGATIVES), ("loss", self.loss, LOSSES)):
            if value not in options:
                raise ConfigError(f"{path}.{key} '{value}' is not one of {', '.join(options)}")


def write_start(model_dir: str, kernel=None, bias=None, man=None) -> None:
    """Writes the starting weights (float32 [K, dim], [K]) and/or the `man` table (int32 [N, W], −1 padded:
    the clusters one level up predicted for each training row) a level's head is built from."""
    from tfxc.utils.io import atomic_writer

    arrays = {name: value for name, value in (("kernel", kernel), ("bias", bias), ("man", man)) if value is not None}
    with atomic_writer(os.path.join(model_dir, START_FILE), binary=True) as f:
        np.savez(f, **arrays)


def read_start(model_dir: str | None) -> dict:
    """The arrays of `write_start` ({} without the file)."""
    from tfxc.utils.files import read_npz

    path = os.path.join(model_dir, START_FILE) if model_dir else None
    if not path or not os.path.exists(path):
        return {}
    f = read_npz(path, advice="it is part of the level's model: train the level again")
    return {name: f[name] for name in f}


class XrLevelHead(Head):
    """The clusters of one tree level, scored on the encoder's embedding (see the module docstring).

    Args:
      tree: the `tfxc.tree.LabelTree`; level, negatives, max_active, loss, init_stddev: as in the config.
      seed: seeds the initialiser and the negative sampling.
      start: {"kernel": float32 [K, dim], "bias": float32 [K]} starting weights, or {}.
      man: None, or int32 [N, W]: the previous level's predicted clusters of each training row (−1 padded).

    Call returns the features unchanged: which clusters are scored depends on the labels.
    """

    def __init__(self, tree, level: int, negatives="tfn+man", max_active=1000, loss="weighted_squared_hinge",
                 init_stddev=0.02, seed=None, start=None, man=None, **kwargs):
        super().__init__(tree.num_labels, **kwargs)
        if not 0 <= level < tree.num_levels:
            raise ConfigError(f"model.head.level ({level}) is not a level of the tree (0..{tree.num_levels - 1})")
        self.tree, self.level, self.size = tree, level, tree.sizes[level]
        self.negatives, self.max_active, self.loss, self.init_stddev, self.seed = (
            negatives, max_active, loss, init_stddev, seed)
        self.start = start or {}
        self.man = man if level > 0 and "man" in negatives else None
        if self.man is not None and self.man.shape[0] >= 2 ** 24:
            raise DataError(f"{self.man.shape[0]} training rows: the man table's row ids must stay below 2^24")

    @classmethod
    def from_config_dataclass(cls, config: XrLevelHeadConfig, context):
        from tfxc.tree import LabelTree

        saved = os.path.join(context.model_dir, TREE_FILE) if context.model_dir else None
        if saved and os.path.exists(saved):
            tree = LabelTree.load(saved)
        elif config.tree_file:
            tree = LabelTree.load(config.tree_file)
            if saved:
                tree.save(saved)
        else:
            raise ConfigError("model.head.tree_file: the xr_level head needs the preliminary tree")
        if tree.num_labels != context.num_labels:
            raise DataError(f"the label tree has {tree.num_labels} labels but the data has {context.num_labels}",
                            path=config.tree_file)
        start = read_start(context.model_dir)
        man = start.pop("man", None)
        if config.level > 0 and "man" in config.negatives and man is None and not context.model_dir:
            man = np.full((max(context.num_points, 1), 1), -1, np.int32)  # a build for shapes alone (memory plan)
        elif config.level > 0 and "man" in config.negatives and man is None:
            raise ConfigError(f"model.head.negatives '{config.negatives}' needs the previous level's predictions "
                              f"({START_FILE} in the model directory, written by tfxc.xr)")
        return cls(tree, config.level, config.negatives, config.max_active, config.loss, config.init_stddev,
                   seed=context.seed, start=start, man=man, name="head")

    @property
    def _reads_row_ids(self) -> bool:
        return self.man is not None

    def make_encoder(self, encoder_config, context):
        encoder = super().make_encoder(encoder_config, context)
        if not self._reads_row_ids:
            return encoder
        from tfxc.encoders.row_input import WithRowId

        return WithRowId(encoder, name="encoder")

    def build(self, input_shape):
        dim = input_shape[-1] - int(self._reads_row_ids)
        kernel = self.start.get("kernel")
        if kernel is not None and kernel.shape != (self.size, dim):
            raise DataError(f"the starting kernel is {kernel.shape}, the level's is {(self.size, dim)}",
                            field=START_FILE)
        self.kernel = self.add_weight(
            shape=(self.size, dim), name="kernel",
            initializer=(keras.initializers.Constant(kernel) if kernel is not None
                         else keras.initializers.RandomNormal(stddev=self.init_stddev, seed=self.seed)))
        bias = self.start.get("bias")
        self.bias = self.add_weight(shape=(self.size,), name="bias", initializer=(
            keras.initializers.Constant(bias) if bias is not None else "zeros"))
        last = self.tree.num_levels - 1
        self.ancestors = self._table("ancestors", self.tree.ancestors(self.level)) if self.level < last else None
        self.parent_ancestors = self.children = None
        if self.level > 0:
            self.parent_ancestors = self._table("parent_ancestors", self.tree.ancestors(self.level - 1))
            self.children = self._table("children", self.tree.children(self.level))
        self.leaf_index = (self._table("leaf_index", self.tree.leaf_index())
                           if self.tree.leaf_labels is not None else None)
        self.man_table = self._table("man", self.man) if self.man is not None else None
        self.sample_step = self.add_weight(shape=(), dtype="int64", trainable=False, name="sample_step",
                                           initializer="zeros", aggregation="only_first_replica")
        self.built = True

    def _table(self, name: str, value):
        value = np.asarray(value, np.int32)
        return self.add_weight(shape=value.shape, dtype="int32", trainable=False, name=name,
                               initializer=keras.initializers.Constant(value))

    def encoding(self, features):
        return split_row_id(features)[0] if self._reads_row_ids else features

    def call(self, features, training=False):
        return features

    # === Training ===
    def _positives(self, labels, ancestors) -> tf.Tensor:
        return positive_nodes(labels, None if ancestors is None else ancestors.value,
                              None if self.leaf_index is None else self.leaf_index.value)

    def active(self, features, labels) -> tuple[tf.Tensor, tf.Tensor]:
        """A row's active clusters and how many of its labels each holds: (int32 [B, C], −1 = none;
        int32 [B, C], 0 = a negative), before the cap."""
        positives = self._positives(labels, self.ancestors)
        batch = tf.shape(positives)[0]
        if self.level == 0:
            nodes = tf.tile(tf.range(self.size)[None, :], [batch, 1])
        else:
            parents = [tf.fill([batch, 1], PAD)]
            if "tfn" in self.negatives:
                parents.append(self._positives(labels, self.parent_ancestors))
            if self.man_table is not None:
                rows = split_row_id(features)[1]
                man = tf.gather(self.man_table.value, tf.maximum(rows, 0))
                parents.append(tf.where((rows >= 0)[:, None] & (man >= 0), man, PAD))
            parents = unique_per_row(tf.concat(parents, axis=1))
            num_parents = self.tree.sizes[self.level - 1]
            children = tf.gather(self.children.value, tf.minimum(parents, num_parents - 1))
            children = tf.where((parents != PAD)[:, :, None], children, -1)
            # The positives join: under `man` alone a true cluster need not be a predicted parent's child.
            nodes = tf.concat([tf.reshape(children, [batch, -1]), tf.where(positives != PAD, positives, -1)], axis=1)
            nodes = unique_per_row(nodes)
            nodes = tf.where(nodes == PAD, -1, nodes)
        counts = (tf.searchsorted(positives, tf.where(nodes >= 0, nodes, PAD), side="right")
                  - tf.searchsorted(positives, tf.where(nodes >= 0, nodes, PAD), side="left"))
        return nodes, tf.where(nodes >= 0, counts, 0)

    def per_example_loss(self, features, labels):
        """The level's hinge-family loss over each row's (capped) active clusters, float32 [B]."""
        nodes, counts = self.active(features, labels)
        h = self.encoding(features)
        if self.level == 0:
            logits = self.matmul(h, self.kernel.value, transpose_b=True) + self.bias.value
            width = self.size
        else:
            self.sample_step.assign_add(1)
            seed = tf.stack([tf.cast(self.sample_step, tf.int32), (self.seed or 0) * 31 + self.level])
            nodes, counts = cap_active(nodes, counts, self.max_active, seed)
            safe = tf.maximum(nodes, 0)
            logits = tf.einsum("bd,bcd->bc", h, tf.gather(self.kernel.value, safe)) + tf.gather(self.bias.value, safe)
            width = self.max_active
        hinge = self.loss in ("hinge", "weighted_hinge")
        squared = "squared_hinge" if self.loss in ("squared_hinge", "hinge") else "weighted_squared_hinge"
        loss = level_loss(logits, counts, nodes >= 0, loss="bce" if self.loss == "bce" else squared,
                          reduction="sum", fanout=width, power=1 if hinge else 2)
        return loss

    # === Prediction ===
    def level_logits(self, features) -> tf.Tensor:
        """w_c·h + b_c of every cluster of the level, float32 [B, K_l]."""
        return self.matmul(self.encoding(features), self.kernel.value, transpose_b=True) + self.bias.value

    def top_k(self, features, k):
        """The level's k best clusters (the labels themselves on the last level): (float32 [B, k'], int64 [B, k']).

        Every cluster is scored: a fine-tuned level has at most `max_match_clusters` (32,768) of them."""
        k = tf.minimum(tf.cast(k, tf.int32), self.size)
        scores, ids = tf.math.top_k(self.level_logits(features), k)
        if self.level == self.tree.num_levels - 1 and self.tree.leaf_labels is not None:
            ids = tf.gather(tf.constant(self.tree.leaf_labels, tf.int32), ids)
        return scores, tf.cast(ids, tf.int64)

    @property
    def sparse_variables(self) -> list:
        return [self.kernel, self.bias] if self.level > 0 else []

    def memory_scores(self, training: bool, labels_per_point: float = 1.0) -> int:
        if not training or self.level == 0:
            return self.size
        return self.max_active * (1 + int(self.kernel.shape[-1]))

    def get_config(self):
        config = {key: value for key, value in super().get_config().items() if key != "num_labels"}
        return {**config, "tree": self.tree, "level": self.level, "negatives": self.negatives,
                "max_active": self.max_active, "loss": self.loss, "init_stddev": self.init_stddev, "seed": self.seed,
                "start": self.start, "man": self.man}
