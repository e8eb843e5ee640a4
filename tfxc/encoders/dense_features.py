"""The identity encoder: a row's (feature id, value) pairs as a dense vector, for pre-extracted features."""

from __future__ import annotations

from dataclasses import dataclass

from tfxc._tf import tf
from tfxc.encoders.base import Encoder
from tfxc.encoders.sparse_bow import dense_rows
from tfxc.errors import ConfigError

# A dense vector of this many features per row is the most this encoder will build.
MAX_DENSE_FEATURES = 65536


@dataclass(frozen=True)
class DenseFeaturesEncoderConfig:
    """Config of `DenseFeaturesEncoder`.

    Attributes:
      name: "dense_features".
      normalize: L2-normalise each row (off for SCENT's Glint360K features, which are used raw).
    """

    name: str = "dense_features"
    normalize: bool = False

    def validate(self, path: str) -> None:
        pass


class DenseFeaturesEncoder(Encoder):
    """Scatters each row's features into a dense float32 [B, num_features] vector; no weights.

    For data that is already an embedding (e.g. 512-d face or image features
    converted from `.npy`), so that a head such as `LinearHead` is trained on
    the features themselves, as in the SCENT paper's linear classifier.

    Call args:
      inputs: {"feat_idx": int64 ragged [B, None], "feat_val": float32 ragged [B, None]}.

    Returns:
      float32 [B, num_features].
    """

    def __init__(self, num_features: int, normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_features > MAX_DENSE_FEATURES:
            raise ConfigError(f"model.encoder 'dense_features' would build [batch, {num_features}] inputs (more "
                              f"than {MAX_DENSE_FEATURES}); use 'sparse_bow' for sparse features")
        self.num_features, self.normalize = num_features, normalize

    @classmethod
    def from_config_dataclass(cls, config: DenseFeaturesEncoderConfig, context, *, name="encoder"):
        return cls(context.num_features, normalize=config.normalize, name=name)

    @property
    def output_dim(self) -> int:
        return self.num_features

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs, training=False):
        feat_idx, feat_val = inputs["feat_idx"], inputs["feat_val"]
        x = dense_rows(feat_idx, feat_val, feat_idx.values, self.num_features)
        if self.normalize:
            x = tf.math.l2_normalize(x, axis=1)
        return x

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features, "normalize": self.normalize}
