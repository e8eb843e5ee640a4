"""The paper's XR-Transformer configs and tools/xrt_paper.sh: each set's schedule fits its tree, and the
script trains three models and ensembles them with the paper's method (algorithms.md §1.7–1.8)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO

from tfxc.config import load_config
from tfxc.tree import LabelTree, tree_depth
from tfxc.xr.schedule import plan_levels

# Labels of each set (algorithms.md §1.3's table) and the paper's ensemble method (§1.8).
PAPER = {"eurlex-4k": (3956, "softmax_average"), "wiki10-31k": (30938, "rank_average"),
         "amazoncat-13k": (13330, "softmax_average"), "wiki-500k": (501070, "sigmoid_average"),
         "amazon-670k": (670091, "softmax_average"), "amazon-3m": (2812281, "rank_average")}


@pytest.mark.parametrize("dataset", sorted(PAPER))
def test_the_config_s_schedule_has_one_entry_per_fine_tuned_level(dataset):
    labels, method = PAPER[dataset]
    head = load_config(os.path.join(REPO, "configs", "xrt", f"{dataset}.json")).model.head
    leaves = 2 ** tree_depth(labels, head.matcher_max_leaf_size)
    sizes = LabelTree.from_leaf_codes(np.arange(labels) * leaves // labels, leaves, nr_splits=head.matcher_nr_splits,
                                      min_codes=head.matcher_min_codes or None).sizes
    plan = plan_levels(sizes, head.max_match_clusters, head.max_steps, head.learning_rates, head.warmup_steps)
    assert [p.steps for p in plan] == list(head.max_steps)
    assert plan[-1].clusters == min(labels, 32768) or plan[-1].clusters == labels
    out = subprocess.run(["bash", "tools/xrt_paper.sh", dataset, "--dry-run"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == 4 and all(f"--model-dir runs/xrt/{dataset}/model-{m}" in out[m] for m in range(3))
    assert out[3].endswith(f"--method {method}")


def test_the_ablation_trains_each_variant_once(tmp_path):
    """tools/xrt_ablation.py: the full run, no fine-tuning, one resolution and each other bootstrap method."""
    out = subprocess.run([sys.executable, "tools/xrt_ablation.py", "--config", "configs/xrt_reuters.json", "--out",
                          str(tmp_path), "--dry-run", "--set", "trainer.epochs=1"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    variants = {line.split("--model-dir ")[1].split()[0]: line for line in out}
    assert sorted(os.path.basename(v) for v in variants) == [
        "bootstrap-inherit", "bootstrap-linear", "bootstrap-no-bootstrap", "full", "not-fine-tuned",
        "one-resolution", "without-tfidf"]  # weighted-linear is the config's own: the full run
    assert all("--set trainer.epochs=1" in line for line in out)
    assert "model.head.do_fine_tune=false" in variants[str(tmp_path / "not-fine-tuned")]
    assert "model.head.multi_resolution=false" in variants[str(tmp_path / "one-resolution")]
    assert "model.head.sparse_support=0" in variants[str(tmp_path / "without-tfidf")]
