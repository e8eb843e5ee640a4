"""XR-Transformer's multi-resolution schedule: which tree levels are fine-tuned, and each one's settings.

Spec: xr-transformer.md §1 and algorithms.md §1.7. The preliminary tree's levels
run coarse → fine; every level with at most `max_match_clusters` nodes is
fine-tuned, the labels themselves only when L ≤ max_match_clusters. On the large
sets fine-tuning stops at 32,768 clusters and the ranker alone resolves labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfxc.errors import ConfigError


@dataclass(frozen=True)
class LevelPlan:
    """One fine-tuned resolution.

    Attributes:
      index: its position in the schedule (0: the first fine-tuned).
      tree_level: the preliminary tree's level it trains (its clusters are that level's nodes).
      clusters: K, the level's nodes.
      steps: optimizer steps (PECOS's loop runs max_steps + 1).
      learning_rate: the peak learning rate; warmup_steps: its linear warm-up, then linear decay to 0.
    """

    index: int
    tree_level: int
    clusters: int
    steps: int
    learning_rate: float
    warmup_steps: int


def fine_tuned_levels(sizes, max_match_clusters: int) -> list[int]:
    """The tree levels (indices into `sizes`, coarse → fine) with at most `max_match_clusters` nodes."""
    levels = [t for t, size in enumerate(sizes) if size <= max_match_clusters]
    if not levels:
        raise ConfigError(f"max_match_clusters ({max_match_clusters}) is below the tree's coarsest level "
                          f"({sizes[0]} nodes): no level to fine-tune")
    return levels


def per_level(values, count: int, name: str) -> list:
    """`values` spread over `count` levels: one value for all, or one per level."""
    values = list(values)
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise ConfigError(f"model.head.{name} has {len(values)} values for {count} fine-tuned levels "
                          "(give one, or one per level)")
    return values


def plan_levels(sizes, max_match_clusters: int, steps, learning_rates, warmup_steps) -> list[LevelPlan]:
    """The schedule: one `LevelPlan` per fine-tuned level of a tree with `sizes` nodes per level."""
    levels = fine_tuned_levels(sizes, max_match_clusters)
    n = len(levels)
    return [LevelPlan(i, t, sizes[t], s, lr, w) for i, (t, s, lr, w) in enumerate(zip(
        levels, per_level(steps, n, "max_steps"), per_level(learning_rates, n, "learning_rates"),
        per_level(warmup_steps, n, "warmup_steps")))]


def one_resolution(plan: list[LevelPlan]) -> LevelPlan:
    """The multi-resolution ablation's single level: the finest of `plan`, trained from scratch as the top of
    its own tree (its clusters all scored, `tree_level` 0) for the steps of every level of `plan`, at the finest
    level's learning rate after the first level's warm-up."""
    finest = plan[-1]
    return LevelPlan(0, 0, finest.clusters, sum(p.steps for p in plan) + len(plan) - 1, finest.learning_rate,
                     plan[0].warmup_steps)
