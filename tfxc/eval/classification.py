"""Streaming precision, recall and F1 of predicted label *sets*: what text-classification users report.

The XMC metrics (`tfxc.eval.metrics`) score rankings. A classifier's users want the labels it predicts scored
as a set: the top label of a single-label (multi-class) model, or for a multi-label model every label whose
score passes a threshold (σ > 0.5 for one-vs-all sigmoids, as text_classifier and scikit-learn's usual
pipelines do). `ClassificationMetrics` keeps per-label counts (true positives, false positives, support),
never an [N, L] matrix, so batches, eval shards and workers add up (`sums` / `load_sums`).

Definitions (scikit-learn's `precision_recall_fscore_support` with ``zero_division=0``, in percent). With
``tp_l``, ``fp_l``, ``fn_l`` the counts of label ``l`` over all rows, ``S_i`` the predicted set and ``Y_i``
the true set of row ``i``:

* micro: P = Σ tp / Σ (tp + fp), R = Σ tp / Σ (tp + fn), F1 = 2PR / (P + R);
* macro: the unweighted mean over labels of each label's P, R and F1, over the labels that occur in the
  truth or in the predictions of the rows seen (scikit-learn's ``labels=unique_labels(y_true, y_pred)``;
  the labels of a 10^6-label space that never occur would only add zeros);
* weighted: the mean of the labels' P, R, F1 weighted by their support (true occurrences);
* samples: the mean over rows of |S ∩ Y| / |S|, |S ∩ Y| / |Y| and 2|S ∩ Y| / (|S| + |Y|);
* accuracy: the share of rows whose predicted set is exactly the true set (for one label per row and
  top-1 prediction, the accuracy).

A ratio whose denominator is 0 counts as 0 (``zero_division=0``).
"""

from __future__ import annotations

import json
import math

import numpy as np

from tfxc.config.metric_names import AVERAGES, CLASSIFICATION_METRICS
from tfxc.kernels import hits_matrix

__all__ = ["AVERAGES", "CLASSIFICATION_METRICS", "ClassificationMetrics", "SoftmaxThresholdWarning", "predicted_sets",
           "threshold_meaning"]

class SoftmaxThresholdWarning(UserWarning):
    """A threshold on the scores of a softmax head, whose scores of a row sum to 1 (`threshold_meaning`)."""


def threshold_meaning(head, threshold: float) -> str | None:
    """What a threshold on the scores of a model with head `head` means, where it is not "the labels whose own
    probability passes it": None for heads that score each label on its own (one-vs-all sigmoids, a label
    tree's path probabilities), a sentence for a softmax, whose scores of a row sum to 1, so that no more than
    ⌈1/t⌉ − 1 labels (at 0.5: one) can pass a threshold t > 0.

    Args:
      head: the head's config (a dict in the JSON layout, or the config dataclass), or its registered name.
      threshold: the threshold.
    """
    from tfxc.heads import HEADS

    name = head if isinstance(head, str) or head is None else (
        head.get("name") if isinstance(head, dict) else getattr(head, "name", None))
    if name not in HEADS.names() or not HEADS.get(name).scores_sum_to_one:  # each label scored on its own
        return None
    most = "every label" if threshold <= 0 else f"at most {max(math.ceil(1 / threshold) - 1, 0)} label(s) a row"
    return (f"the model's head is a softmax: a row's scores sum to 1 over the labels, so threshold "
            f"{threshold:g} keeps {most}; label sets of rows with several labels need one-vs-all sigmoids "
            '(model.head {"name": "one_vs_all"}; the recipe chooses them for text with several labels a row)')


def warn_threshold_meaning(head, threshold: float, stacklevel: int = 3) -> None:
    """`threshold_meaning` as a `SoftmaxThresholdWarning` (the Python API's way: the caller can change the
    threshold or the head, and filter the warning by its class), where there is something to say."""
    import warnings

    note = threshold_meaning(head, threshold)
    if note:
        warnings.warn(note, SoftmaxThresholdWarning, stacklevel=stacklevel)


# The notes (each names its head and threshold) already in this process's log: a training's val and test evaluations, and every
# periodic one, evaluate with the same head and threshold.
_LOGGED: set = set()


def log_threshold_meaning(head, threshold: float) -> None:
    """`threshold_meaning` as one log line of the "tfxc.eval" logger, once a process for a head and threshold
    (the CLIs' way: the evaluation's own lines go there)."""
    import logging

    note = threshold_meaning(head, threshold)
    if note and note not in _LOGGED:  # the note names the head and the threshold
        _LOGGED.add(note)
        logging.getLogger("tfxc.eval").warning("note: %s", note)


def registered_head_name(layer) -> str | None:
    """The registry name of a head layer (its exact class; None for an unregistered one)."""
    from tfxc.heads import HEADS

    return next((name for name in HEADS.names() if type(layer) is HEADS.get(name)), None)


def export_head(saved_model_dir: str) -> dict:
    """An exported SavedModel's head config (JSON layout) from its config asset; {} where it has none (or a
    damaged one: the reader says so later)."""
    from tfxc.compat import CONFIG, upgrade
    from tfxc.errors import TfxcError
    from tfxc.export.served import CONFIG_ASSET, extra_asset

    try:
        path = extra_asset(saved_model_dir, CONFIG_ASSET)
        with open(path, encoding="utf-8") as f:
            head = upgrade(CONFIG, json.load(f), path).get("model", {}).get("head", {})
    except (TypeError, OSError, ValueError, AttributeError, TfxcError):
        return {}
    return head if isinstance(head, dict) else {}


def export_threshold_meaning(saved_model_dir: str, threshold: float) -> str | None:
    """`threshold_meaning` for an exported SavedModel's head (its config asset); None where it has none."""
    return threshold_meaning(export_head(saved_model_dir), threshold)


def predicted_sets(ids: np.ndarray, scores: np.ndarray, *, threshold: float | None) -> np.ndarray:
    """The predicted label set of each row from its top-k list, as ids with -1 for "not predicted".

    Args:
      ids: int64 [B, k] the top-k label ids, best first (-1 pads).
      scores: float32 [B, k] their scores.
      threshold: None: the top label only (single-label prediction); a number: every label of the list
        whose score is above it (multi-label prediction; a row may then predict no label).

    Returns:
      int64 [B, k] (threshold) or [B, 1] (top label).
    """
    ids = np.asarray(ids, np.int64)
    if threshold is None:
        return ids[:, :1]
    return np.where(np.asarray(scores) > threshold, ids, -1)


class ClassificationMetrics:
    """Streaming P / R / F1 (micro, macro, weighted, samples), accuracy and a per-label report of label sets.

    Args:
      num_labels: L; every id must be < L.

    Example:
      >>> m = ClassificationMetrics(num_labels=3)
      >>> m.update(np.array([[0, 2], [1, -1]]),            # row 0 predicts {0, 2}, row 1 {1}
      ...          label_indptr=np.array([0, 1, 2]),       # row 0 is {0}, row 1 {2}
      ...          label_indices=np.array([0, 2]))
      >>> r = m.result()
      >>> round(r["P-micro"], 2), r["R-micro"], r["accuracy"]
      (33.33, 50.0, 0.0)
    """

    def __init__(self, num_labels: int):
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        self.num_labels = int(num_labels)
        self.reset()

    def reset(self) -> None:
        size = self.num_labels
        self._tp, self._fp, self._support = (np.zeros(size, np.int64) for _ in range(3))
        self._rows = np.zeros(5, np.float64)  # rows, exact matches, Σ row P, Σ row R, Σ row F1

    def update(self, pred_ids: np.ndarray, label_indptr: np.ndarray, label_indices: np.ndarray) -> None:
        """Adds one batch.

        Args:
          pred_ids: int [B, K]: each row's predicted labels, distinct, -1 (any negative) for none
            (`predicted_sets`).
          label_indptr: int [B + 1] CSR row pointers (from any start, as `XmcMetrics.update`).
          label_indices: int [nnz] the true label ids, sorted ascending within each row.
        """
        pred = np.ascontiguousarray(pred_ids, np.int64)
        if pred.ndim != 2:
            raise ValueError(f"pred_ids must be 2-D [B, K], got shape {pred.shape}")
        indptr = np.asarray(label_indptr, np.int64)
        if indptr.shape != (pred.shape[0] + 1,):
            raise ValueError(f"label_indptr has shape {indptr.shape}, expected [{pred.shape[0] + 1}]")
        indices = np.ascontiguousarray(np.asarray(label_indices, np.int64)[indptr[0]:indptr[-1]])
        indptr = indptr - indptr[0]
        if (pred.size and pred.max() >= self.num_labels) or (indices.size and (indices.max() >= self.num_labels
                                                                              or indices.min() < 0)):
            raise ValueError(f"label ids must be in [0, {self.num_labels})")
        hits = hits_matrix(pred, indptr, indices).astype(bool)  # [B, K]
        predicted = pred >= 0
        size = self.num_labels
        self._tp += np.bincount(pred[hits], minlength=size)
        self._fp += np.bincount(pred[predicted & ~hits], minlength=size)
        self._support += np.bincount(indices, minlength=size)
        n_hit, n_pred, n_true = hits.sum(axis=1), predicted.sum(axis=1), np.diff(indptr)
        self._rows += [pred.shape[0], np.sum((n_hit == n_pred) & (n_hit == n_true)),
                       _ratio(n_hit, n_pred).sum(), _ratio(n_hit, n_true).sum(),
                       _ratio(2 * n_hit, n_pred + n_true).sum()]

    def sums(self) -> np.ndarray:
        """The counts as one float64 vector [5 + 3L], to add up over workers (`load_sums` takes the total)."""
        return np.concatenate([self._rows, self._tp, self._fp, self._support]).astype(np.float64)

    def load_sums(self, sums: np.ndarray) -> "ClassificationMetrics":
        sums = np.asarray(sums, np.float64)
        if sums.shape != (5 + 3 * self.num_labels,):
            raise ValueError(f"expected {5 + 3 * self.num_labels} sums, got shape {sums.shape}")
        self._rows = sums[:5].copy()
        self._tp, self._fp, self._support = (np.rint(part).astype(np.int64) for part in np.split(sums[5:], 3))
        return self

    def per_label(self) -> dict[str, np.ndarray]:
        """Each label's precision, recall, F1 (percent, float64 [L]) and support, tp, fp (int64 [L])."""
        precision = 100 * _ratio(self._tp, self._tp + self._fp)
        recall = 100 * _ratio(self._tp, self._support)
        f1 = 100 * _ratio(2 * self._tp, 2 * self._tp + self._fp + (self._support - self._tp))
        return {"precision": precision, "recall": recall, "f1": f1, "support": self._support.copy(),
                "tp": self._tp.copy(), "fp": self._fp.copy()}

    def result(self) -> dict[str, float]:
        """{"P-micro", "R-micro", "F1-micro", ..., "F1-samples", "accuracy"} in percent (NaN before any row)."""
        rows = self._rows[0]
        if not rows:
            return {name: float("nan") for name in CLASSIFICATION_METRICS}
        tp, fp, fn = self._tp.sum(), self._fp.sum(), (self._support - self._tp).sum()
        p, r = float(_ratio(tp, tp + fp)), float(_ratio(tp, tp + fn))
        out = {"P-micro": 100 * p, "R-micro": 100 * r, "F1-micro": 100 * float(_ratio(2 * p * r, p + r))}
        labels = self.per_label()
        seen = (self._support > 0) | (self._tp + self._fp > 0)
        weights = self._support[seen] / max(self._support.sum(), 1)
        for name, key in (("P", "precision"), ("R", "recall"), ("F1", "f1")):
            out[f"{name}-macro"] = float(labels[key][seen].mean()) if seen.any() else 0.0
        for name, key in (("P", "precision"), ("R", "recall"), ("F1", "f1")):
            out[f"{name}-weighted"] = float(np.dot(labels[key][seen], weights))
        for name, total in zip(("P", "R", "F1"), self._rows[2:]):
            out[f"{name}-samples"] = 100 * float(total / rows)
        out["accuracy"] = 100 * float(self._rows[1] / rows)
        return {name: out[name] for name in CLASSIFICATION_METRICS}

    def report(self, names: list[str] | None = None) -> list[dict]:
        """The per-label table (labels seen in the truth or the predictions), by support then label id:
        one {"label", "precision", "recall", "f1", "support"} per label (scikit-learn's classification_report)."""
        labels = self.per_label()
        seen = np.flatnonzero((self._support > 0) | (self._tp + self._fp > 0))
        order = seen[np.lexsort((seen, -self._support[seen]))]
        return [{"label": names[i] if names else str(i), "precision": float(labels["precision"][i]),
                 "recall": float(labels["recall"][i]), "f1": float(labels["f1"][i]),
                 "support": int(labels["support"][i])} for i in order]


def _ratio(numerator, denominator) -> np.ndarray:
    """numerator / denominator elementwise, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    numerator, denominator = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    return np.divide(numerator, denominator, out=np.zeros(np.broadcast(numerator, denominator).shape),
                     where=denominator != 0)
