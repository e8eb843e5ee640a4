"""Learning-rate schedules: linear warm-up, then constant, cosine or linear decay to 0; with SWA, an anneal to a
constant SWA learning rate from the averaging's first step."""

from __future__ import annotations

import math

from tfxc._tf import keras, tf


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(t) = peak·(t+1)/warmup for t < warmup, then `decay` from peak to 0 at `total_steps`.

    With `swa_learning_rate` > 0 (SWA's schedule, PyTorch's `SWALR`, Izmailov et al., 2018): from step
    `swa_start` (0-based, the first step the weight average takes in) the rate moves linearly from the
    schedule's rate at `swa_start` to `swa_learning_rate` over `swa_anneal_steps` steps, then stays there:
    lr(t) = (1 − a)·lr(swa_start) + a·swa_lr with a = min(1, (t − swa_start + 1) / swa_anneal_steps).

    Args:
      peak: the learning rate after warm-up.
      warmup_steps: length of the linear warm-up (0 = none).
      total_steps: the step at which cosine/linear decay reaches 0.
      decay: "constant", "cosine" or "linear".
      swa_start, swa_learning_rate, swa_anneal_steps: the SWA anneal (off when swa_learning_rate is 0).
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, decay: str, swa_start: int = 0,
                 swa_learning_rate: float = 0.0, swa_anneal_steps: int = 1):
        self.peak, self.warmup_steps, self.total_steps, self.decay = peak, warmup_steps, total_steps, decay
        self.swa_start, self.swa_learning_rate = int(swa_start), float(swa_learning_rate)
        self.swa_anneal_steps = max(int(swa_anneal_steps), 1)

    def __call__(self, step):
        lr = self._scheduled(step)
        if not self.swa_learning_rate:
            return lr
        step = tf.cast(step, tf.float32)
        start = float(self.swa_start)
        weight = tf.clip_by_value((step - start + 1.0) / self.swa_anneal_steps, 0.0, 1.0)
        annealed = (1.0 - weight) * self._scheduled(tf.constant(start)) + weight * self.swa_learning_rate
        return tf.where(step >= start, annealed, lr)

    def _scheduled(self, step):
        step = tf.cast(step, tf.float32)
        warmup = tf.cast(self.warmup_steps, tf.float32)
        lr = tf.constant(self.peak, tf.float32)
        if self.decay != "constant":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = tf.clip_by_value((step - warmup) / span, 0.0, 1.0)
            if self.decay == "cosine":
                lr = lr * 0.5 * (1.0 + tf.cos(math.pi * progress))
            else:
                lr = lr * (1.0 - progress)
        if self.warmup_steps > 0:
            lr = tf.where(step < warmup, self.peak * (step + 1.0) / warmup, lr)
        return lr

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps,
                "decay": self.decay, "swa_start": self.swa_start, "swa_learning_rate": self.swa_learning_rate,
                "swa_anneal_steps": self.swa_anneal_steps}
