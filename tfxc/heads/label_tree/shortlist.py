"""A nearest-centroid shortlist for the label tree's prediction: labels that the beam search did not reach.

A beam search only finds a label whose ancestors all ranked in the beam, so a
tail label under a busy branch is often never scored. The shortlist scores
every label by x · c_l, c_l the unit-norm (idf-weighted) PIFA centroid of its
training rows on its `sparse_support` features (Rocchio's prototype; the
XR-Transformer ranker also reads the TF-IDF row itself, algorithms.md §1.6),
and adds its best `shortlist_size` labels to the beam's candidates; the
candidates are then ranked by the tree's path score plus `shortlist_weight`
× x · c_l (`LabelTreeHead.top_k`).

Every label is scored through an impact-ordered inverted index: feature f ->
the labels whose support holds f, by descending centroid weight, of which the
first `per_feature` are read (a frequent feature, which many labels hold with a
small weight, then costs no more than a rare one). A row reads at most W ×
per_feature entries (W its features): static shapes, compiled by XLA with the
beam search, and never a [B, L] tensor.
"""

from __future__ import annotations

import numpy as np

from tfxc._tf import tf
from tfxc.heads.label_tree.ops import PAD as _NO_LABEL


def impact_index(support: np.ndarray, weights: np.ndarray, num_features: int,
                 per_feature: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature -> its `per_feature` largest-weight (label, weight) entries of a support table.

    Args:
      support: int32 [L, S], each label's feature ids (−1 padded).
      weights: float32 [L, S], the label's weight on each (its unit-norm centroid there).
      num_features: D.
      per_feature: how many entries a feature keeps at most.

    Returns:
      (offsets int32 [D + 1], labels int32 [N], values float32 [N]): feature f's entries are
      labels/values[offsets[f]:offsets[f + 1]], by descending weight (ties: ascending label).
    """
    label, slot = np.nonzero(support >= 0)  # by label, ascending
    feature, value = support[label, slot], weights[label, slot].astype(np.float32) + np.float32(0)  # no -0.0
    if value.size and value.min() >= 0:
        # One stable sort of a 64-bit key (feature, then weight descending: a non-negative float's bits
        # order like its value) keeps ties by ascending label: at 10^6 labels a third of the lexsort's time.
        descending = np.uint32(0xFFFFFFFF) - value.view(np.uint32)
        order = np.argsort((feature.astype(np.uint64) << np.uint64(32)) | descending.astype(np.uint64),
                           kind="stable")
    else:
        order = np.lexsort((label, -value, feature))
    feature, label, value = feature[order], label[order], value[order]
    counts = np.bincount(feature, minlength=num_features)
    starts = np.concatenate([[0], np.cumsum(counts)])
    keep = np.arange(len(feature)) - starts[feature] < per_feature
    kept_counts = np.minimum(counts, per_feature)
    offsets = np.concatenate([[0], np.cumsum(kept_counts)])
    if offsets[-1] >= 2 ** 31:
        raise ValueError(f"a shortlist index of {offsets[-1]} entries does not fit int32 indices")
    return offsets.astype(np.int32), label[keep].astype(np.int32), value[keep]


def centroid_shortlist(ids: tf.Tensor, values: tf.Tensor, offsets: tf.Tensor, labels: tf.Tensor,
                       weights: tf.Tensor, per_feature: int, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The `size` labels of largest x · c_l over the index's entries, per row.

    Args:
      ids: int32 [B, W], each row's feature ids (ids outside [0, D), such as `PAD_FEATURE`, are padding).
      values: float32 [B, W], their values.
      offsets, labels, weights: an `impact_index` (int32 [D + 1], int32 [N], float32 [N]).
      per_feature: the entries read per feature (at most the index's).
      size: labels returned per row.

    Returns:
      (scores float32 [B, size'], label ids int32 [B, size'], −1 where a row reaches fewer labels),
      best first; size' = min(size, W × per_feature).
    """
    num_features = tf.shape(offsets)[0] - 1
    valid = (ids >= 0) & (ids < num_features)
    safe = tf.where(valid, ids, 0)
    lo = tf.gather(offsets, safe)
    hi = tf.where(valid, tf.gather(offsets, safe + 1), lo)
    positions = lo[:, :, None] + tf.range(per_feature)[None, None, :]          # [B, W, P]
    inside = positions < hi[:, :, None]
    positions = tf.where(inside, positions, 0)
    entry_labels = tf.where(inside, tf.gather(labels, positions), _NO_LABEL)
    contributions = tf.where(inside, tf.gather(weights, positions) * values[:, :, None], 0.0)
    width = ids.shape[1] * per_feature if ids.shape[1] is not None else tf.shape(ids)[1] * per_feature
    entry_labels = tf.reshape(entry_labels, [-1, width])
    contributions = tf.reshape(contributions, [-1, width])
    # A label's entries sit together once sorted; each run of one label becomes one segment and is summed.
    order = tf.argsort(entry_labels, axis=1, stable=True)
    entry_labels = tf.gather(entry_labels, order, batch_dims=1)
    contributions = tf.gather(contributions, order, batch_dims=1)
    first = tf.concat([tf.ones_like(entry_labels[:, :1], tf.bool),
                       entry_labels[:, 1:] != entry_labels[:, :-1]], axis=1)
    rows = tf.shape(entry_labels)[0]
    segments = tf.cumsum(tf.cast(first, tf.int32), axis=1) - 1 + tf.range(rows)[:, None] * width
    count = rows * width
    sums = tf.reshape(tf.math.unsorted_segment_sum(contributions, segments, count), [-1, width])
    owners = tf.reshape(tf.math.unsorted_segment_min(entry_labels, segments, count), [-1, width])
    # Empty segments (min over nothing: int32 max) and the padding's run (_NO_LABEL) hold no label.
    scores = tf.where(owners < _NO_LABEL, sums, -float("inf"))
    scores, top = tf.math.top_k(scores, min(size, width) if isinstance(width, int) else tf.minimum(size, width))
    found = tf.gather(owners, top, batch_dims=1)
    return scores, tf.where(scores > -float("inf"), found, -1)
