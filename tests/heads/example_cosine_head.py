"""An example head written outside tfxc: cosine similarity with a fixed scale (NormFace-style softmax).

score(x, l) = s · cos(h(x), w_l), trained with the softmax cross-entropy over
the scaled cosines (uniform over a row's labels). This module is everything the
head needs: a config dataclass, the layer, and one registration; a config
names it with `"imports": ["example_cosine_head"]` and `"head": {"name": "cosine"}`.

Reference: Wang, Xiang, Cheng & Yuille, 2017, "NormFace: L2 Hypersphere
Embedding for Face Verification" (ACM MM).
"""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import tf
from tfxc.errors import ConfigError
from tfxc.heads import HEADS, Head
from tfxc.heads.classification_losses import softmax_cross_entropy
from tfxc.heads.top_k import chunked_top_k


@dataclass(frozen=True)
class CosineHeadConfig:
    """Attributes: name "cosine"; scale: s, the inverse temperature of the softmax."""

    name: str = "cosine"
    scale: float = 16.0

    def validate(self, path: str) -> None:
        if not self.scale > 0:
            raise ConfigError(f"{path}.scale ({self.scale}) must be > 0")


class CosineHead(Head):
    """Logits s · cos(h, w_l), float32 [B, L]; top-k scores are the cosines."""

    logits_kind = "categorical"  # one softmax over the labels: R-Drop, multi-sample dropout and distillation apply

    def __init__(self, num_labels: int, scale: float, **kwargs):
        super().__init__(num_labels, **kwargs)
        self.scale = scale

    @classmethod
    def from_config_dataclass(cls, config: CosineHeadConfig, context):
        return cls(context.num_labels, config.scale, name="head")

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(self.num_labels, input_shape[-1]), name="kernel",
                                      initializer="glorot_uniform")
        self.built = True

    def _cosines(self, features, start: int, stop: int):
        w = tf.math.l2_normalize(self.kernel.value[start:stop], axis=1)
        return tf.matmul(tf.math.l2_normalize(features, axis=1), w, transpose_b=True)

    def call(self, features, training=False):
        return self.scale * self._cosines(features, 0, self.num_labels)

    def per_example_loss(self, logits, labels):
        return softmax_cross_entropy(logits, labels)

    def top_k(self, features, k):
        cosines, ids, _ = chunked_top_k(lambda a, b: self._cosines(features, a, b), self.num_labels, k)
        return cosines, ids

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


HEADS.register("cosine", config=CosineHeadConfig)(CosineHead)
