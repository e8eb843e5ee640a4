"""Cosine logits with an additive margin on the target: ArcFace and CosFace.

References: Deng, Guo, Xue & Zafeiriou, "ArcFace: Additive Angular Margin Loss
for Deep Face Recognition" (CVPR 2019); Wang et al., "CosFace: Large Margin
Cosine Loss for Deep Face Recognition" (CVPR 2018); Wang et al., "NormFace"
(ACM MM 2017) for the plain scaled cosine. Spec: algorithms.md §3.4.

A cosine head scores label l by s·cos θ_l = s·⟨h/|h|, w_l/|w_l|⟩. During
training the target's cosine t = cos θ_y is replaced by

  ArcFace  cos(θ_y + m) = t·cos m − sin θ_y · sin m   when t > cos(π − m),
           t − m·sin(π − m)                           otherwise (θ_y + m would pass π,
                                                       where cos stops decreasing);
           with `easy_margin`: cos(θ_y + m) when t > 0, t otherwise;
  CosFace  t − m;

and evaluation ranks by s·cos θ unchanged. sin θ_y = √(1 − t²) has an infinite
derivative at t = ±1, so 1 − t² is clipped away from 0 and the arithmetic runs
in float32 whatever the compute dtype (`mixed_bfloat16`): no NaN at t = ±1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tfxc._tf import tf
from tfxc.errors import ConfigError

MARGINS = ("", "arcface", "cosface")

# 1 − t² never falls below this: d√x/dx stays below ~1.6e3, and sin θ is off by at most 3e-4 at t = ±1.
_MIN_SIN_SQUARED = 1e-7


@dataclass(frozen=True)
class MarginOptions:
    """Cosine logits and a target margin, shared by the configs of the heads that offer them.

    Attributes:
      cosine: score with s·cos(h, w_l) (NormFace) instead of ⟨h, w_l⟩ + b (no bias, whatever
        use_bias says); implied by a margin.
      margin: "" (none), "arcface" (additive angular, cos(θ + m)) or "cosface" (additive cosine, cos θ − m),
        applied to the positives' cosines in the training loss only.
      margin_m: m (ArcFace 0.5 as in insightface; CosFace is usually run at 0.35).
      margin_scale: s, the logits' scale (insightface: 64; smaller suits fewer classes).
      easy_margin: ArcFace's variant that leaves targets with t ≤ 0 unchanged.
    """

    cosine: bool = False
    margin: str = ""
    margin_m: float = 0.5
    margin_scale: float = 30.0
    easy_margin: bool = False

    @property
    def uses_cosine(self) -> bool:
        return self.cosine or bool(self.margin)

    def validate_margin(self, path: str) -> None:
        if self.margin not in MARGINS:
            raise ConfigError(f"{path}.margin '{self.margin}' is not one of {', '.join(repr(m) for m in MARGINS)}")
        if self.margin_scale <= 0:
            raise ConfigError(f"{path}.margin_scale ({self.margin_scale}) must be > 0")
        if self.margin and not 0.0 <= self.margin_m < (math.pi / 2 if self.margin == "arcface" else 2.0):
            raise ConfigError(f"{path}.margin_m ({self.margin_m}) must be in [0, π/2) for arcface, [0, 2) for "
                              "cosface")
        if self.easy_margin and self.margin != "arcface":
            raise ConfigError(f"{path}.easy_margin is an option of the 'arcface' margin")

    def cosine_margin(self) -> "CosineMargin | None":
        """The `CosineMargin` of these options (None when the logits are not cosines)."""
        if not self.uses_cosine:
            return None
        return CosineMargin(self.margin, m=self.margin_m, scale=self.margin_scale, easy=self.easy_margin)


def target_cosine(t: tf.Tensor, kind: str, m: float, easy: bool = False) -> tf.Tensor:
    """The margin-adjusted target cosine t' (module docstring), float32 like `t`'s shape."""
    t = tf.clip_by_value(tf.cast(t, tf.float32), -1.0, 1.0)
    if kind == "cosface":
        return t - m
    if kind != "arcface":
        return t
    sin = tf.sqrt(tf.maximum(1.0 - tf.square(t), _MIN_SIN_SQUARED))
    shifted = t * math.cos(m) - sin * math.sin(m)
    if easy:
        return tf.where(t > 0.0, shifted, t)
    return tf.where(t > math.cos(math.pi - m), shifted, t - m * math.sin(math.pi - m))


class CosineMargin:
    """Scaled cosine logits and their margin at given entries.

    Args:
      kind: one of `MARGINS` ("" scales the cosines only).
      m: the margin.
      scale: s.
      easy: ArcFace's easy margin.
    """

    def __init__(self, kind: str = "", m: float = 0.5, scale: float = 30.0, easy: bool = False):
        self.kind, self.m, self.scale, self.easy = kind, m, scale, easy

    def get_config(self) -> dict:
        return {"margin": self.kind, "margin_m": self.m, "margin_scale": self.scale, "easy_margin": self.easy}

    @staticmethod
    def normalize(x: tf.Tensor, axis: int = -1) -> tf.Tensor:
        """x / |x| along `axis` in float32 (a zero vector stays zero)."""
        return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=axis, epsilon=1e-12)

    def logits(self, features: tf.Tensor, rows: tf.Tensor, rows_axis: int = 0) -> tf.Tensor:
        """s·cos of features [B, d] against label weights: rows [K, d] (rows_axis 0) or columns [d, K] (1).

        Returns float32 [B, K].
        """
        if rows_axis == 0:
            return self.scale * tf.matmul(self.normalize(features), self.normalize(rows), transpose_b=True)
        return self.scale * tf.matmul(self.normalize(features), self.normalize(rows, axis=0))

    def at_positions(self, logits: tf.Tensor, indices: tf.Tensor) -> tf.Tensor:
        """`logits` (s·cos, float32 [B, K]) with the margin applied at `indices` (int64 [P, 2] of (row, column)).

        The gradient flows through the adjusted entries as well as the others.
        """
        if not self.kind:
            return logits
        positive = tf.gather_nd(logits, indices)
        adjusted = self.scale * target_cosine(positive / self.scale, self.kind, self.m, self.easy)
        return tf.tensor_scatter_nd_add(logits, indices, adjusted - positive)

    def at_labels(self, logits: tf.Tensor, labels: tf.RaggedTensor) -> tf.Tensor:
        """The margin at every (row, positive label) of int64 ragged [B, None] `labels` (columns = label ids)."""
        if not self.kind:
            return logits
        return self.at_positions(logits, tf.stack([labels.value_rowids(), tf.cast(labels.values, tf.int64)], 1))

    def at_columns(self, logits: tf.Tensor, columns: tf.Tensor) -> tf.Tensor:
        """The margin at column `columns[i]` of each row i (int [B]), for in-batch sampled losses."""
        if not self.kind:
            return logits
        rows = tf.range(tf.shape(logits, out_type=tf.int64)[0])
        return self.at_positions(logits, tf.stack([rows, tf.cast(columns, tf.int64)], 1))
