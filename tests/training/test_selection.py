"""Validation-driven training: a val split carved from train, the best evaluation's weights kept and used,
early stopping, and a resumed run that stays stopped."""

from __future__ import annotations

import json

import pytest
from helpers import run_cli, tiny_config


def read_log(model_dir) -> list[dict]:
    return [json.loads(line) for line in (model_dir / "eval_log.jsonl").read_text().splitlines() if line.strip()]


def test_the_best_val_evaluation_is_kept_and_training_stops_when_it_stalls(tmp_path):
    config = tiny_config(tmp_path, data={"val_percent": 20}, optimizer={"learning_rate": 0.05},
                         trainer={"train_steps": 0, "epochs": 40, "eval_every_epochs": 1, "select_metric": "P@1",
                                  "patience": 2})
    model_dir = tmp_path / "m"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    metrics = json.loads((model_dir / "metrics.json").read_text())
    val = [r for r in read_log(model_dir) if r["split"] == "val"]
    scores = [r["P@1"] for r in val]
    best = scores.index(max(scores))  # the first of equal scores
    assert metrics["selected_step"] == val[best]["step"] and metrics["select_metric"] == "P@1"
    assert json.loads((model_dir / "best" / "best.json").read_text())["value"] == pytest.approx(max(scores))
    # Stopped after 2 evaluations without a better P@1, long before 40 epochs.
    run_info = json.loads((model_dir / "run_info.json").read_text())
    assert metrics["stopped_early"] and len(val) - 1 - best == 2
    assert metrics["step"] == val[-1]["step"] < run_info["total_steps"]
    # The model of the directory is the selected one: evaluate reproduces the final test metrics.
    out = run_cli("tfxc.evaluate", "--model-dir", str(model_dir), "--json").stdout
    assert json.loads(out.strip().splitlines()[-1])["P@1"] == pytest.approx(metrics["P@1"], abs=1e-3)
    # Running the same command again trains nothing more: the run had stopped.
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    again = json.loads((model_dir / "metrics.json").read_text())
    assert again["steps_trained"] == 0 and again["step"] == metrics["step"]
    assert again["P@1"] == pytest.approx(metrics["P@1"], abs=1e-3)


def test_selection_refuses_to_choose_on_the_test_split(tmp_path):
    config = tiny_config(tmp_path, trainer={"eval_every_steps": 8, "select_metric": "P@1"})
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "m"), check=False)
    assert result.returncode == 2 and "give data.val, or data.val_percent" in result.stderr
