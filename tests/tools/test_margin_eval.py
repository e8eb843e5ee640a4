"""tools/margin_eval.py: the held-out-intent split, then open-set and verification figures of a trained ArcFace model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, cli_env, run_cli


def tool(*args) -> dict:
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "margin_eval.py"), *args], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow(reason='time: trains on clinc150 (minutes)')
@pytest.mark.timeout(900)
def test_split_train_then_openset_and_verify(tmp_path, shared_data):
    clinc = os.path.join(shared_data, "clinc150")
    src = tmp_path / "clinc120"
    counts = tool("split", "--data", clinc, "--out", str(src))
    # 150 intents with 100 train / 20 valid / 30 test texts each: 30 held out.
    assert counts == {"kept_intents": 120, "held_out_intents": 30, "train": 12000, "valid": 2400, "test": 3600,
                      "heldout": 900}
    held = {json.loads(line)["labels"][0] for line in open(src / "heldout.jsonl")}
    kept = set((src / "labels.txt").read_text().split())
    assert len(held) == 30 and not held & kept

    config = {"data": {"format": "jsonl", "train": str(src / "train.jsonl"), "test": str(src / "test.jsonl"),
                       "label_names": str(src / "labels.txt"), "dir": str(tmp_path / "data")},
              "model": {"encoder": {"name": "fasttext", "embedding_dim": 32, "word_buckets": 8192,
                                    "ngram_buckets": 16384},
                        "head": {"name": "softmax", "margin": "arcface", "margin_scale": 16.0, "margin_m": 0.2}},
              "optimizer": {"name": "adam", "learning_rate": 0.01},
              "trainer": {"global_batch_size": 64, "train_steps": 300, "steps_per_loop": 50, "log_every_steps": 100,
                          "checkpoint_every_steps": 300}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    model_dir = tmp_path / "model"
    run_cli("tfxc.train", "--config", str(tmp_path / "config.json"), "--model-dir", str(model_dir), timeout=600)

    verified = tool("verify", "--model-dir", str(model_dir), "--pairs", str(src / "heldout.jsonl"))
    assert verified["intents"] == 30 and verified["genuine_pairs"] == 30 * 30 * 29 // 2
    assert verified["genuine_pairs"] + verified["impostor_pairs"] == 900 * 899 // 2
    # Unseen intents still cluster: far better than chance (50) on pair ranking.
    assert verified["pair_auroc"] > 70 and 0 <= verified["tar@far=1e-3"] <= verified["tar@far=1e-2"] <= 100

    # Open set against the out-of-scope texts, on the kept intents' test split.
    data = tmp_path / "openset"
    data.mkdir()
    (data / "test.jsonl").write_text((src / "test.jsonl").read_text())
    os.symlink(os.path.join(clinc, "oos"), data / "oos")
    opened = tool("openset", "--model-dir", str(model_dir), "--data", str(data))
    assert opened["in_scope"] == 3600 and opened["out_of_scope"] == 1000
    assert opened["accuracy"] > 50
    for key in ("auroc_msp", "auroc_maxcos"):
        assert 50 < opened[key] <= 100, opened
    assert 0 <= opened["fpr95_maxcos"] <= 100

    with pytest.raises(AssertionError, match="intents the model was trained on"):
        tool("verify", "--model-dir", str(model_dir), "--pairs", str(src / "test.jsonl"))
