"""Classification heads, one registry. See `tfxc.heads.base.Head` for the contract."""

from tfxc.heads.base import Head
from tfxc.heads.mach import MachHead, MachHeadConfig
from tfxc.heads.dense import OneVsAllHead, OneVsAllHeadConfig, SoftmaxHead, SoftmaxHeadConfig
from tfxc.heads.linear import LinearHead, LinearHeadConfig
from tfxc.registry import Registry

HEADS = Registry("head")
HEADS.register("one_vs_all", config=OneVsAllHeadConfig)(OneVsAllHead)
HEADS.register("softmax", config=SoftmaxHeadConfig)(SoftmaxHead)
HEADS.register("mach", config=MachHeadConfig)(MachHead)
HEADS.register("linear", config=LinearHeadConfig)(LinearHead)

__all__ = ["HEADS", "Head", "LinearHead", "LinearHeadConfig", "MachHead", "MachHeadConfig", "OneVsAllHead", "OneVsAllHeadConfig", "SoftmaxHead", "SoftmaxHeadConfig"]
