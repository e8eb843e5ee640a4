"""The one doorway to a trained model directory: its file names, its config, its checkpoints, its parts.

Layout of a model directory:

  config.json        the fully resolved config it was trained with
  run_info.json      versions, strategy and sizes of the last training run (informational)
  checkpoints/       TensorFlow checkpoints (the latest is the model)
  tensorboard/       training and evaluation scalars
  metrics.json       test metrics of the last training run
  eval_log.jsonl     periodic evaluations, one JSON object per line
  parts/part-NNN/    a model directory per independently trained part (e.g. MACH repetitions)
  logs/part-NNN.log  their logs, when `train.sh` runs them
  (head assets, e.g. mach_lookup.npz)

`evaluate`, `export`, `predict`, `train.sh`, the tools and the tests reach a
trained model only through `ModelDir`.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from tfxc.errors import TfxcError, TrainingError

CONFIG_FILE = "config.json"
RUN_INFO_FILE = "run_info.json"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
METRICS_FILE = "metrics.json"
EVAL_LOG_FILE = "eval_log.jsonl"
PARTS_DIR = "parts"


class TrainedModel(NamedTuple):
    """A restored model with what it was trained with."""

    config: object  # ExperimentConfig
    model: object  # XCModel
    info: object  # DatasetInfo


class ModelDir:
    """A model directory (see the module docstring).

    Args:
      path: the directory (it need not exist yet).
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"ModelDir({self.path!r})"

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def config_path(self) -> str:
        return self.file(CONFIG_FILE)

    @property
    def checkpoint_dir(self) -> str:
        return self.file(CHECKPOINT_DIR)

    def worker_scratch_dir(self, worker_index: int) -> str:
        """Where a non-chief MultiWorkerMirrored worker writes its (discarded) checkpoint copies."""
        return self.file(f".worker-{worker_index}-tmp")

    def part(self, index: int) -> "ModelDir":
        """The model directory of independently trained part `index`."""
        return ModelDir(os.path.join(self.path, PARTS_DIR, f"part-{index:03d}"))

    def part_log(self, index: int) -> str:
        """The log `train.sh` writes for part `index`."""
        return os.path.join(self.path, "logs", f"part-{index:03d}.log")

    def latest_checkpoint(self) -> str | None:
        from tfxc._tf import tf

        return tf.train.latest_checkpoint(self.checkpoint_dir)

    def latest_step(self) -> int | None:
        """The step number of the latest checkpoint (None without one)."""
        latest = self.latest_checkpoint()
        return None if latest is None else int(latest.rsplit("-", 1)[1])

    # === Config ===
    def load_config(self, overrides=()):
        """The config the model was trained with, with `--set` overrides (e.g. eval settings) applied."""
        from tfxc.config import load_config

        if not os.path.exists(self.config_path):
            raise TfxcError(f"{self.path}: not a tfxc model directory (no {CONFIG_FILE})")
        return load_config(self.config_path, overrides)

    def config_text(self) -> str | None:
        """The stored config.json as written (None if there is none)."""
        if not os.path.exists(self.config_path):
            return None
        with open(self.config_path, encoding="utf-8") as f:
            return f.read()

    def write_config(self, config) -> None:
        from tfxc.config import save_config

        save_config(config, self.config_path)

    # === Restoring ===
    def restore(self, config=None, overrides=(), part: int | None = None) -> TrainedModel:
        """Builds the model and loads its latest checkpoint.

        Args:
          config: the config to build from (default: this directory's, with `overrides`).
          overrides: `--set` overrides for the stored config.
          part: this directory holds one part of a head trained in parts (see `Head.num_parts`).

        Raises:
          TrainingError: there is no checkpoint yet.
        """
        from tfxc._tf import tf
        from tfxc.build_context import BuildContext
        from tfxc.data.info import DatasetInfo
        from tfxc.model import build_model

        config = config or self.load_config(overrides)
        info = DatasetInfo.load(config.data.dir)
        model = build_model(config.model, BuildContext.from_info(info, seed=config.runtime.seed,
                                                                 model_dir=self.path, part=part))
        latest = self.latest_checkpoint()
        if latest is None:
            raise TrainingError(f"{self.path}: no checkpoint found in {CHECKPOINT_DIR}/; train first")
        tf.train.Checkpoint(model=model).restore(latest).expect_partial().assert_existing_objects_matched()
        return TrainedModel(config, model, info)
