"""MHE-XMC's configs (configs/mhe) and tools/mhe_paper.sh: each set as MHE's run.sh trains it (algorithms.md 3.3)."""

from __future__ import annotations

import os
import subprocess

import pytest
from helpers import REPO

from tfxc.config import load_config
from tfxc.heads.label_codes import check_group

# run.sh's settings: labels, epochs, batch, SWA warm-up epochs / step, (num_group -> (G; k), candidates, hidden).
MHE = {"eurlex-4k": (3956, 20, 16, 2, 100, None), "wiki10-31k": (30938, 30, 16, 4, 200, None),
       "amazoncat-13k": (13330, 5, 16, 2, 10000, None),
       "wiki-500k": (501070, 10, 32, 4, 3000, (5630, (5630, 89), 32, 500)),
       "amazon-670k": (670091, 15, 32, 1, 1000, (8400, (8377, 80), 75, 400))}


@pytest.mark.parametrize("dataset", sorted(MHE))
def test_each_config_is_mhe_s_run_and_the_script_ensembles_two_encoders(dataset):
    labels, epochs, batch, warm, step, group = MHE[dataset]
    config = load_config(os.path.join(REPO, "configs", "mhe", f"{dataset}.json"))
    encoder, head, trainer = config.model.encoder, config.model.head, config.trainer
    assert (encoder.pooling, encoder.pooled_layers, encoder.dropout) == ("first_tokens", 5, 0.5)  # last-5 [CLS]
    assert (config.optimizer.learning_rate, config.optimizer.weight_decay, config.optimizer.schedule) == (
        1e-4, 0.01, "constant")
    assert (trainer.epochs, trainer.global_batch_size, trainer.swa_start_epoch, trainer.swa_every_steps) == (
        epochs, batch, warm, step)
    assert config.data.train.endswith(f"{dataset}/train_texts.txt")  # LightXML's layout
    if group is None:
        assert head.name == "one_vs_all"  # num_group 0: plain BCE over every label
    else:
        num_group, levels, topk, hidden = group
        assert (head.name, head.num_group, head.candidates_topk, head.hidden_dim) == ("mhc", num_group, topk, hidden)
        assert check_group(labels, head.num_group) == levels
    out = subprocess.run(["bash", "tools/mhe_paper.sh", dataset, "--dry-run"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == 3 and "model.encoder.preset=roberta_base_en" in out[1]
    assert out[2].endswith("--method sigmoid_average")
