"""The label tree head (`LabelTreeHead`) and its parts, one job a module: `config` (the config, its options and
the structure a model keeps: tree and node features), `head` (weights, scoring, training), `search` (the beam
search of prediction), `loss` (each level's active nodes and loss), `ops` (tensor helpers: post-processors,
the nodes' sparse term), `shortlist` (the nearest-centroid candidates beside the beam's)."""

from tfxc.heads.label_tree.config import SUPPORT_FILE, TREE_FILE, LabelTreeHeadConfig, Shortlist
from tfxc.heads.label_tree.head import LabelTreeHead

__all__ = ["SUPPORT_FILE", "TREE_FILE", "LabelTreeHead", "LabelTreeHeadConfig", "Shortlist"]
