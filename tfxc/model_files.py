"""The layout of a model directory, and the records a training run leaves in it beside its checkpoints.

Layout of a model directory:

  config.json        the fully resolved config it was trained with
  dataset/           a copy of the converted data's card (stats.json, label_freq.npy, labels.txt,
                     featurizer.json): the data the model is bound to (see `ModelDir.bind_data`)
  run_info.json      versions, strategy and sizes of the last training run (informational)
  checkpoints/       TensorFlow checkpoints (the newest intact one is the model, unless best/ exists)
  best/              with trainer.select_metric: the weights of the best validation evaluation
                     (ckpt.*, and best.json: step, metric, value); then they are the model
  tensorboard/       training and evaluation scalars
  metrics.json       test metrics of the last training run
  eval_log.jsonl     periodic evaluations, one JSON object per line
  parts/part-NNN/    a model directory per independently trained part (e.g. MACH repetitions)
  ensemble.json      an ensemble's directory only (the recipe's `best` point, `tfxc.runs.members`): how its members
                     combine ({"method", "list_size", "members", ...}); it holds no config.json of its own
  members/member-NNN/  an ensemble's members, each a whole model directory
  logs/part-NNN.log  their logs, when `train.sh` runs them
  .lock              held by the run that writes the directory (see `ModelDir.lock`)
  (head assets, e.g. mach_lookup.npz)

`ModelFiles` names these paths and reads and writes the run's records (run_info.json, metrics.json,
eval_log.jsonl, best/); `tfxc.model_dir.ModelDir` adds the checkpoints, the config, the data and the
parts. Nothing else spells these names.
"""

from __future__ import annotations

import logging
import os

from tfxc.compat import BEST, ENSEMBLE, stamped, unstamped, upgrade
from tfxc.utils.display import json_text
from tfxc.utils.io import atomic_directory, atomic_write_text
from tfxc.utils.json_files import read_json_lines, read_json_object, required

log = logging.getLogger("tfxc.model_dir")

CONFIG_FILE = "config.json"
DATASET_DIR = "dataset"
RUN_INFO_FILE = "run_info.json"
CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "best"
BEST_FILE = "best.json"
TENSORBOARD_DIR = "tensorboard"
METRICS_FILE = "metrics.json"
EVAL_LOG_FILE = "eval_log.jsonl"
PARTS_DIR = "parts"
ENSEMBLE_FILE = "ensemble.json"
MEMBERS_DIR = "members"
LOCK_FILE = ".lock"


class ModelFiles:
    """The paths of a model directory and the records of its training run (see the module docstring).

    Args:
      path: the directory (it need not exist yet).
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def config_path(self) -> str:
        return self.file(CONFIG_FILE)

    @property
    def checkpoint_dir(self) -> str:
        return self.file(CHECKPOINT_DIR)

    @property
    def best_dir(self) -> str:
        return self.file(BEST_DIR)

    @property
    def dataset_dir(self) -> str:
        return self.file(DATASET_DIR)

    @property
    def tensorboard_dir(self) -> str:
        return self.file(TENSORBOARD_DIR)

    def worker_scratch_dir(self, worker_index: int) -> str:
        """Where a non-chief MultiWorkerMirrored worker writes its (discarded) checkpoint copies."""
        return self.file(f".worker-{worker_index}-tmp")

    def part(self, index: int):
        """The model directory (of this one's class) of independently trained part `index`."""
        return type(self)(os.path.join(self.path, PARTS_DIR, f"part-{index:03d}"))

    def member(self, index: int):
        """The model directory (of this one's class) of an ensemble's member `index`."""
        return type(self)(os.path.join(self.path, MEMBERS_DIR, f"member-{index:03d}"))

    # === An ensemble's record ===
    def ensemble(self) -> dict | None:
        """ensemble.json of an ensemble's directory ({"method", "list_size", "members": [relative paths], ...}),
        or None when this is a single model's directory.

        Raises:
          DataError: ensemble.json cannot be read, or lacks a field.
        """
        path = self.file(ENSEMBLE_FILE)
        if not os.path.exists(path):
            return None
        record = upgrade(ENSEMBLE, read_json_object(path, "the ensemble's record"), path)
        for key, kind in (("method", str), ("list_size", int), ("members", list)):
            required(record, key, path, kind)
        return record

    def write_ensemble(self, record: dict) -> None:
        """Writes ensemble.json (atomically): the directory becomes the ensemble of `record["members"]`."""
        atomic_write_text(self.file(ENSEMBLE_FILE), json_text(stamped(ENSEMBLE, record), indent=2) + "\n")

    def ensemble_members(self) -> list[str]:
        """The paths of an ensemble's member directories (`ensemble()["members"]`, relative to this one)."""
        return [os.path.join(self.path, member) for member in self.ensemble()["members"]]

    # === The records of a training run ===
    def write_run_info(self, run_info: dict) -> None:
        """Writes run_info.json: versions, strategy and sizes of the training run (informational)."""
        atomic_write_text(self.file(RUN_INFO_FILE), json_text(run_info, indent=2) + "\n")

    def write_metrics(self, metrics: dict) -> None:
        """Writes metrics.json: the final test metrics of the training run and how it went."""
        atomic_write_text(self.file(METRICS_FILE), json_text(metrics, indent=2) + "\n")

    def metrics(self) -> dict:
        """metrics.json as written by the last training run.

        Raises:
          DataError: there is none, or it cannot be read.
        """
        return read_json_object(self.file(METRICS_FILE), "the test metrics of the training run")

    def eval_log(self) -> list[dict]:
        """The lines of eval_log.jsonl (one dict per evaluation, in order; [] without the file).

        Raises:
          DataError: a line is not a JSON object.
        """
        path = self.file(EVAL_LOG_FILE)
        return read_json_lines(path, "the evaluation log") if os.path.exists(path) else []

    def append_eval_log(self, record: dict) -> None:
        """Adds the evaluation `record` ({"step", "split", ...}) to eval_log.jsonl.

        The file is rewritten whole (atomically). Lines at a later step, or at the same step and split, are
        from a run that was killed after that evaluation and resumed from an earlier checkpoint: `record`
        replaces them.
        """
        lines = [json_text(r) for r in self.eval_log() if _earlier(r, record)]
        lines.append(json_text(record))
        atomic_write_text(self.file(EVAL_LOG_FILE), "\n".join(lines) + "\n")

    # === The selected weights (best/) ===
    def best(self) -> dict | None:
        """best.json of the selected weights ({"step", "metric", "value"}), or None without them.

        Raises:
          DataError: best.json cannot be read (see `restore_best` for the fallback).
        """
        path = os.path.join(self.best_dir, BEST_FILE)
        if not os.path.exists(path):
            return None
        record = upgrade(BEST, read_json_object(path, "the record of the selected weights"), path)
        for key, kind in (("step", int), ("metric", str), ("value", (int, float))):
            required(record, key, path, kind)
        return unstamped(BEST, record)

    def save_best(self, model, record: dict) -> None:
        """Writes `model`'s weights and `record` as best/ (atomically: a crash keeps the previous best).

        Under MultiWorkerMirroredStrategy every worker writes its own copy (a non-chief
        into its scratch directory, see `worker_scratch_dir`).
        """
        from tfxc._tf import tf

        checkpoint = tf.train.Checkpoint(model=model)
        checkpoint.save_counter  # noqa: B018  (created on first read; `restore` asserts that everything matched)
        with atomic_directory(self.best_dir, marker=BEST_FILE) as tmp:
            checkpoint.write(os.path.join(tmp, "ckpt"))
            with open(os.path.join(tmp, BEST_FILE), "w", encoding="utf-8") as f:
                f.write(json_text(stamped(BEST, record), indent=2))

    def restore_best(self, model) -> dict | None:
        """Loads the selected weights (best/) into `model`; returns their record, or None without them.

        Damaged selected weights (cut short, corrupted) must not make the trained model unusable while its
        checkpoints are intact: then a loud warning names best/ and None is returned, and the caller uses its
        newest checkpoint instead. The model may have been partly overwritten by then, so the caller must
        restore all of it (`use_selected` does).
        """
        from tfxc._tf import tf

        try:
            record = self.best()
            if record is None:
                return None
            tf.train.Checkpoint(model=model).restore(
                os.path.join(self.best_dir, "ckpt")).expect_partial().assert_existing_objects_matched()
        except Exception as e:  # truncated: IndexError; flipped bits: DataLossError; missing: NotFoundError
            log.warning("THE SELECTED WEIGHTS IN %s ARE DAMAGED (%s: %s); using the newest checkpoint instead, "
                        "which is not the one trainer.select_metric chose. Train again (or resume with a longer "
                        "run) to select anew", self.best_dir, type(e).__name__, _first_line(e))
            return None
        return record

    def use_selected(self, model, restore_newest, average=None, holds_newest: bool = False) -> dict | None:
        """Leaves `model` holding the directory's model: the selected weights (best/) when there are intact
        ones, else the newest checkpoint's weights (their average, when the run averaged them).

        Args:
          model: the built model.
          restore_newest: a function that restores the newest checkpoint into all of `model` (and `average`).
          average: the `WeightAverage` the checkpoints hold besides the model, or None.
          holds_newest: `model` holds the newest checkpoint's weights already (a training that has just
            saved it): `restore_newest` is then called only when damaged selected weights overwrote part
            of them.

        Returns:
          the record of the selected weights (best.json), or None when the newest checkpoint is used.
        """
        selected = self.restore_best(model)  # best/ holds the model's weights only (the average, when there is one)
        if selected is not None:
            return selected
        if not holds_newest or os.path.isdir(self.best_dir):
            restore_newest()
        if average is not None:
            average.copy_to_model()  # the checkpoint keeps both; the model then uses the average
        return None


def _earlier(line: dict, record: dict) -> bool:
    """Whether the eval_log.jsonl `line` stays when `record` is added (see `ModelFiles.append_eval_log`)."""
    return line["step"] < record["step"] or (line["step"] == record["step"] and line["split"] != record["split"])


def _first_line(error: Exception) -> str:
    """The first line of an error's message, without TF's function-node decoration (at most 200 chars)."""
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    return line.split("}}", 1)[-1].strip()[:200]
