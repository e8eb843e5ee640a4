"""The multi-resolution schedule: the levels fine-tuned for given tree sizes and max_match_clusters."""

from __future__ import annotations

import pytest

from tfxc.errors import ConfigError
from tfxc.tree import LabelTree, tree_depth
from tfxc.xr.schedule import fine_tuned_levels, one_resolution, plan_levels


def chain_sizes(num_labels, max_leaf_size, nr_splits, min_codes):
    """The preliminary tree's level sizes by PECOS's rule (algorithms.md §1.3), through LabelTree itself."""
    import numpy as np

    leaves = 2 ** tree_depth(num_labels, max_leaf_size)
    codes = np.arange(num_labels) * leaves // num_labels
    return LabelTree.from_leaf_codes(codes, leaves, nr_splits=nr_splits, min_codes=min_codes).sizes


@pytest.mark.parametrize("labels, nr_splits, min_codes, leaf, sizes, tuned", [
    # xr-transformer.md §1's table (the paper's params.json files).
    (3956, 16, 16, 16, [16, 256, 3956], [16, 256, 3956]),                  # Eurlex-4K: the labels are a level
    (30938, 16, 128, 16, [128, 2048, 30938], [128, 2048, 30938]),          # Wiki10-31K
    (13330, 8, 128, 16, [128, 1024, 13330], [128, 1024, 13330]),           # AmazonCat-13K
    (501070, 8, 64, 16, [64, 512, 4096, 32768, 501070], [64, 512, 4096, 32768]),  # Wiki-500K: clusters only
    (670091, 16, 128, 32, [128, 2048, 32768, 670091], [128, 2048, 32768]),  # Amazon-670K
])
def test_the_paper_s_levels(labels, nr_splits, min_codes, leaf, sizes, tuned):
    got = chain_sizes(labels, leaf, nr_splits, min_codes)
    assert got == sizes
    assert [got[t] for t in fine_tuned_levels(got, 32768)] == tuned


def test_per_level_settings_and_their_errors():
    plan = plan_levels([16, 256, 3956], 32768, [600, 800, 1200], [5e-5], [100])
    assert [(p.tree_level, p.clusters, p.steps, p.learning_rate, p.warmup_steps) for p in plan] == [
        (0, 16, 600, 5e-5, 100), (1, 256, 800, 5e-5, 100), (2, 3956, 1200, 5e-5, 100)]
    assert [p.tree_level for p in plan_levels([16, 256, 3956], 300, [10], [1e-4], [0])] == [0, 1]
    with pytest.raises(ConfigError, match="max_steps has 2 values for 3"):
        plan_levels([16, 256, 3956], 32768, [1, 2], [1e-4], [0])
    with pytest.raises(ConfigError, match="no level to fine-tune"):
        plan_levels([16, 256, 3956], 8, [1], [1e-4], [0])


def test_one_resolution_trains_the_finest_level_for_every_level_s_updates():
    plan = plan_levels([16, 256, 3956], 32768, [600, 800, 1200], [1e-4, 5e-5, 2e-5], [100, 50, 0])
    single = one_resolution(plan)
    assert (single.index, single.tree_level, single.clusters, single.learning_rate, single.warmup_steps) == (
        0, 0, 3956, 2e-5, 100)
    assert single.steps + 1 == sum(p.steps + 1 for p in plan)  # the loop runs steps + 1 updates


def test_a_tree_below_a_level_starts_there():
    import numpy as np

    tree = LabelTree.from_leaf_codes(np.arange(24) // 3, num_leaves=8, nr_splits=2, min_codes=4)  # [4, 8, 24]
    below = tree.below(1)
    assert below.sizes == [8, 24]
    np.testing.assert_array_equal(below.ancestors(0), tree.ancestors(1))
    np.testing.assert_array_equal(below.children(1), tree.children(2))
