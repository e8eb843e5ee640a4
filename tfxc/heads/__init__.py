"""Classification heads, one registry. See `tfxc.heads.base.Head` for the contract."""

from tfxc.heads.base import Head
from tfxc.heads.mach import MachHead, MachHeadConfig
from tfxc.heads.dense import OneVsAllHead, OneVsAllHeadConfig, SoftmaxHead, SoftmaxHeadConfig
from tfxc.heads.label_tree import LabelTreeHead, LabelTreeHeadConfig
from tfxc.heads.linear import LinearHead, LinearHeadConfig
from tfxc.heads.mhc import MhcHead, MhcHeadConfig
from tfxc.heads.mhp import MhpHead, MhpHeadConfig
from tfxc.heads.mhs import MhsHead, MhsHeadConfig
from tfxc.heads.xr_level import XrLevelHead, XrLevelHeadConfig
from tfxc.heads.xr_transformer import XrTransformerHead, XrTransformerHeadConfig
from tfxc.registry import Registry

HEADS = Registry("head")
HEADS.register("one_vs_all", config=OneVsAllHeadConfig)(OneVsAllHead)
HEADS.register("softmax", config=SoftmaxHeadConfig)(SoftmaxHead)
HEADS.register("mach", config=MachHeadConfig)(MachHead)
HEADS.register("linear", config=LinearHeadConfig)(LinearHead)
HEADS.register("label_tree", config=LabelTreeHeadConfig)(LabelTreeHead)
HEADS.register("mhp", config=MhpHeadConfig)(MhpHead)
HEADS.register("mhc", config=MhcHeadConfig)(MhcHead)
HEADS.register("mhs", config=MhsHeadConfig)(MhsHead)
HEADS.register("xr_level", config=XrLevelHeadConfig)(XrLevelHead)
HEADS.register("xr_transformer", config=XrTransformerHeadConfig)(XrTransformerHead)

__all__ = ["HEADS", "Head", "LabelTreeHead", "LabelTreeHeadConfig", "LinearHead", "LinearHeadConfig", "MachHead", "MachHeadConfig", "MhcHead", "MhcHeadConfig", "MhpHead", "MhpHeadConfig", "MhsHead", "MhsHeadConfig", "OneVsAllHead", "OneVsAllHeadConfig", "SoftmaxHead", "SoftmaxHeadConfig", "XrLevelHead",
           "XrLevelHeadConfig", "XrTransformerHead", "XrTransformerHeadConfig"]
