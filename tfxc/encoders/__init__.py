"""Encoders: map a batch of inputs to dense feature vectors [B, dim]. See `tfxc.encoders.base.Encoder`."""

from tfxc.encoders.base import Encoder
from tfxc.encoders.dense_features import DenseFeaturesEncoder, DenseFeaturesEncoderConfig
from tfxc.encoders.repeated import RepeatedEncoder
from tfxc.encoders.sparse_bow import SparseBowEncoder, SparseBowEncoderConfig
from tfxc.registry import Registry

ENCODERS = Registry("encoder")
ENCODERS.register("sparse_bow", config=SparseBowEncoderConfig)(SparseBowEncoder)
ENCODERS.register("dense_features", config=DenseFeaturesEncoderConfig)(DenseFeaturesEncoder)

__all__ = ["ENCODERS", "DenseFeaturesEncoder", "DenseFeaturesEncoderConfig", "Encoder", "RepeatedEncoder",
           "SparseBowEncoder", "SparseBowEncoderConfig"]
