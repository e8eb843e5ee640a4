"""Evaluating a head trained in parts one part at a time (MACH's repetitions), in bounded memory.

The whole Amazon-670K-shaped MACH model is 32 repetitions of 0.3 GB; building
it to evaluate (and restoring a checkpoint into it) peaked at 21.4 GB. Here
each part is restored alone and scores the whole split into a scratch file
(`Head.part_scores`: float32 [N, W] per part, MACH's bucket scores with W = B);
then blocks of rows are read back from all parts, [rows, R, W], and ranked
(`Head.rank_part_scores`: MACH's exact Cython gather, or its candidate-set
approximation). Memory: one part, one evaluation batch and one block of rows;
disk: N · R · W · 4 bytes (2.6 GB for 2,000 rows × 32 × 10,000), checked
before the first part and removed at the end. The metrics equal the assembled
model's (`tests/heads/test_mach.py`).
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import tempfile
import time

import numpy as np

from tfxc._tf import tf
from tfxc.utils.graph import BatchFunction
from tfxc.build_context import BuildContext
from tfxc.data.pipeline import eval_dataset
from tfxc.errors import DataError, TfxcError
from tfxc.eval.classification import ClassificationMetrics, predicted_sets
from tfxc.eval.evaluator import pad_ids, split_metrics
from tfxc.heads import HEADS
from tfxc.config.roles import PREDICTION
from tfxc.model_dir import ModelDir
from tfxc.utils.memory import peak_rss_gb

log = logging.getLogger("tfxc.eval")


class PartsEvaluator:
    """The metrics of a model trained in parts, from its parts (see the module docstring).

    Args:
      config: the `ExperimentConfig` the parts were trained with (eval settings may differ).
      model_dir: the model directory (a path or `ModelDir`) with all parts finished.
      info: the converted data's `DatasetInfo`.
      split: the split to evaluate.
      rows_per_block: rows ranked at a time (memory: rows · R · W · 4 bytes).
    """

    def __init__(self, config, model_dir, info, split: str = "test", rows_per_block: int = 256):
        if split not in info.splits:
            raise DataError(f"there is no '{split}' split; the data has: {', '.join(info.splits)}", path=info.dir)
        self.config, self.info, self.split = config, info, split
        self.model_dir = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
        self.parts = self.model_dir.finished_parts(config, info, allowed=(PREDICTION,))
        self.rows_per_block = rows_per_block
        self.k = max(config.eval.ks)
        self.classification = None  # with eval.classification, the label sets' counts after `evaluate`
        # The whole head, unbuilt: its ranking of the parts' scores needs no weights (MACH: the lookup).
        self.head = HEADS.build(config.model.head, BuildContext.from_info(info, seed=config.runtime.seed,
                                                                          model_dir=self.model_dir.path))
        # Only the parts the ranking reads are scored (MACH's prediction.repetitions: the first R).
        self.parts = self.parts[:self.head.ranked_parts(len(self.parts))]

    def evaluate(self) -> dict[str, float]:
        scratch = tempfile.mkdtemp(prefix=".eval-parts-", dir=self.model_dir.path)
        try:
            files, row_splits, label_values = self._score_parts(scratch)
            metrics = self._rank(files, row_splits, label_values)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log.info("evaluated %d parts one at a time (peak resident memory %.2f GiB)", len(self.parts), peak_rss_gb())
        return metrics

    def _batches(self, model):
        return eval_dataset(self.info.files(self.split), self.config.eval.batch_size, self.config.eval.max_points,
                            preprocess=model.encoder.preprocess)

    def _score_parts(self, scratch: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Each part's scores of the split into scratch/part-NNN.f32; returns (files, labels' row splits, values)."""
        files, splits, values, rows = [], [np.zeros(1, np.int64)], [], 0
        for r, part_dir in enumerate(self.parts):
            started = time.time()
            model = part_dir.restore(self.config, part=r).model
            scores = BatchFunction(lambda batch, model=model: model.head.part_scores(model, batch))
            path = os.path.join(scratch, f"part-{r:03d}.f32")
            with open(path, "wb") as out:
                for batch in self._batches(model):
                    block = np.ascontiguousarray(scores(batch).numpy(), np.float32)
                    if r == 0 and not values:
                        self._check_disk(scratch, block.shape[1])
                    out.write(block.tobytes())
                    if r == 0:
                        labels = batch["labels"]
                        splits.append(labels.row_splits.numpy()[1:].astype(np.int64) + splits[-1][-1])
                        values.append(labels.values.numpy().astype(np.int64))
                        rows += int(labels.nrows())
            files.append(path)
            del model, scores
            gc.collect()  # one part in memory at a time
            log.info("part %d of %d scored %s in %.1f s", r + 1, len(self.parts), self.split, time.time() - started)
        return files, np.concatenate(splits), np.concatenate(values) if values else np.zeros(0, np.int64)

    def _check_disk(self, scratch: str, width: int) -> None:
        need = self.info.splits[self.split]["num_points"] * len(self.parts) * width * 4
        if self.config.eval.max_points:
            need = min(need, self.config.eval.max_points * len(self.parts) * width * 4)
        free = shutil.disk_usage(scratch).free
        if need > free:
            raise TfxcError(f"evaluating {len(self.parts)} parts one at a time writes their scores to {scratch}: "
                            f"{need / 1e9:.1f} GB, but only {free / 1e9:.1f} GB are free there (set "
                            "eval.max_points to evaluate fewer rows)")

    def _rank(self, files: list[str], row_splits: np.ndarray, label_values: np.ndarray) -> dict[str, float]:
        metrics = split_metrics(self.info, self.config.eval, self.split)
        sets = ClassificationMetrics(self.info.num_labels) if self.config.eval.classification else None
        threshold = None if self.info.is_multiclass(self.split) else self.config.eval.threshold
        num_rows = len(row_splits) - 1
        width = os.path.getsize(files[0]) // 4 // max(num_rows, 1)
        k = min(self.k, self.info.num_labels)
        handles = [open(path, "rb") for path in files]
        try:
            for start in range(0, num_rows, self.rows_per_block):
                stop = min(start + self.rows_per_block, num_rows)
                block = np.empty((stop - start, len(files), width), np.float32)
                for r, handle in enumerate(handles):
                    handle.seek(start * width * 4)
                    block[:, r, :] = np.fromfile(handle, np.float32, (stop - start) * width).reshape(-1, width)
                scores, ids = self.head.rank_part_scores(block, k)
                splits = row_splits[start:stop + 1]
                labels = (splits - splits[0], label_values[splits[0]:splits[-1]])
                metrics.update(pad_ids(np.asarray(ids, np.int64), self.k), *labels)
                if sets is not None:
                    sets.update(predicted_sets(np.asarray(ids), np.asarray(scores), threshold=threshold), *labels)
        finally:
            for handle in handles:
                handle.close()
        self.classification = sets
        return {**metrics.result(), **(sets.result() if sets is not None else {})}
