"""The training length in every unit the loop needs, computed once from the config and the data.

It sits with the data: an epoch is a pass over the train split in global batches (`tfxc.data.pipeline`), and
both the training loop and `ModelDir` (checking that the parts of a model finished) count in it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfxc.data.pipeline import steps_per_epoch
from tfxc.errors import ConfigError


@dataclass(frozen=True)
class TrainingLength:
    """Steps per epoch and total steps; epochs are derived from steps, never stored next to them.

    An epoch is `steps_per_epoch` global batches (the last incomplete batch of
    an epoch is dropped, see `tfxc.data.pipeline`). `trainer.train_steps` sets
    the length in steps, else `trainer.epochs` (possibly fractional) does.

    Attributes:
      steps_per_epoch: global steps in one pass over the train split (>= 1).
      total_steps: global steps of the whole run (>= 1).
    """

    steps_per_epoch: int
    total_steps: int

    @classmethod
    def from_config(cls, trainer_config, num_train_points: int) -> "TrainingLength":
        """From a `TrainerConfig` and the train split size; a batch larger than the split is an error."""
        batch = trainer_config.global_batch_size
        if batch > num_train_points:
            raise ConfigError(f"trainer.global_batch_size ({batch}) exceeds the {num_train_points} training points")
        per_epoch = steps_per_epoch(num_train_points, batch)
        total = trainer_config.train_steps or max(1, math.ceil(trainer_config.epochs * per_epoch))
        return cls(per_epoch, total)

    @property
    def num_epochs(self) -> int:
        """Epochs the run starts (the last may be partial): T of the per-epoch schedules."""
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def epochs_at(self, step: int) -> float:
        """Passes over the data completed after `step` steps (for logs, e.g. 2.5)."""
        return step / self.steps_per_epoch

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, step in that epoch), both 0-based, of global step `step`."""
        return divmod(step, self.steps_per_epoch)

    def steps_in(self, epochs: float) -> int:
        """A cadence given in epochs, in steps (0 stays 0)."""
        return round(epochs * self.steps_per_epoch)
