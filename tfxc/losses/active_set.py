"""Active-set training: each step scores the batch against M labels that matter instead of all L.

An exact head (softmax, its decoupled multi-label form, one-vs-all, their sparse term) pays a
[B, dim] × [dim, L] product and its gradient every step, although a row has a few positives and a
few hundred plausible negatives. This objective picks one set of M labels per step, shared by the
rows of the global batch (so the product is one [b, dim] × [dim, M] matmul on every replica):

  1. the batch's positives (which are also the other rows' in-batch negatives);
  2. hard negatives: the labels of the clusters that the rows score best, from an index over the
     head's current label vectors (spherical k-means of `Head.label_vectors`, warm-started and
     rebuilt every `refresh_steps` steps inside the step); a cluster ranks by the rows' votes,
     t − rank for each row's t best clusters, and its labels enter in that order until M − `uniform`
     slots are taken;
  3. uniform negatives, drawn without replacement from the labels not taken so far, to fill M.

Given the batch, parts 1–2 are certain and part 3 is a uniform sample of R of the remaining L − |D|
labels, so each sampled label gets the logQ correction log((L − |D|)/R) (the Horvitz–Thompson
weight; `tfxc.heads.active_set_losses`); the certain labels get none. With M = L nothing is
sampled and the loss is the head's full loss. Evaluation never uses the active set: it ranks all
labels exactly. The idea is XR-Transformer's "active labels" (positives ∪ the labels under the
row's best clusters; algorithms.md §1.6) with the shortlist from the current label vectors, as
ANCE/NGAME refresh theirs (Xiong et al., 2021; Dahiya et al., WSDM 2023).

State (the index and a step counter) is a set of plain variables on the objective, so checkpoints
and exact resume keep it. Under MirroredStrategy the replicas share them: every replica reads them
before the step's all-reduce of positives and votes and writes the same new values after it (as the
dual objectives' ν, `tfxc.losses.dual`), so the set is the same on every replica and the same as a
single process would pick.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.losses.base import Objective

log = logging.getLogger("tfxc.losses")

HARD_NEGATIVES = ("clusters", "none")
# Labels assigned to clusters per block in a refresh: bounds the [block, C] temporary.
ASSIGN_BLOCK = 16384
# The uniform draw of a step is stateless: this constant and the step counter seed it.
_DRAW_SEED = 0x5EED


@dataclass(frozen=True)
class ActiveSetConfig:
    """Train an exact head on active sets of labels (`tfxc.losses.active_set`); evaluation stays exact.

    Attributes:
      name: "active_set".
      size: M, the labels scored per step (the batch's positives, hard negatives, uniform
        negatives); capped at L. It must hold a global batch's distinct positives: a positive left
        out is left out of its row's loss.
      uniform: slots kept for uniform negatives (logQ-corrected), at least; the hard negatives take
        the rest of M after the positives, and any slot they leave empty is filled uniformly too.
      hard_negatives: "clusters" (the labels of the rows' best clusters of label vectors) or
        "none" (positives and uniform negatives only: sampled softmax with in-batch labels).
      clusters: C, the index's clusters; 0 = ⌈√L⌉.
      clusters_per_row: t, the clusters each row votes for.
      refresh_steps: rebuild the index from the current label vectors every this many steps.
      kmeans_iterations: Lloyd iterations per rebuild (warm-started from the last centroids).
    """

    name: str = "active_set"
    size: int = 2048
    uniform: int = 256
    hard_negatives: str = "clusters"
    clusters: int = 0
    clusters_per_row: int = 2
    refresh_steps: int = 100
    kmeans_iterations: int = 3

    def validate(self, path: str) -> None:
        if self.size < 1 or not 0 <= self.uniform <= self.size:
            raise ConfigError(f"{path}: size ({self.size}) must be >= 1 and uniform ({self.uniform}) in [0, size]")
        if self.hard_negatives not in HARD_NEGATIVES:
            raise ConfigError(f"{path}.hard_negatives '{self.hard_negatives}' is not one of "
                              f"{', '.join(HARD_NEGATIVES)}")
        if self.clusters < 0 or self.clusters_per_row < 1 or self.refresh_steps < 1 or self.kmeans_iterations < 1:
            raise ConfigError(f"{path}: clusters ({self.clusters}) must be >= 0, clusters_per_row, refresh_steps "
                              "and kmeans_iterations >= 1")


class ActiveSetObjective(Objective):
    """The head's loss over an active set of labels (module docstring).

    Args:
      config: the `ActiveSetConfig`.
      num_labels: L.

    Example:
      objective = ActiveSetObjective(ActiveSetConfig(size=512), num_labels=10_000)
      objective.check_model(model)      # checks the head, sizes the index to its label vectors
      loss, reported = objective.per_example_loss(model, batch)   # float32 [b] each, in a replica context
    """

    def __init__(self, config: ActiveSetConfig, num_labels: int):
        super().__init__(name="active_set")
        self.config, self.num_labels = config, num_labels
        self.size = min(config.size, num_labels)
        self.certain_slots = max(self.size - config.uniform, 0)
        self.num_clusters = min(config.clusters or math.ceil(math.sqrt(num_labels)), num_labels)
        self.per_row = min(config.clusters_per_row, self.num_clusters)
        self.uses_index = config.hard_negatives == "clusters"

    @classmethod
    def from_config_dataclass(cls, config: ActiveSetConfig, *, info, length, global_batch_size: int):
        objective = cls(config, info.num_labels)
        per_point = float(info.splits.get("train", {}).get("avg_labels_per_point", 1.0))
        if objective.certain_slots < min(global_batch_size * per_point, info.num_labels) / 4:
            log.warning("loss.size %d - loss.uniform %d leaves %d slots for a global batch of %d rows with %.1f "
                        "labels each: positives may not fit", config.size, config.uniform, objective.certain_slots,
                        global_batch_size, per_point)
        return objective

    @classmethod
    def check_head(cls, head_class, head_config) -> None:
        obstacle = (head_class.active_set_obstacle(head_config) if head_class.supports_active_set_loss
                    else f"{head_class.__name__} has no active-set loss")
        if obstacle:
            raise ConfigError(f"loss 'active_set' estimates an exact head's loss (softmax or one_vs_all) from a "
                              f"subset of labels; it cannot train this head: {obstacle}")

    def check_model(self, model) -> None:
        """Checks the head and creates the index's variables, sized to its label vectors."""
        if not type(model.head).supports_active_set_loss:
            raise ConfigError(f"loss 'active_set' needs a head with an active-set loss (softmax or one_vs_all), not "
                              f"{type(model.head).__name__}")
        dim = int(model.head.label_vectors().shape[-1])
        # Outside any strategy scope on purpose: one plain copy per process (module docstring).
        with tf.init_scope():
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.centroids = tf.Variable(tf.zeros([self.num_clusters, dim]), trainable=False, name="centroids")
            self.assignment = tf.Variable(tf.zeros([self.num_labels], tf.int32), trainable=False, name="assignment")

    def per_example_loss(self, model, batch, training: bool = True):
        if not training:
            loss = model.per_example_loss(batch, training=False)
            return loss, loss
        ctx = tf.distribute.get_replica_context()
        head, labels = model.head, batch["labels"]
        features = model.encoder(batch, training=True)
        step = self.step.read_value()
        positives = ctx.all_reduce("SUM", self._positive_counts(labels))
        if self.uses_index:
            refresh = tf.equal(step % self.config.refresh_steps, 0)
            centroids, assignment = tf.cond(
                refresh, lambda: self._rebuilt_index(tf.stop_gradient(head.label_vectors())),
                lambda: (self.centroids.read_value(), self.assignment.read_value()))
            votes = ctx.all_reduce("SUM", self._cluster_votes(tf.stop_gradient(head.query_vectors(features)),
                                                              centroids))
            label_votes = tf.gather(votes, assignment)
        else:
            label_votes = tf.zeros([self.num_labels])
        active_ids, log_weights = self.active_set(positives, label_votes, step)
        # Every replica has read the state before the all-reduces above; all write the same values after them.
        with tf.control_dependencies([positives, label_votes]):
            updates = [self.step.assign(step + 1)]
            if self.uses_index:
                updates += [self.centroids.assign(centroids), self.assignment.assign(assignment)]
        with tf.control_dependencies(updates):
            loss = head.active_set_loss(features, labels, active_ids, log_weights)
        return loss, loss

    # === The set ===
    def _positive_counts(self, labels: tf.RaggedTensor) -> tf.Tensor:
        """float32 [L]: how many of this replica's rows have each label."""
        values = tf.cast(labels.values, tf.int32)
        return tf.math.unsorted_segment_sum(tf.ones_like(values, tf.float32), values, self.num_labels)

    def _cluster_votes(self, queries: tf.Tensor, centroids: tf.Tensor) -> tf.Tensor:
        """float32 [C]: Σ over this replica's rows of t − rank for each row's t best clusters (whole numbers, so
        the all-reduce's sum does not depend on the replica count)."""
        _, best = tf.math.top_k(tf.matmul(queries, centroids, transpose_b=True), k=self.per_row)
        points = tf.broadcast_to(tf.range(self.per_row, 0, -1, dtype=tf.float32), tf.shape(best))
        return tf.math.unsorted_segment_sum(tf.reshape(points, [-1]), tf.reshape(best, [-1]), self.num_clusters)

    def active_set(self, positives: tf.Tensor, label_votes: tf.Tensor, step: tf.Tensor):
        """(active ids int32 [M], log weights float32 [M]) from the global batch's positive counts float32 [L] and
        each label's cluster votes float32 [L] (0: not a hard negative); `step` seeds the uniform draw.

        The certain part D (positives first, then hard negatives by votes, lower ids first on ties) takes up
        to M − uniform slots; the rest are a uniform draw without replacement from the other labels.
        """
        m, num_labels = self.size, self.num_labels
        hard = label_votes / (tf.reduce_max(label_votes) + 1.0)               # in [0, 1)
        certain = tf.where(positives > 0, 3.0, tf.where(hard > 0, 1.0 + hard, 0.0))
        chosen, chosen_ids = tf.math.top_k(certain, k=self.certain_slots)
        in_certain = chosen > 0
        taken = tf.reduce_sum(tf.cast(in_certain, tf.int32))
        excluded = tf.scatter_nd(chosen_ids[:, None], tf.cast(in_certain, tf.float32), [num_labels]) > 0
        noise = tf.random.stateless_uniform([num_labels], seed=tf.stack([tf.constant(_DRAW_SEED, tf.int64), step]))
        _, drawn = tf.math.top_k(tf.where(excluded, -1.0, noise), k=m)
        slot = tf.range(m)
        ids = tf.where(slot < taken, tf.gather(tf.pad(chosen_ids, [[0, m - self.certain_slots]]), slot),
                       tf.gather(drawn, tf.maximum(slot - taken, 0)))
        sampled = tf.cast(m - taken, tf.float32)
        log_q = tf.math.log(tf.cast(num_labels - taken, tf.float32) / tf.maximum(sampled, 1.0))
        return ids, tf.where(slot < taken, 0.0, log_q)

    # === The index ===
    def _rebuilt_index(self, vectors: tf.Tensor):
        """(centroids float32 [C, d], assignment int32 [L]): spherical k-means of the label vectors [L, d],
        from the last centroids (or, on the first build, from evenly spaced labels)."""
        x = tf.math.l2_normalize(vectors, axis=1)
        last = self.centroids.read_value()
        spread = tf.gather(x, tf.cast(tf.linspace(0.0, self.num_labels - 1.0, self.num_clusters), tf.int32))
        centroids = tf.cond(tf.reduce_any(last != 0.0), lambda: last, lambda: spread)
        for _ in range(self.config.kmeans_iterations):
            assignment = self._assign(x, centroids)
            sums = tf.math.unsorted_segment_sum(x, assignment, self.num_clusters)
            norms = tf.norm(sums, axis=1, keepdims=True)
            # An empty cluster keeps its centroid.
            centroids = tf.where(norms > 0, sums / tf.maximum(norms, 1e-12), centroids)
        return centroids, self._assign(x, centroids)

    def _assign(self, x: tf.Tensor, centroids: tf.Tensor) -> tf.Tensor:
        """int32 [L]: each unit vector's nearest centroid, ASSIGN_BLOCK labels at a time."""
        blocks = -(-self.num_labels // ASSIGN_BLOCK)
        padded = tf.pad(x, [[0, blocks * ASSIGN_BLOCK - self.num_labels], [0, 0]])
        best = tf.map_fn(lambda block: tf.argmax(tf.matmul(block, centroids, transpose_b=True), axis=1,
                                                 output_type=tf.int32),
                         tf.reshape(padded, [blocks, ASSIGN_BLOCK, -1]), fn_output_signature=tf.int32)
        return tf.reshape(best, [-1])[:self.num_labels]
