"""An ensemble's top-k inside the SavedModel graph: its members' lists combined as `tfxc.eval.ensemble` does.

An ensemble (the recipe's `best` point, `tfxc.runs.members`) serves from one SavedModel: every
member scores the batch, lists its top `max(k, list_size)` labels, and the lists
are combined by the method chosen on validation rows (`tfxc.eval.ensemble`, the
PECOS `CsrEnsembler` methods). This module is that combination in TensorFlow
ops, equal to the NumPy one up to float rounding (`tests/export/test_ensemble.py`),
so a served ensemble ranks as the evaluated one. Only core ops (ArgSort is TopKV2,
Cumsum, UnsortedSegmentSum/Max, GatherV2): TensorFlow Serving's model server runs
them (`tfxc.export.ops`).

Cost per batch of B rows and T = Σ_m k_m listed entries: one sort of [B, T] and one
top-k of [B, T]; nothing [B, L] is built.
"""

from __future__ import annotations

from tfxc._tf import tf
from tfxc.eval.ensemble import LOG_FLOOR, METHODS

_NO_ID = tf.int64.max  # sorts after every real id


class EnsembleTopK(tf.Module):
    """The top-k of several trained models combined (members' `XCModel`s, all reading the same inputs).

    Args:
      models: the members' `XCModel`s (encoder + head), M >= 2.
      method: one of `tfxc.eval.ensemble.METHODS`.
      list_size: labels each member lists per row (at least the k asked for), as in evaluation.
      num_labels: L, for capping the lists.
    """

    def __init__(self, models: list, method: str, list_size: int, num_labels: int):
        super().__init__(name="tfxc_ensemble")
        if method not in METHODS:
            raise ValueError(f"unknown ensemble method {method!r}; known: {', '.join(METHODS)}")
        if len(models) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(models)}")
        self.models, self.method = list(models), method
        self.list_size, self.num_labels = int(list_size), int(num_labels)

    def __call__(self, batch: dict, k) -> tuple[tf.Tensor, tf.Tensor]:
        """batch: the encoders' input dict of B rows; k: int or int32 scalar >= 1 -> (scores float32 [B, k],
        ids int64 [B, k]), ranked as `tfxc.eval.ensemble.combine` ranks, padding id -1 with score -inf."""
        width = tf.minimum(tf.maximum(tf.cast(k, tf.int32), self.list_size), self.num_labels)
        scores_list, ids_list = [], []
        for model in self.models:
            scores, ids = model.head.top_k(model.encoder(batch, training=False), width)
            scores_list.append(tf.cast(scores, tf.float32))
            ids_list.append(tf.cast(ids, tf.int64))
        return combine_top_k(scores_list, ids_list, self.method, k)


def restore_ensemble(model_dir, overrides=(), trust_imports=False) -> tuple[list, EnsembleTopK]:
    """An ensemble's directory (`tfxc.runs.members`) restored: (its members' `TrainedModel`s, their `EnsembleTopK`).

    Raises:
      TfxcError: the members read different inputs or rank different labels.
    """
    from tfxc.errors import TfxcError

    record = model_dir.ensemble()
    members = []
    for path in model_dir.ensemble_members():
        member = type(model_dir)(path)
        members.append(member.restore(member.load_config(overrides, trust_imports=trust_imports), need_rows=False))
    first = members[0]
    for path, other in zip(model_dir.ensemble_members()[1:], members[1:]):
        if ((other.info.num_labels, other.info.num_features, other.model.encoder.input_kind)
                != (first.info.num_labels, first.info.num_features, first.model.encoder.input_kind)):
            raise TfxcError(f"{path} reads other inputs or ranks other labels than the first member of "
                            f"{model_dir.path}; an ensemble's members must be trained on the same data")
    models = [member.model for member in members]
    return members, EnsembleTopK(models, record["method"], record["list_size"], first.info.num_labels)


def combine_top_k(scores_list: list, ids_list: list, method: str, k) -> tuple[tf.Tensor, tf.Tensor]:
    """`tfxc.eval.ensemble.combine` in graph ops.

    Args:
      scores_list: M float tensors [B, k_m], each model's scores, best first.
      ids_list: M int64 tensors [B, k_m], their label ids; negative ids are padding.
      method: one of `METHODS`.
      k: int or int32 scalar >= 1, the combined list's length.

    Returns:
      (scores float32 [B, k], ids int64 [B, k]): score descending, then id ascending; rows with fewer than k
      distinct labels padded with id -1 and score -inf.
    """
    num_models = len(scores_list)
    widths = [tf.shape(ids)[1] for ids in ids_list]
    mm = tf.cast(tf.reduce_max(tf.stack(widths)), tf.float64)
    values = [_model_values(tf.cast(s, tf.float64), ids >= 0, method, mm, m, num_models)
              for m, (s, ids) in enumerate(zip(scores_list, ids_list))]
    values, ids = tf.concat(values, axis=1), tf.concat(ids_list, axis=1)
    merged, merged_ids = _merge_runs(values, ids, method)
    k = tf.cast(k, tf.int32)
    top, where = tf.math.top_k(merged, tf.minimum(k, tf.shape(merged)[1]))  # equal scores: lower id first
    top_ids = tf.gather(merged_ids, where, batch_dims=1)
    top_ids = tf.where(top_ids == _NO_ID, tf.constant(-1, tf.int64), top_ids)
    pad = k - tf.shape(top)[1]
    top = tf.pad(top, [[0, 0], [0, pad]], constant_values=float("-inf"))
    top_ids = tf.pad(top_ids, [[0, 0], [0, pad]], constant_values=-1)
    return tf.cast(top / num_models, tf.float32), top_ids


def _model_values(scores, valid, method: str, mm, m: int, num_models: int):
    """One model's transformed values, float64 [B, k_m] (0 at padding); `_model_values` of the NumPy module."""
    if method == "average":
        out = scores
    elif method == "log_average":
        out = tf.math.log(tf.maximum(scores, LOG_FLOOR)) - tf.math.log(tf.constant(LOG_FLOOR, tf.float64))
    elif method == "sigmoid_average":
        out = tf.sigmoid(scores)
    elif method == "softmax_average":
        masked = tf.where(valid, scores, tf.constant(float("-inf"), tf.float64))
        top = tf.reduce_max(masked, axis=1, keepdims=True)
        top = tf.where(tf.math.is_finite(top), top, tf.zeros_like(top))  # rows without entries
        e = tf.where(valid, tf.exp(masked - top), tf.zeros_like(scores))
        total = tf.reduce_sum(e, axis=1, keepdims=True)
        out = e / tf.where(total > 0, total, tf.ones_like(total))
    else:  # rank_average, round_robin: PECOS's relevance mm - rank, rank = position among the listed entries
        rank = tf.cumsum(tf.cast(valid, tf.float64), axis=1) - 1.0
        out = mm - rank
        if method == "round_robin":
            out += (num_models - m) / (num_models + 1.0)
    return tf.where(valid, out, tf.zeros_like(out))


def _merge_runs(values, ids, method: str):
    """Equal ids of each row of [B, T] reduced to one entry (sum; max for round_robin): (float64 [B, T] with -inf
    wherever no label is, int64 [B, T] ids with `_NO_ID` there), sorted by id within each row."""
    keys = tf.where(ids >= 0, ids, tf.constant(_NO_ID, tf.int64))
    order = tf.argsort(keys, axis=1, stable=True)
    keys = tf.gather(keys, order, batch_dims=1)
    values = tf.gather(values, order, batch_dims=1)
    rows = tf.shape(keys)[0]
    starts = tf.concat([tf.ones([rows, 1], tf.bool), keys[:, 1:] != keys[:, :-1]], axis=1)[:, :tf.shape(keys)[1]]
    # Every row begins a run, so the running count of starts numbers the runs of all rows at once.
    segment = tf.cumsum(tf.reshape(tf.cast(starts, tf.int32), [-1])) - 1
    count = tf.reduce_sum(tf.cast(starts, tf.int32))
    reduce = tf.math.unsorted_segment_max if method == "round_robin" else tf.math.unsorted_segment_sum
    merged = tf.gather(reduce(tf.reshape(values, [-1]), segment, count), segment)
    real = starts & (keys != _NO_ID)
    merged = tf.where(real, tf.reshape(merged, tf.shape(keys)), tf.constant(float("-inf"), tf.float64))
    return merged, tf.where(real, keys, tf.constant(_NO_ID, tf.int64))
