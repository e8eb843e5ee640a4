"""Streams a split through `model.top_k` and accumulates XMC metrics (no [N, L] matrix)."""

from __future__ import annotations

import logging

import numpy as np

from tfxc._tf import tf
from tfxc.utils.graph import BatchFunction
from tfxc.data.pipeline import eval_dataset, length_sorted_batches
from tfxc.data.propensity import dataset_propensities
from tfxc.errors import DataError
from tfxc.eval.classification import (ClassificationMetrics, log_threshold_meaning, predicted_sets,
                                      registered_head_name)
from tfxc.eval.metrics import XmcMetrics

log = logging.getLogger("tfxc.eval")

# An evaluator asked to keep a split's parsed batches in memory does so up to this many non-zero features.
KEPT_BATCHES_MAX_NNZ = 20_000_000


def pad_ids(ids: np.ndarray, k: int) -> np.ndarray:
    """Pads [B, k'] ids with -1 (never a hit) to [B, k] when there are fewer than k labels."""
    return ids if ids.shape[1] >= k else np.pad(ids, ((0, 0), (0, k - ids.shape[1])), constant_values=-1)


def split_metrics(info, eval_config, split: str) -> XmcMetrics:
    """An empty `XmcMetrics` for a split: its ks, propensities (from train) and multi-class flag."""
    return XmcMetrics(ks=eval_config.ks, multiclass=info.is_multiclass(split),
                      propensities=dataset_propensities(info, eval_config.propensity_a, eval_config.propensity_b))


class Evaluator:
    """Computes P@k, nDCG@k, PSP@k, PSnDCG@k, R@k (and Acc@k for multi-class data) on one split.

    On multi-class data with a head that supports `softmax_statistics` (e.g.
    the "linear" head) it also reports "CE", the full-softmax cross-entropy
    over all labels (nats, mean over points), from the same blockwise pass that
    ranks the labels. With `eval.classification` it also scores the predicted
    label sets (precision, recall, F1, accuracy; `tfxc.eval.classification`),
    whose per-label counts `classification` keeps after `evaluate`.

    Args:
      model: an `XCModel` (anything with `top_k(batch, k)`).
      info: the `DatasetInfo` of the converted data.
      eval_config: an `EvalConfig`.
      split: the split to evaluate.
      shard: (index, count): evaluate only this worker's batches (`eval_dataset`); then `add_up`
        must total the workers' sums.
      add_up: float64 vector -> its sum over the workers (`tfxc.training.distribute.all_reduce_sum`),
        so every worker returns the whole split's metrics.
      keep_batches: keep the parsed (and tokenised) batches in memory after the first evaluation, for a
        split evaluated again and again (the val split during training), when it has at most
        `KEPT_BATCHES_MAX_NNZ` non-zero features: each later evaluation then skips reading and parsing
        (on medical, building and reading the pipeline was most of an evaluation's 57 ms).
    """

    def __init__(self, model, info, eval_config, split: str = "test", shard: tuple[int, int] | None = None,
                 add_up=None, keep_batches: bool = False):
        if split not in info.splits:
            raise DataError(f"there is no '{split}' split; the data has: {', '.join(info.splits)}", path=info.dir)
        self.model, self.info, self.config, self.split = model, info, eval_config, split
        self.shard, self.add_up = shard, add_up
        self._keep = keep_batches and int(info.splits[split].get("nnz", KEPT_BATCHES_MAX_NNZ + 1)) <= KEPT_BATCHES_MAX_NNZ
        self._kept: tuple[bool, list] | None = None  # (in file order, the batches)
        self.k = max(eval_config.ks)
        if self.k > info.num_labels:
            log.warning("eval.ks asks for k up to %d but there are only %d labels: P@k for k > %d counts the "
                        "missing ranks as misses", self.k, info.num_labels, info.num_labels)
        k = min(self.k, info.num_labels)
        self._top_k = model.head.evaluation_top_k(model, k)
        self.multiclass = info.is_multiclass(split)
        self.classification: ClassificationMetrics | None = None
        self._softmax_statistics = None
        if self.multiclass and model.head.supports_softmax_statistics:
            self._softmax_statistics = BatchFunction(
                lambda batch: model.head.softmax_statistics(model.encoder(batch, training=False),
                                                            batch["labels"].values, k))

    def predictions(self):
        """Yields (scores float32 [B, k], ids int64 [B, k], labels int64 ragged [B, None]) per batch, in file order."""
        for batch in self._batches(in_file_order=True):
            scores, ids = self._top_k(batch)
            yield scores, pad_ids(ids, self.k), batch["labels"]

    def _batches(self, in_file_order: bool = False):
        """The split's parsed batches through the encoder's preprocessing (tokenisation): in file order, or for
        sums over rows (the metrics), token sequences batched by length (`length_sorted_batches`)."""
        if self._kept is not None and self._kept[0] == in_file_order:
            return self._kept[1]
        args = (self.info.files(self.split), self.config.batch_size, self.config.max_points)
        kwargs = dict(preprocess=self.model.encoder.preprocess, shard=self.shard)
        batches = eval_dataset(*args, **kwargs) if in_file_order else length_sorted_batches(*args, **kwargs)
        if not self._keep:
            return batches
        self._kept = (in_file_order, list(batches))
        return self._kept[1]

    def _metrics(self) -> XmcMetrics:
        return split_metrics(self.info, self.config, self.split)

    def frequency_baseline(self) -> dict[str, float]:
        """Metrics of predicting the k most frequent training labels for every point (the bar to clear)."""
        metrics = self._metrics()
        top = pad_ids(np.argsort(-self.info.label_freq, kind="stable")[None, : self.k], self.k)
        for batch in eval_dataset(self.info.files(self.split), self.config.batch_size, self.config.max_points):
            labels = batch["labels"]
            metrics.update(np.repeat(top, int(labels.nrows()), axis=0), labels.row_splits.numpy(),
                           labels.values.numpy())
        return metrics.result()

    def evaluate(self) -> dict[str, float]:
        metrics = self._metrics()
        sets = ClassificationMetrics(self.info.num_labels) if self.config.classification else None
        threshold = None if self.multiclass else self.config.threshold
        if sets is not None and threshold is not None:  # a softmax's scores sum to 1: say what the threshold keeps
            log_threshold_meaning(registered_head_name(self.model.head), threshold)
        ce_total = 0.0
        for batch in self._batches():
            if self._softmax_statistics is None:
                scores, ids = (np.asarray(t) for t in self._top_k(batch))
            else:  # a multi-class split: the sets are the top labels, whatever the scores (here logits) are
                ce, scores, ids = (t.numpy() for t in self._softmax_statistics(batch))
                ce_total += float(np.sum(ce, dtype=np.float64))
            labels = batch["labels"]
            row_splits, values = labels.row_splits.numpy().astype(np.int64), labels.values.numpy()
            metrics.update(pad_ids(ids, self.k), row_splits, values)
            if sets is not None:
                sets.update(predicted_sets(ids, scores, threshold=threshold), row_splits, values)
        out = self._total(metrics).result()
        if self._softmax_statistics is not None:
            if self.add_up is not None:
                ce_total = float(self.add_up(np.array([ce_total]))[0])
            out["CE"] = ce_total / out["num_points"] if out["num_points"] else float("nan")
        if sets is not None:
            self.classification = sets if self.add_up is None else sets.load_sums(self.add_up(sets.sums()))
            out.update(self.classification.result())
        return out


    def _total(self, metrics: XmcMetrics) -> XmcMetrics:
        """This worker's sums, or with `add_up` all workers' (every worker calls it: a collective)."""
        return metrics if self.add_up is None else metrics.load_sums(self.add_up(metrics.sums()))


def format_metrics(metrics: dict) -> str:
    """The headline metrics on one line: "P@1 65.17 P@3 40.77 ..." (P, nDCG, PSP, Acc, CE, and F1-macro when the
    label sets were scored)."""
    keys = [k for k in metrics if k.split("@")[0] in ("P", "nDCG", "PSP", "Acc", "CE") or k == "F1-macro"]
    return " ".join(f"{k} {metrics[k]:.2f}" for k in keys)


def rounded_metrics(metrics: dict) -> dict:
    """Metrics with floats rounded to 4 decimals (the JSON the CLIs print)."""
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def metric_lines(metrics: dict) -> list[str]:
    """One aligned "  name value" line per metric (the CLIs' text output)."""
    return [f"  {key:>10} {value:10.4f}" if isinstance(value, float) else f"  {key:>10} {value}"
            for key, value in metrics.items()]
