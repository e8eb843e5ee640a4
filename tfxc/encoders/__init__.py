"""Encoders: map a batch of inputs to dense feature vectors [B, dim]."""

from tfxc.encoders.sparse_bow import SparseBowEncoder, SparseBowEncoderConfig
from tfxc.registry import Registry

ENCODERS = Registry("encoder")
ENCODERS.register("sparse_bow", config=SparseBowEncoderConfig)(SparseBowEncoder)

__all__ = ["ENCODERS", "SparseBowEncoder", "SparseBowEncoderConfig"]
