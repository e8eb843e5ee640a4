"""The label tree head's prediction (algorithms.md §1.5): a beam search down the levels, the path score of given
labels, the shortlist's candidates beside the beam's, and the propensity re-ranking of the last level.

`TreeSearch` is a part of `LabelTreeHead` (a mixin): it reads the head's tree tables and options and scores
nodes through the head's `_node_logits`, `_level_logits` and `_top_level_logits`.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.heads.label_tree.ops import distinct_per_row, in_log_space, post_process, propensity_rerank
from tfxc.heads.label_tree.shortlist import centroid_shortlist

# Entries of the [rows, candidates, support] blocks one evaluation call of the sparse term may gather (float32:
# 64 MiB each; XLA keeps a few such buffers at once).
SPARSE_BLOCK = 1 << 24


class TreeSearch:
    """Prediction of a `LabelTreeHead` (module docstring): `top_k`, `path_scores`, and the beam search that
    training's `man` negatives run too."""

    def top_k_rows_per_call(self) -> int:
        """Rows whose sparse term fits `SPARSE_BLOCK` entries at the widest level: a level gathers [rows,
        candidates, support width] (`sparse_node_logits`), which a solved ranker's wide supports (thousands of
        features a node near the top) make gigabytes at evaluation's 1,024 rows. 0 without a sparse term."""
        if self.sparse is None:
            return 0
        widest, kept = 0, 1
        for t, support in enumerate(self.sparse.support):
            fanout = self.sizes[0] if t == 0 else self.tree.children(t).shape[1]
            candidates = min(self.sizes[t], kept * fanout)
            kept = min(self.beam_size, candidates)
            widest = max(widest, candidates * support.shape[1])
        return 1 << max(0, (SPARSE_BLOCK // max(widest, 1)).bit_length() - 1)

    def _beam_search(self, features: tf.Tensor, k, levels: int | None = None, whole: dict | None = None,
                     pair_kernel: bool = False):
        """Beam search down the first `levels` levels (default all), keeping k at the last of them.

        `whole` may hold already computed logits of all nodes of some levels ({level: [B, K]}). `pair_kernel`
        (training's `man` negatives; never in a SavedModel): the sparse term through the compiled pair kernel,
        which reads a row's features from a dense buffer where TensorFlow's ops gather and search [B, C, S].

        Returns:
          (scores float32 [B, k'], node ids int32 [B, k'] (−1 where fewer than k' nodes
          were reachable), beams: the ids kept at each level before the last), k' = min(k, candidates).
        """
        levels = levels or len(self.sizes)
        whole = dict(whole or {})
        scores = post_process(self.post_processors[0], self._top_level_logits(features, whole, pair_kernel=pair_kernel),
                              None)
        width = k if levels == 1 else self.beam_size
        scores, ids = tf.math.top_k(scores, tf.minimum(width, self.sizes[0]))
        kept = min(self.beam_size, self.sizes[0])  # static beam width (k may be a tensor: only the last level)
        beams = []
        for t in range(1, levels):
            beams.append(ids)
            # [B, beam, F], −1 padded. A beam slot without a node (score −inf; its id may be a padding −1 when
            # the level had fewer candidates than the beam) has no children either.
            children = tf.gather(self.children[t].value, tf.maximum(ids, 0))
            fanout = children.shape[-1]
            children = tf.where(scores[:, :, None] > -float("inf"), children, -1)
            # Static candidate counts where known: `gather_dot` sizes its blocks by them.
            beam = children.shape[1]
            flat = [-1, beam * fanout] if beam is not None else tf.stack([tf.shape(children)[0], -1])
            candidates = tf.reshape(children, flat)
            parents = tf.reshape(tf.broadcast_to(scores[:, :, None], tf.shape(children)), flat)
            # A level no bigger than the candidate set is cheaper to score whole (one matmul); above that,
            # the blocked gather wins even at 256 rows (nextword level 3, 2,048 nodes: 7.6 vs 5 ms).
            if t not in whole and self.sizes[t] <= kept * fanout:
                whole[t] = self._level_logits(features, t)
            kept = min(self.beam_size, kept * fanout)
            logits = self._node_logits(features, t, candidates, whole.get(t), differentiable=False,
                                       pair_kernel=pair_kernel)
            combined = post_process(self.post_processors[t], logits, parents)
            combined = tf.where(candidates >= 0, combined, -float("inf"))
            width = k if t == levels - 1 else self.beam_size
            scores, order = tf.math.top_k(combined, tf.minimum(width, tf.shape(candidates)[1]))
            ids = tf.gather(candidates, order, batch_dims=1)
        ids = tf.where(scores > -float("inf"), ids, -1)
        return scores, ids, beams

    def path_scores(self, features: tf.Tensor, nodes: tf.Tensor) -> tf.Tensor:
        """The beam search's score of given last-level nodes, float32 [B, C] (−inf where a node id is negative).

        A node's score chains the post-processor down its ancestors, as the beam search does
        when the node's whole path is in the beam; here every level's ancestor is scored,
        whether or not the beam kept it.
        """
        safe = tf.maximum(nodes, 0)
        last = len(self.sizes) - 1
        score = None
        for t in range(len(self.sizes)):
            level_nodes = nodes if t == last else tf.where(nodes >= 0, tf.gather(self.ancestors[t].value, safe), -1)
            logits = self._node_logits(features, t, level_nodes, differentiable=False)
            score = post_process(self.post_processors[t], logits, score)
        return tf.where(nodes >= 0, score, -float("inf"))

    def _shortlisted_top_k(self, features: tf.Tensor, k) -> tuple[tf.Tensor, tf.Tensor]:
        """The beam's candidates and the shortlist's, ranked by path score + the shortlist's weight × x · c_l.

        Returns (scores float32 [B, k'], last-level node ids int32 [B, k'], −1 where none).
        """
        _, beam, _ = self._beam_search(features, tf.maximum(k, min(self.beam_size, self.sizes[-1])))
        _, ids, values = self.sparse_input.split(features)
        _, shortlist = centroid_shortlist(ids, values, self.shortlist_offsets.value, self.shortlist_labels.value,
                                          self.shortlist_values.value, self.shortlist.postings, self.shortlist.size)
        candidates = distinct_per_row(tf.concat([beam, shortlist], axis=1))
        last = len(self.sizes) - 1
        nearest = self._sparse_logits(features, last, candidates, kernel=self.shortlist_centroids.value)
        scores = tf.where(candidates >= 0, self.path_scores(features, candidates) + self.shortlist.weight * nearest,
                          -float("inf"))
        scores, order = tf.math.top_k(scores, tf.minimum(k, tf.shape(candidates)[1]))
        ids = tf.gather(candidates, order, batch_dims=1)
        return scores, tf.where(scores > -float("inf"), ids, -1)

    def top_k(self, features, k):
        """Beam search (module docstring), with the shortlist's candidates where there is one:
        (scores float32 [B, k'], label ids int64 [B, k']), best first.

        k' = min(k, labels reachable); a slot without a label has id −1. With `rerank_bonus` the
        candidates (at least beam_size) are ranked by `propensity_rerank`, and so are the scores.
        """
        k = tf.minimum(tf.cast(k, tf.int32), self.sizes[-1])
        width = k if self.rerank_bonus is None else tf.maximum(k, min(self.beam_size, self.sizes[-1]))
        if self.shortlist is not None:
            scores, ids = self._shortlisted_top_k(features, width)
        else:
            scores, ids, _ = self._beam_search(features, width)
        if self.rerank_bonus is not None:
            scores, ids = propensity_rerank(scores, ids, self.rerank_bonus, in_log_space(self.post_processors[-1]), k)
        if self.leaf_labels is not None:
            ids = tf.where(ids >= 0, tf.gather(self.leaf_labels.value, tf.maximum(ids, 0)), -1)
        return scores, tf.cast(ids, tf.int64)
