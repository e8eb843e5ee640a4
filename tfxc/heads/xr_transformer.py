"""XR-Transformer (Zhang et al., NeurIPS 2021; PECOS): its config and its final model, the ranker.

An XR-Transformer run (`tfxc.xr`, started by `python -m tfxc.train` on a config whose head is
"xr_transformer") fine-tunes the encoder level by level along a preliminary label tree
(`tfxc.heads.xr_level`), then trains the ranker this module builds: the label tree head
(`tfxc.heads.label_tree`) over a tree refined on PIFA([TF-IDF ⊕ normalised E]), scoring
each node on the frozen fine-tuned encoder's unit-length embedding plus its sparse term
over the row's TF-IDF (`sparse_support`): PECOS's XR-Linear on [X ⊕ E], with its beam
search and post-processors (algorithms.md §1.6 steps 3–5, xr-transformer.md §3). The per-level
heads are not part of it; the SavedModel is the encoder, the TF-IDF featurizer and the beam search.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfxc.errors import ConfigError
from tfxc.heads.label_tree import LabelTreeHead
from tfxc.heads.label_tree.config import LabelTreeHeadConfig
from tfxc.heads.xr_level import LOSSES as MATCHER_LOSSES
from tfxc.heads.xr_level import NEGATIVES as MATCHER_NEGATIVES

BOOTSTRAPS = ("linear", "weighted-linear", "inherit", "no-bootstrap")
ENSEMBLE_METHODS = ("concat-only", "transformer-only")
RANKERS = ("xr_linear", "sgd")


@dataclass(frozen=True)
class XrTransformerHeadConfig(LabelTreeHeadConfig):
    """Config of an XR-Transformer run. The label tree's options configure the ranker (its refined tree:
    max_leaf_size, nr_splits, min_codes; its sparse TF-IDF term, whose weights start from the nodes'
    TF-IDF centroids (sparse_init 1.0: chosen on reuters' validation split); its beam); these add the
    fine-tuning.

    Attributes:
      name: "xr_transformer".
      matcher_max_leaf_size, matcher_nr_splits, matcher_min_codes: the preliminary tree, clustered on
        the TF-IDF's PIFA (min_codes 0: nr_splits).
      max_match_clusters: the levels with at most this many clusters are fine-tuned, coarse → fine.
      max_steps: optimizer steps per fine-tuned level: one value, or one per level.
      learning_rates, warmup_steps: per level likewise (empty: the optimizer's); warm-up, then linear
        decay to 0 within each level.
      matcher_negatives: "tfn", "man" or "tfn+man" (PECOS's `-ns`).
      max_active_matching_labels: the most clusters a row scores on a level below the top.
      matcher_loss: the level heads' loss (`tfxc.heads.xr_level.LOSSES`).
      bootstrap: how a level's head starts: "linear" / "weighted-linear" (a squared-hinge fit on the
        previous encoder's embeddings; weighted: positives by their label counts), "inherit" (each
        cluster copies its parent's vector) or "no-bootstrap" (random).
      only_topk: the clusters the previous level predicts per training row: the next level's `man`.
      ensemble_method: what predicts them (PECOS's name): "concat-only", a linear model on [TF-IDF ⊕
        normalised E] fitted after each level (the paper's), or "transformer-only", the level's own head.
      multi_resolution: false fine-tunes the finest of those levels alone, every cluster scored, for all
        their steps (the paper's ablation of the schedule).
      do_fine_tune: false ranks on the pretrained encoder's embeddings as they are.
      only_encoder: stop after fine-tuning (the encoder is the product; `tfxc.encode` reads it).
      fix_clustering: the ranker keeps the preliminary tree instead of re-clustering on [TF-IDF ⊕ E].
      ranker: how the ranker is trained. "xr_linear" (PECOS's): every node's squared-hinge problem solved
        on the full sparse rows (`tfxc.xr.xlinear`), each node keeping its weights of magnitude at least
        ranker_threshold (at most sparse_support of them, the largest, or more on levels of few nodes:
        `tfxc.xr.ranker.support_caps`; sparse_support 0: the embedding
        alone, no TF-IDF and so no guard), then trainer.epochs of SGD from
        that start, kept only as far as validation improves (the start is evaluated first). "sgd": SGD
        alone, from the nodes' PIFA centroids on sparse_support features each.
      ranker_mix: with "xr_linear", the mixes α·[TF-IDF ⊕ E] + (1 − α)·(the TF-IDF alone, solved on the same
        tree) tried on the validation split; the best on trainer.select_metric of those at least as good as
        α 0 on every P@k and PSP@k, up to the split's noise (`tfxc.xr.ranker`), is kept (α 0: the transformer
        did not help, and the ranker is the TF-IDF model). One value: that mix, unchecked.
      ranker_threshold: PECOS's weight threshold (0.1).
      final_post_processor: "" (the default) combines a label's score with its parents' as the upper levels
        do (l3-hinge, XR-Linear's): the solved nodes are trained on their parent's rows only, so a label's
        score means something under its parent's. The paper's SGD rankers use "noop" (the raw label score).
    """

    name: str = "xr_transformer"
    max_leaf_size: int = 16
    negatives: str = "tfn+man"
    final_post_processor: str = ""
    sparse_support: int = 256
    sparse_init: float = 1.0
    matcher_max_leaf_size: int = 16
    matcher_nr_splits: int = 16
    matcher_min_codes: int = 0
    max_match_clusters: int = 32768
    max_steps: tuple[int, ...] = (1000,)
    learning_rates: tuple[float, ...] = ()
    warmup_steps: tuple[int, ...] = ()
    matcher_negatives: str = "tfn+man"
    max_active_matching_labels: int = 1000
    matcher_loss: str = "weighted_squared_hinge"
    bootstrap: str = "weighted-linear"
    only_topk: int = 5
    ensemble_method: str = "concat-only"
    multi_resolution: bool = True
    do_fine_tune: bool = True
    only_encoder: bool = False
    fix_clustering: bool = False
    ranker: str = "xr_linear"
    ranker_mix: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)
    ranker_threshold: float = 0.1

    @property
    def solved_support(self) -> bool:
        return self.ranker == "xr_linear" and self.sparse_support > 0

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.matcher_max_leaf_size < 1 or self.matcher_nr_splits < 2 or self.matcher_min_codes < 0:
            raise ConfigError(f"{path}: matcher_max_leaf_size ({self.matcher_max_leaf_size}) must be >= 1, "
                              f"matcher_nr_splits ({self.matcher_nr_splits}) >= 2, matcher_min_codes >= 0")
        if (self.max_match_clusters < 1 or self.max_active_matching_labels < 1 or self.only_topk < 1
                or not self.max_steps or min(self.max_steps) < 1):
            raise ConfigError(f"{path}: max_match_clusters, max_active_matching_labels, only_topk and every "
                              "max_steps must be >= 1")
        if any(lr <= 0 for lr in self.learning_rates) or any(w < 0 for w in self.warmup_steps):
            raise ConfigError(f"{path}: learning_rates must be > 0 and warmup_steps >= 0")
        for key, value, options in (("matcher_negatives", self.matcher_negatives, MATCHER_NEGATIVES),
                                    ("matcher_loss", self.matcher_loss, MATCHER_LOSSES),
                                    ("bootstrap", self.bootstrap, BOOTSTRAPS),
                                    ("ensemble_method", self.ensemble_method, ENSEMBLE_METHODS)):
            if value not in options:
                raise ConfigError(f"{path}.{key} '{value}' is not one of {', '.join(options)}")
        if self.ranker not in RANKERS:
            raise ConfigError(f"{path}.ranker '{self.ranker}' is not one of {', '.join(RANKERS)}")
        if self.ranker == "xr_linear" and (not self.ranker_mix or any(not 0 <= a <= 1 for a in self.ranker_mix)
                                           or self.ranker_threshold < 0):
            raise ConfigError(f"{path}: the xr_linear ranker needs ranker_mix values in [0, 1] and ranker_threshold "
                              ">= 0")
        if self.only_encoder and not self.do_fine_tune:
            raise ConfigError(f"{path}: only_encoder with do_fine_tune false leaves nothing to train")
        if self.tree_file:
            raise ConfigError(f"{path}.tree_file: an XR-Transformer run builds its own trees "
                              "(fix_clustering keeps the preliminary one)")


class XrTransformerHead(LabelTreeHead):
    """The ranker: a `LabelTreeHead` over the refined tree, on the frozen encoder's unit-length embedding
    (`tfxc.encoders.frozen`) and, with `sparse_support`, the row's TF-IDF (module docstring)."""

    runs_in_levels = True  # its run fine-tunes the encoder level by level first (`tfxc.xr.pipeline`)

    def make_encoder(self, encoder_config, context):
        from tfxc.encoders import ENCODERS
        from tfxc.encoders.frozen import FrozenUnitEncoder

        encoder = FrozenUnitEncoder(ENCODERS.build(encoder_config, context), name="frozen_encoder")
        return encoder if self.sparse_input is None else self.sparse_input.make_encoder(encoder, context)
