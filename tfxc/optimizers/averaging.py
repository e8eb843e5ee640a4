"""Weight averages evaluated and exported instead of the raw weights: EMA and SWA (algorithms.md §5.4).

* EMA: shadow ← d·shadow + (1 − d)·w after every step, with the warm-up of
  `tf.train.ExponentialMovingAverage(num_updates=...)`, d = min(decay, (1 + n)/(10 + n)), so
  the first steps do not drag the average back to the initialisation.
* SWA (Izmailov et al., 2018): from step `start` on, the uniform mean of the weights after
  every `every`-th step (MHE-XMC's `swa_step`), shadow ← shadow + (w − shadow)/n. Our models
  have no batch norm, so there are no statistics to recompute afterwards.

The shadows live under the strategy (one copy per replica, written alike by every
replica from the same weights) and in the checkpoint, so a resumed run continues its
average. Evaluation, the kept best weights and everything restored from the model
directory (evaluate, predict, export) see the average; training sees the raw weights.
"""

from __future__ import annotations

import contextlib

from tfxc._tf import tf


class WeightAverage(tf.Module):
    """The average of `variables` (create under the strategy's scope).

    Args:
      variables: the model's trainable variables.
      mode: "ema" or "swa".
      decay: EMA's decay d.
      start: SWA's first averaged step (1-based optimizer steps).
      every: SWA folds in the weights of steps start, start + every, start + 2·every, ...
    """

    def __init__(self, variables, mode: str, decay: float = 0.999, start: int = 1, every: int = 1):
        super().__init__(name="weight_average")
        if mode not in ("ema", "swa"):
            raise ValueError(f"mode must be 'ema' or 'swa', got {mode!r}")
        self.mode, self.decay, self.start, self.every = mode, float(decay), int(start), int(every)
        self._variables = list(variables)
        on_first = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_WRITE,
                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.shadows = [tf.Variable(tf.convert_to_tensor(v), name=f"shadow_{i}", **on_first)
                        for i, v in enumerate(self._variables)]
        self.count = tf.Variable(0.0, name="count", **on_first)

    def update(self, step) -> None:
        """Folds the current weights in; `step` is the optimizer's iteration count after the update."""
        step = tf.cast(step, tf.int64)
        taken = tf.logical_and(step >= self.start, (step - self.start) % self.every == 0)
        count = self.count.assign_add(1.0 if self.mode == "ema" else tf.cast(taken, tf.float32))
        if self.mode == "ema":
            weight = 1.0 - tf.minimum(self.decay, (1.0 + count) / (10.0 + count))
        else:
            weight = tf.where(taken, 1.0 / tf.maximum(count, 1.0), 0.0)
        for shadow, variable in zip(self.shadows, self._variables):
            shadow.assign_add((tf.convert_to_tensor(variable) - shadow) * weight)

    def _swap(self) -> None:
        for shadow, variable in zip(self.shadows, self._variables):
            raw = tf.identity(tf.convert_to_tensor(variable))
            variable.assign(shadow)
            shadow.assign(raw)

    @contextlib.contextmanager
    def swapped(self):
        """Within the block the model holds the average (and the shadows the raw weights)."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def copy_to_model(self) -> None:
        """Overwrites the model's weights with the average (for a model restored only to be used)."""
        for shadow, variable in zip(self.shadows, self._variables):
            variable.assign(shadow)


def build_average(trainer_config, model, steps_per_epoch: int = 1) -> WeightAverage | None:
    """The average `trainer.ema_decay` / `trainer.swa_start_step` (or `swa_start_epoch`, in epochs of
    `steps_per_epoch` steps) ask for, or None (call under the strategy scope)."""
    if trainer_config.ema_decay:
        return WeightAverage(model.trainable_variables, "ema", decay=trainer_config.ema_decay)
    start = trainer_config.swa_start(steps_per_epoch)
    if start:
        return WeightAverage(model.trainable_variables, "swa", start=start, every=trainer_config.swa_every_steps)
    return None
