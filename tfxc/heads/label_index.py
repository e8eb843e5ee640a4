"""A serving index for heads whose top-k reads every label: beam search over clusters of the label vectors.

An exact head (softmax, one-vs-all, linear) ranks a row by the logits of all L
labels, so one served row streams the whole [d, L] matrix. After training, the
index clusters the label vectors into a tree and answers `top_k` by reading a
few clusters only (the retrieval step of XR-Linear's beam search, Yu et al.,
"PECOS", JMLR 2022, §3; here over the learned vectors instead of PIFA):

  1. Label vectors v_l in the space where the head's dense logit is an inner
     product: z_l = ⟨q, v_l⟩ with q = `Head.index_query(h)`, e.g. v_l = [w_l, b_l]
     against q = [h, 1] (maximum inner product search with a bias folded in).
  2. Leaves: tfxc's balanced 2-means (`tfxc.tree.balanced_kmeans_codes`) of the
     augmented vectors as they are (`normalise=False`, which recalled more of the
     exact top-5 on wordnet-hypernyms than unit-length vectors or the
     MIPS-to-nearest-neighbour transform [v, sqrt(M² − |v|²)]: docs/benchmarks-
     history.md, "Label index"), and PECOS's chain of
     coarser levels above them (`tfxc.tree.LabelTree`).
     A node's centroid c is the mean of its labels' raw vectors, so ⟨q, c⟩ is
     the mean dense logit of the labels below it, and its radius r the largest
     distance of one of them from c.
  3. `top_k`: level by level, the row keeps the `beam` nodes of highest score
     ⟨q, c⟩ + reach · |q| · r (`LabelIndex`) among the children of the nodes it kept; the labels of the last
     level's kept clusters (padded member lists: [B, beam · max leaf size], static)
     are then scored EXACTLY: ⟨q, v_l⟩ plus whatever else the head adds (its
     sparse term, `Head.index_logits`), and ranked. Scores keep the head's
     meaning (`Head.index_scores`): sigmoids for one-vs-all; for a softmax, whose
     exact normaliser needs all L logits, the softmax over the candidates
     (exp(z_l − logsumexp over the candidates)), which is at least the exact
     probability and equal to it when the candidates hold all the mass.

With the beam covering every cluster the candidates are all labels and the
index's top-k is the exact one; a narrower beam trades recall of the exact top-k
for speed, which the export measures and chooses (`tfxc.export.index_choice`).
Only core TensorFlow ops are used (matmul, gather, top_k, where), so TF Serving's
standard server runs the SavedModel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.heads.gather_dot import gather_dot
from tfxc.tree import LabelTree, balanced_kmeans_codes

# Labels per leaf cluster (at most): the last level's candidates per kept cluster.
DEFAULT_LEAF_SIZE = 32
# Children per node above the leaves (PECOS's nr_splits).
DEFAULT_NR_SPLITS = 16
# `LabelIndex`'s reach: halfway between the clusters' mean logit and the bound on their best one, which
# recalled the most of the exact top-5 per label read on wordnet-hypernyms (docs/benchmarks-history.md,
# "Label index").
DEFAULT_REACH = 0.5


@dataclass(frozen=True)
class IndexTables:
    """The index's arrays, coarse to fine (NumPy; `LabelIndex` holds them as variables).

    Attributes:
      vectors: float32 [L, d'], the label vectors the index scores exactly (`Head.index_vectors`).
      centroids: one float32 [K_t, d'] per cluster level t (the mean vector of the labels below each node).
      radii: one float32 [K_t] per cluster level: the largest distance |v_l − centroid| of a label below.
      children: one int32 [K_{t−1}, fan-out] per level t ≥ 1 of clusters, the child nodes, −1 padded.
      members: int32 [K_last, max leaf size], the labels of each last-level cluster, −1 padded.
    """

    vectors: np.ndarray
    centroids: tuple
    radii: tuple
    children: tuple
    members: np.ndarray

    @property
    def sizes(self) -> list[int]:
        """Nodes per cluster level, coarse to fine."""
        return [c.shape[0] for c in self.centroids]

    @property
    def leaf_size(self) -> int:
        return int(self.members.shape[1])

    def describe(self) -> str:
        return (f"{len(self.centroids)} levels of {self.sizes} clusters over {self.vectors.shape[0]} labels "
                f"(at most {self.leaf_size} per leaf, vectors of width {self.vectors.shape[1]})")


def build_index_tables(vectors: np.ndarray, leaf_size: int = DEFAULT_LEAF_SIZE, nr_splits: int = DEFAULT_NR_SPLITS,
                       normalise: bool = False, seed: int = 0) -> IndexTables:
    """Clusters label vectors float32 [L, d'] into the index's tree (module docstring).

    Args:
      vectors: one row per label, in the space of `Head.index_query`.
      leaf_size: at most this many labels per leaf cluster.
      nr_splits: children per node of the levels above the leaves.
      normalise: cluster the unit-length vectors (True) or the vectors as they are (False, which
        recalls more: module docstring). Balanced spherical 2-means splits by direction either way;
        without the normalisation a label's weight in a split grows with its norm, as its logits do.
      seed: the clustering's seed.

    Raises:
      ConfigError: fewer than two leaf clusters would hold the labels (an index cannot help).
    """
    vectors = np.ascontiguousarray(vectors, np.float32)
    num_labels = vectors.shape[0]
    if leaf_size < 1 or 2 * leaf_size > num_labels:
        raise ConfigError(f"a label index of leaves of {leaf_size} labels needs at least {2 * max(leaf_size, 1)} "
                          f"labels; the head has {num_labels}")
    points = vectors
    if normalise:
        points = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    codes, depth = balanced_kmeans_codes(points, max_leaf_size=leaf_size, seed=seed)
    tree = LabelTree.from_leaf_codes(codes, 2 ** depth, nr_splits=nr_splits)
    levels = tree.num_levels - 1  # the last level of the tree is the labels themselves
    centroids, radii = [], []
    for level in range(levels):
        node = tree.ancestors(level)  # the level's node above each label
        sums = np.zeros((tree.sizes[level], vectors.shape[1]), np.float64)
        np.add.at(sums, node, vectors)
        counts = np.bincount(node, minlength=tree.sizes[level])
        centroids.append((sums / np.maximum(counts, 1)[:, None]).astype(np.float32))
        radius = np.zeros(tree.sizes[level], np.float32)
        np.maximum.at(radius, node, np.linalg.norm(vectors - centroids[-1][node], axis=1))
        radii.append(radius)
    children = tuple(tree.children(level) for level in range(1, levels))
    return IndexTables(vectors, tuple(centroids), tuple(radii), children, tree.children(levels))


def augmented_vectors(rows: np.ndarray, bias: np.ndarray | None = None, cosine_scale: float | None = None):
    """A head's label vectors for the index: [w_l, b_l] (rows float [L, d], bias [L] or None), or
    s · w_l / |w_l| for scaled cosine logits (`cosine_scale` s): float32 [L, d(+1)]."""
    rows = np.asarray(rows, np.float32)
    if cosine_scale is not None:
        norms = np.sqrt(np.maximum(np.sum(rows ** 2, axis=1, keepdims=True), 1e-12))
        return (cosine_scale * rows / norms).astype(np.float32)
    if bias is not None:
        rows = np.concatenate([rows, np.asarray(bias, np.float32)[:, None]], axis=1)
    return np.ascontiguousarray(rows, np.float32)


def augmented_query(h: tf.Tensor, with_bias: bool, cosine_margin=None) -> tf.Tensor:
    """The query matching `augmented_vectors`: [h, 1] (with a bias), h, or h / |h| (cosine): float32 [B, d(+1)]."""
    h = tf.cast(h, tf.float32)
    if cosine_margin is not None:
        return cosine_margin.normalize(h)
    return tf.concat([h, tf.ones_like(h[:, :1])], axis=1) if with_bias else h


def candidate_softmax(top_logits: tf.Tensor, candidate_logits: tf.Tensor) -> tf.Tensor:
    """A softmax head's scores through the index: exp(z − logsumexp of the row's candidates), float32 [B, k]
    (the exact normaliser needs all L logits; this one is exact when the candidates hold all the mass)."""
    return tf.exp(top_logits - tf.reduce_logsumexp(candidate_logits, axis=1)[:, None])


def recall_at_k(exact_ids: np.ndarray, found_ids: np.ndarray) -> float:
    """The mean share of each row's exact top-k (int [N, k]) that `found_ids` (int [N, k']) holds, in [0, 1].

    Padding (−1) in `exact_ids` does not count (a row's exact list may be shorter than k).
    """
    exact_ids, found_ids = np.asarray(exact_ids), np.asarray(found_ids)
    hits = (exact_ids[:, :, None] == found_ids[:, None, :]).any(axis=2) & (exact_ids >= 0)
    wanted = np.maximum((exact_ids >= 0).sum(axis=1), 1)
    return float(np.mean(hits.sum(axis=1) / wanted)) if len(exact_ids) else 1.0


class LabelIndex(tf.Module):
    """The tables of `IndexTables` as variables (saved with the SavedModel) and the beam search over them.

    Args:
      tables: `IndexTables`.
      beam: clusters kept per level (≥ 1); `beam` ≥ every level's size makes `top_k` exact.
      reach: a node scores ⟨q, c⟩ + reach · |q| · r (c its centroid, r its radius). With reach 1 that is
        the ball's bound on its labels' best inner product (Ram & Gray, "Maximum inner-product search
        using cone trees", KDD 2012): a cluster with one far-out label is not hidden by the mean of
        the others; 0 ranks nodes by their labels' mean logit.

    Example:
      index = LabelIndex(build_index_tables(head.index_vectors()), beam=8)
      scores, ids = index.top_k(head, features, k=5)     # float32 [B, 5], int64 [B, 5]
    """

    def __init__(self, tables: IndexTables, beam: int, reach: float = DEFAULT_REACH, name: str = "label_index"):
        super().__init__(name=name)
        if beam < 1:
            raise ConfigError(f"the label index's beam ({beam}) must be >= 1")
        self.beam, self.reach = int(beam), float(reach)
        self.sizes = tables.sizes
        self.num_labels = int(tables.vectors.shape[0])
        constant = lambda value, label: tf.Variable(value, trainable=False, name=label)
        self.vectors = constant(tables.vectors, "vectors")
        # [c, r] against [q, reach · |q|]: the bound above is one inner product.
        self.centroids = [constant(np.concatenate([c, r[:, None]], axis=1), f"centroids_{t}")
                          for t, (c, r) in enumerate(zip(tables.centroids, tables.radii))]
        self.children = [constant(c, f"children_{t + 1}") for t, c in enumerate(tables.children)]
        self.members = constant(tables.members, "members")

    @property
    def exhaustive(self) -> bool:
        """Whether the beam keeps every cluster of every level (the candidates are all labels)."""
        return self.beam >= max(self.sizes)

    def candidates(self, query: tf.Tensor) -> tf.Tensor:
        """The labels of the kept leaf clusters: int32 [B, beam · max leaf size], −1 padded (query [B, d'])."""
        nodes, kept = None, 0
        query = tf.concat([query, self.reach * tf.norm(query, axis=1, keepdims=True)], axis=1)
        for level, centroids in enumerate(self.centroids):
            if level == 0:
                scores = tf.matmul(query, centroids, transpose_b=True)                 # [B, K_0]
                width = self.sizes[0]
            else:
                width = kept * int(self.children[level - 1].shape[1])                   # static: shapes stay known
                children = tf.reshape(tf.gather(self.children[level - 1], nodes), [-1, width])
                scores = gather_dot(query, centroids, tf.maximum(children, 0))
                scores = tf.where(children >= 0, scores, -np.inf)
            kept = min(self.beam, width)
            _, best = tf.math.top_k(scores, k=kept)
            nodes = best if level == 0 else tf.gather(children, best, batch_dims=1)
        return tf.reshape(tf.gather(self.members, nodes), [-1, kept * int(self.members.shape[1])])

    def top_k(self, head, features: tf.Tensor, k):
        """The head's top-k through the index: (scores float32 [B, k], ids int64 [B, k]), best first.

        `k` is a Python int or a scalar int32 tensor. Slots past the candidates (k larger than
        beam · leaf size, or padded members) hold id −1 and score 0.
        """
        query = head.index_query(features)
        labels = self.candidates(query)
        valid = labels >= 0
        safe = tf.maximum(labels, 0)
        logits = head.index_logits(features, safe, gather_dot(query, self.vectors, safe))
        logits = tf.where(valid, logits, -np.inf)
        width = int(labels.shape[1])
        k = tf.cast(k, tf.int32)
        kept = tf.minimum(k, width)
        top, position = tf.math.top_k(logits, k=kept)
        ids = tf.gather(labels, position, batch_dims=1)
        found = tf.gather(valid, position, batch_dims=1)
        scores = tf.where(found, head.index_scores(top, logits), 0.0)
        ids = tf.where(found, tf.cast(ids, tf.int64), -1)
        pad = [[0, 0], [0, k - kept]]
        return tf.pad(scores, pad), tf.pad(ids, pad, constant_values=-1)
