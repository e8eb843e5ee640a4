"""The recipe's `xrt` point: the preliminary tree it plans is the one the run clusters, the schedule scales with
the rows, and data without text is refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse

from tfxc.api import load_xc
from tfxc.errors import ConfigError
from tfxc.recipe import Context, DataProfile, xrt
from tfxc.tree import cluster_labels
from tfxc.tree.pifa import normalize_rows, pifa


@pytest.mark.parametrize("dataset", ["medical", "bibtex", "delicious"])
def test_the_planned_tree_is_the_one_the_run_clusters(shared_data, dataset):
    x, y = load_xc(os.path.join(shared_data, dataset, "train.txt"))
    z = pifa(normalize_rows(scipy.sparse.csr_matrix(x, dtype=np.float32)), y.astype(np.float32))
    tree = cluster_labels(z, max_leaf_size=xrt.LEAF_SIZE, nr_splits=xrt.NR_SPLITS,
                          min_codes=xrt.TOP_CLUSTERS, skip_unseen=True)
    assert list(tree.sizes) == xrt.planned_sizes(int(np.count_nonzero(y.sum(axis=0))))


def test_the_tuned_configs_trees_and_schedules_come_out_of_the_rules():
    # configs/xrt_reuters.json: 8 -> 90, 400 + 800 steps; configs/xrt_wordnet_hypernyms.json: 128 -> 1,024 -> labels,
    # 800 + 1,200 + 2,000 steps.
    assert xrt.planned_sizes(90) == [8, 90]
    assert xrt.planned_sizes(10_418) == [128, 1024, 10_418]
    steps, passes = xrt.level_steps(7_002, 2)
    assert steps == [480, 770] and passes == pytest.approx(5.71, abs=0.01)
    steps, passes = xrt.level_steps(59_000, 3)
    assert steps == [710, 1140, 1830] and passes == 2
    assert xrt.level_steps(2_000_000, 3)[1] == 2 and xrt.level_steps(500, 2)[1] == 6


def test_data_without_text_is_refused():
    profile = DataProfile(num_points=100, num_features=10, num_labels=5, labels_per_point=1.0,
                          features_per_point=3.0, tail_share=0.0)
    with pytest.raises(ConfigError, match="needs text data"):
        xrt.xrt_model(profile, {"trainer": {}}, Context(data={"format": "xc", "train": "t.txt"},
                                                                 labels_present=5, val_points=10))


def test_the_time_line_counts_the_encoders_forward_pass_as_measured_here():
    short, long = xrt.encoder_row_seconds(8, bfloat16=False), xrt.encoder_row_seconds(64, bfloat16=False)
    assert 0 < short < long < 1  # seconds a row: a pass over 8 word pieces is cheaper than over 64
    steps = [100, 200]
    rows = xrt.BATCH * 300 * xrt.STEP_PASSES + 1_000 * 2 + 50 * (xrt.RANKER_MIXES + 1 + xrt.RANKER_EPOCHS)
    assert xrt.estimated_seconds(steps, 0.01, num_points=1_000, val_points=50) == pytest.approx(rows * 0.01)
