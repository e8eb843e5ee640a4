"""Prediction ensembles of several models' top-k lists (PECOS XR-Transformer's `CsrEnsembler`).

Each model m gives, per row, only its top-k list: ids int64 ``[B, k_m]`` and
scores float32 ``[B, k_m]``, best first, with id ``-1`` for padding (rows with
fewer than ``k_m`` labels). Every method acts on the listed entries only; a
label missing from a model's list contributes 0 for that model. With ``M``
models, ``mm = max_m k_m`` and ``rank`` the 0-based position of an entry among
its model's row (padding skipped; the lists are ranked best first, as top-k
lists are):

* ``average``: ``Σ_m s_m / M``.
* ``softmax_average``: ``Σ_m softmax(s_m) / M``, the softmax taken over each
  model's listed entries of the row only.
* ``sigmoid_average``: ``Σ_m σ(s_m) / M``.
* ``log_average``: ``Σ_m (ln max(s_m, ε) − ln ε) / M`` with ε = 1e-30, the mean log-score, a
  missing label counting as ε. For softmax models whose lists hold every label (k ≥ L) this
  ranks exactly as the averaged logits (ln p = z − logsumexp z, and the logsumexp is one
  constant per model and row): the k-fold ensemble of text_classifier.
* ``rank_average``: ``Σ_m (mm − rank_m) / M``.
* ``round_robin``: model 0's best, model 1's best, ..., model 0's second, ...,
  skipping labels already taken. As in PECOS, a label's score is the
  maximum over the models listing it of ``(mm − rank_m + (M − m) / (M + 1)) / M``,
  which decreases strictly along that interleaved order.

The combined list is ranked by score descending, then label id ascending, and
cut to ``k``; rows with fewer than ``k`` distinct labels are padded with id
``-1`` and score ``-inf``.

Pure NumPy and vectorised per batch: all models' entries are concatenated to
``[B, T]`` (``T = Σ_m k_m``), sorted by id within each row, runs of equal ids
are reduced with ``np.add.reduceat`` (``np.maximum.reduceat`` for
round_robin), and each row's top ``k`` is taken with one ``np.lexsort``. Cost
``O(B · T log T)``; memory ``O(B · T)``. Nothing ``[B, L]`` is ever built.

References:
    Zhang, Jiong, Chang, Yu, Dhillon, 2021, "Fast Multi-Resolution Transformer
    Fine-tuning for Extreme Multi-label Text Classification", NeurIPS
    (XR-Transformer; its paper runs ensemble 3 models per data set).
    PECOS, ``pecos/utils/smat_util.py::CsrEnsembler`` (average, rank_average,
    sigmoid_average, softmax_average, round_robin) and ``get_relevance_csr``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["METHODS", "combine"]

METHODS = ("average", "softmax_average", "sigmoid_average", "log_average", "rank_average", "round_robin")
LOG_FLOOR = 1e-30

_NO_ID = np.iinfo(np.int64).max  # sorts after every real id


def combine(scores_list: Sequence[np.ndarray], ids_list: Sequence[np.ndarray], method: str,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """Combines M models' top-k lists of one batch into one top-k list per row.

    Args:
        scores_list: M float arrays ``[B, k_m]``, one per model (float32 from
            the models; any float is accepted and computed in float64).
        ids_list: M int arrays ``[B, k_m]``, the label ids of those scores,
            best first; ``-1`` (any negative id) is padding and is ignored.
        method: one of `METHODS` (see the module docstring).
        k: the length of the combined list, ``>= 1``.

    Returns:
        ``(scores float32 [B, k], ids int64 [B, k])``, ranked by score
        descending then id ascending; padding is id ``-1`` with score ``-inf``.

    Raises:
        ValueError: on an unknown method, ``k < 1``, no models, or arrays
            whose shapes do not match (each model's scores and ids alike, and
            the same B for all models).
    """
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method {method!r}; known: {', '.join(METHODS)}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = int(k)
    if len(scores_list) == 0 or len(scores_list) != len(ids_list):
        raise ValueError(f"need one scores and one ids array per model, got {len(scores_list)} and {len(ids_list)}")
    scores = [np.asarray(s, dtype=np.float64) for s in scores_list]
    ids = [np.asarray(i) for i in ids_list]
    for m, (s, i) in enumerate(zip(scores, ids)):
        if s.ndim != 2 or s.shape != i.shape or s.shape[0] != scores[0].shape[0]:
            raise ValueError(f"model {m}: scores {s.shape} and ids {i.shape} must both be [B, k_m] with "
                             f"B = {scores[0].shape[0]}")
        if i.dtype.kind not in "iu":
            raise ValueError(f"model {m}: ids must be integers, got dtype {i.dtype}")
    ids = [i.astype(np.int64, copy=False) for i in ids]
    num_models = len(scores)
    mm = max(i.shape[1] for i in ids)
    values = [_model_values(s, i >= 0, method, mm, m, num_models) for m, (s, i) in enumerate(zip(scores, ids))]
    reduce = np.maximum if method == "round_robin" else np.add
    out_scores, out_ids = _merge_top_k(np.concatenate(values, axis=1), np.concatenate(ids, axis=1), reduce, k)
    return (out_scores / num_models).astype(np.float32), out_ids


def _model_values(scores: np.ndarray, valid: np.ndarray, method: str, mm: int, m: int,
                  num_models: int) -> np.ndarray:
    """One model's transformed values, float64 [B, k_m] (0 at padding, which is dropped anyway)."""
    if method == "average":
        out = scores
    elif method == "log_average":
        out = np.log(np.maximum(scores, LOG_FLOOR)) - np.log(LOG_FLOOR)
    elif method == "sigmoid_average":
        out = 0.5 * (1.0 + np.tanh(0.5 * scores))  # σ(s), without overflow warnings for large |s|
    elif method == "softmax_average":
        masked = np.where(valid, scores, -np.inf)
        top = masked.max(axis=1, keepdims=True) if masked.shape[1] else np.zeros((masked.shape[0], 1))
        top = np.where(np.isfinite(top), top, 0.0)  # rows without entries
        e = np.where(valid, np.exp(masked - top), 0.0)
        total = e.sum(axis=1, keepdims=True)
        out = e / np.where(total > 0, total, 1.0)
    else:  # rank_average, round_robin: PECOS's relevance mm - rank, rank = position among the listed entries
        rank = np.cumsum(valid, axis=1) - 1
        out = (mm - rank).astype(np.float64)
        if method == "round_robin":
            out += (num_models - m) / (num_models + 1.0)
    return np.where(valid, out, 0.0)


def _merge_top_k(values: np.ndarray, ids: np.ndarray, reduce: np.ufunc, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduces equal ids within each row of [B, T] and keeps the top k: (float64 [B, k], int64 [B, k])."""
    num_rows, width = ids.shape
    keys = np.where(ids >= 0, ids, _NO_ID)
    if num_rows == 0 or width == 0:
        return np.full((num_rows, k), -np.inf), np.full((num_rows, k), -1, dtype=np.int64)
    order = np.argsort(keys, axis=1, kind="stable")
    keys = np.take_along_axis(keys, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    starts = np.ones(keys.shape, dtype=bool)  # the first entry of each run of equal ids in a row
    starts[:, 1:] = keys[:, 1:] != keys[:, :-1]
    flat_starts = np.flatnonzero(starts)  # each row begins a run, so no run crosses rows
    merged = np.full(num_rows * width, -np.inf)
    merged[flat_starts] = reduce.reduceat(values.ravel(), flat_starts)
    merged = merged.reshape(num_rows, width)
    merged_ids = np.where(starts, keys, _NO_ID)
    merged[merged_ids == _NO_ID] = -np.inf
    # Score descending, then id ascending; the -inf / _NO_ID fillers go last.
    top = np.lexsort((merged_ids, -merged), axis=1)[:, :k]
    out_scores = np.take_along_axis(merged, top, axis=1)
    out_ids = np.take_along_axis(merged_ids, top, axis=1)
    out_ids[out_ids == _NO_ID] = -1
    if out_ids.shape[1] < k:
        pad = ((0, 0), (0, k - out_ids.shape[1]))
        out_scores = np.pad(out_scores, pad, constant_values=-np.inf)
        out_ids = np.pad(out_ids, pad, constant_values=-1)
    return out_scores, out_ids
