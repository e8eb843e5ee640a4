"""Learning-rate schedules: linear warm-up, then constant, cosine or linear decay to 0."""

from __future__ import annotations

import math

from tfxc._tf import keras, tf


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(t) = peak·(t+1)/warmup for t < warmup, then `decay` from peak to 0 at `total_steps`.

    Args:
      peak: the learning rate after warm-up.
      warmup_steps: length of the linear warm-up (0 = none).
      total_steps: the step at which cosine/linear decay reaches 0.
      decay: "constant", "cosine" or "linear".
    """

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, decay: str):
        self.peak, self.warmup_steps, self.total_steps, self.decay = peak, warmup_steps, total_steps, decay

    def __call__(self, step):
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
                "decay": self.decay}
