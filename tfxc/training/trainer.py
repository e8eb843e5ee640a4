"""The trainer: a built run (`components`) driven by the outer loop (`controller`) around the inner one (`loop`).

  strategy = make_strategy(config.runtime)     # first: logical devices precede TF's start-up
  info = ensure_converted(config.data)         # data conversion, before anything is built
  trainer = Trainer(config, "runs/x", info, strategy)
  metrics = trainer.train()
"""

from __future__ import annotations

import os

from tfxc.model_dir import ModelDir
from tfxc.training.components import build_components
from tfxc.training.controller import Controller


class Trainer:
    """Trains `config` into `model_dir` (resuming from its latest checkpoint if there is one).

    Args:
      config: the `ExperimentConfig`.
      model_dir: a path or `ModelDir`.
      info: the converted data's `DatasetInfo` (see `tfxc.data.convert.ensure_converted`).
      strategy: from `tfxc.training.distribute.make_strategy(config.runtime)`.
      part: train only this independently trained part of the head (see
        `Head.num_parts`), in `ModelDir(model_dir).part(part)`; `merge_parts`
        assembles the whole model afterwards.
    """

    def __init__(self, config, model_dir, info, strategy, part: int | None = None):
        root = model_dir if isinstance(model_dir, ModelDir) else ModelDir(model_dir)
        self.model_dir = root if part is None else root.part(part)
        os.makedirs(self.model_dir.path, exist_ok=True)
        self.components = build_components(config, strategy, info, self.model_dir, part)
        self.controller = Controller(self.components, self.model_dir)

    @property
    def chief(self) -> bool:
        return self.controller.chief

    def train(self) -> dict[str, float]:
        """Trains to the configured length, then evaluates on test; returns the metrics (percent)."""
        return self.controller.train()

