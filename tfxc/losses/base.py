"""The training objective contract, and the default objective: the head's own loss.

The training step asks the objective for the per-example loss of a replica's
rows, whatever the objective is:

  loss, reported = objective.per_example_loss(model, batch, training=True)   # float32 [b] each

`loss` is what the gradient is taken of; `reported` is what progress lines
and TensorBoard show (the same tensor for most objectives; the dual-variable
objectives report the in-batch cross-entropy instead, since their weight loss
is about 1 by construction). An objective is a `tf.Module`, so any state it
keeps (e.g. one dual variable per training example) is checkpointed with the
model and a resumed run continues with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tfxc._tf import tf


class Objective(tf.Module):
    """Base class of training objectives (see the module docstring)."""

    #: The objective scores label subsets through `Head.label_logits` (the head must support it).
    needs_label_logits: ClassVar[bool] = False

    @classmethod
    def from_config_dataclass(cls, config, *, info, length, global_batch_size: int) -> "Objective":
        """Builds the objective for training on `info` (a `DatasetInfo`) for `length` (a `TrainingLength`)."""
        raise NotImplementedError(f"{cls.__name__} must implement from_config_dataclass")

    def per_example_loss(self, model, batch, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
        """(loss float32 [b], reported float32 [b]) of this replica's rows; call inside `strategy.run`."""
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> None:
        """Called before the first step of epoch `epoch` (1-based); per-epoch schedules change here."""


@dataclass(frozen=True)
class HeadLossConfig:
    """The head's own loss (`Head.per_example_loss`), e.g. one-vs-all BCE or softmax cross-entropy.

    Attributes:
      name: "head".
    """

    name: str = "head"

    def validate(self, path: str) -> None:
        pass


class HeadLoss(Objective):
    """Trains the head's own per-example loss."""

    def __init__(self):
        super().__init__(name="head_loss")

    @classmethod
    def from_config_dataclass(cls, config: HeadLossConfig, *, info, length, global_batch_size: int) -> "HeadLoss":
        return cls()

    def per_example_loss(self, model, batch, training: bool = True):
        loss = model.per_example_loss(batch, training=training)
        return loss, loss
