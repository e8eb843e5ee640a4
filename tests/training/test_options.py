"""Training options that take their own code paths: gradient clipping across replicas, tiny label spaces,
and outputs that must never replace unrelated folders."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import checkpoint_weights, run_cli, tiny_config

MODEL = {"encoder": {"name": "sparse_bow", "embedding_dim": 16, "dropout": 0.0}}


@pytest.mark.distributed
def test_clip_norm_is_applied_to_the_global_gradient_under_mirrored(tmp_path):
    config = tiny_config(tmp_path, model=MODEL, optimizer={"learning_rate": 0.05, "clip_norm": 0.5},
                         trainer={"train_steps": 8})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "one"))
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "two"),
            "--set", "runtime.strategy=mirrored", "--set", "runtime.cpu_replicas=2")
    one, two = checkpoint_weights(str(tmp_path / "one")), checkpoint_weights(str(tmp_path / "two"))
    for name in one:
        np.testing.assert_allclose(two[name], one[name], atol=2e-5, err_msg=name)


def test_fewer_labels_than_the_largest_k(tmp_path):
    config = tiny_config(tmp_path, data={"synthetic": {"num_train": 256, "num_test": 64, "num_features": 40,
                                                       "num_labels": 3, "features_per_label": 5,
                                                       "features_per_point": 6, "seed": 1}},
                         trainer={"train_steps": 4})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "m"))
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert 0 < metrics["P@1"] <= 100 and metrics["P@5"] <= 60.0  # at most 3 of 5 slots can hit


def test_outputs_never_replace_an_unrelated_folder(tmp_path, shared_data):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    result = run_cli("tfxc.convert", "--format", "xc", "--train", f"{shared_data}/medical/train.txt",
                     "--test", f"{shared_data}/medical/test.txt", "--out", str(keep), check=False, timeout=120)
    assert result.returncode == 2 and "refusing to replace it" in result.stderr
    assert (keep / "notes.txt").read_text() == "precious"


@pytest.mark.parametrize("every_seconds, expected", [(0.0, [12]), (1e-6, [4, 8, 12])])
def test_checkpoints_by_wall_time_and_without_a_step_cadence(tmp_path, every_seconds, expected):
    """checkpoint_every_steps 0 saves only at the end; checkpoint_every_seconds saves when that much time
    has passed since the last save (here: after every loop of 4 steps)."""
    config = tiny_config(tmp_path, model=MODEL, trainer={"train_steps": 12, "steps_per_loop": 4,
                                                         "checkpoint_every_steps": 0, "keep_checkpoints": 10,
                                                         "checkpoint_every_seconds": every_seconds})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "m"), "--skip-eval")
    saved = sorted(int(name.split("-")[1].split(".")[0]) for name in os.listdir(tmp_path / "m" / "checkpoints")
                   if name.startswith("ckpt-") and name.endswith(".index"))
    assert saved == expected
