"""Validation-driven training: a val split carved from train, the best evaluation's weights kept and used,
early stopping, and a resumed run that stays stopped."""

from __future__ import annotations

import json
import os

import pytest
from helpers import run_cli, tiny_config


def read_log(model_dir) -> list[dict]:
    return [json.loads(line) for line in (model_dir / "eval_log.jsonl").read_text().splitlines() if line.strip()]


def test_the_best_val_evaluation_is_kept_and_training_stops_when_it_stalls(tmp_path):
    config = tiny_config(tmp_path, data={"val_percent": 20}, optimizer={"learning_rate": 0.05},
                         trainer={"train_steps": 0, "epochs": 40, "eval_every_epochs": 1, "select_metric": "P@1",
                                  "patience": 2})
    model_dir = tmp_path / "m"
    err = run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir)).stderr
    metrics = json.loads((model_dir / "metrics.json").read_text())
    val = [r for r in read_log(model_dir) if r["split"] == "val"]
    scores = [r["P@1"] for r in val]
    best = scores.index(max(scores))  # the first of equal scores
    assert metrics["selected_step"] == val[best]["step"] and metrics["select_metric"] == "P@1"
    # The last line names the step whose weights were scored, not only the step training ended at.
    assert (f"eval of the weights from step {metrics['selected_step']} (the best val P@1), at step {metrics['step']}: "
            in err), err[-2000:]
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


# === The unit: ModelSelection over hand-made evaluations (no training) ===

class Weights:
    """A stand-in model: one variable, and an `averaged` context that counts its uses."""

    def __init__(self):
        import tensorflow as tf

        self.module = tf.Module()
        self.module.w = tf.Variable([0.0, 0.0])
        self.averaged_uses = 0

    def set(self, *values):
        self.module.w.assign(list(values))

    def values(self) -> list:
        return [float(v) for v in self.module.w.numpy()]

    def averaged(self):
        import contextlib

        self.averaged_uses += 1
        return contextlib.nullcontext()


def selection(model_dir, weights, select_metric="P@1", patience=2, chief=True, own_dir=None, has_val=True):
    from types import SimpleNamespace

    from tfxc.training.selection import ModelSelection

    trainer = SimpleNamespace(select_metric=select_metric, patience=patience)
    return ModelSelection(model_dir, own_dir or model_dir, trainer, has_val, model=weights.module,
                          averaged=weights.averaged, strategy=None, chief=chief)


def val(step, p1, split="val"):
    return {"step": step, "epoch": step / 10, "split": split, "train_loss": 1.0, "P@1": p1}


def test_the_first_of_equal_evaluations_is_kept_and_patience_counts_the_evaluations_after_it(tmp_path):
    from tfxc.model_dir import ModelDir

    model_dir, weights = ModelDir(str(tmp_path / "m")), Weights()
    chosen = selection(model_dir, weights)
    assert chosen.best() == (None, 0) and chosen.progress() == "" and not chosen.check_patience()
    for step, p1, since in ((10, 30.0, 0), (20, 40.0, 0), (30, 40.0, 1), (40, 35.0, 2)):
        weights.set(step, p1)
        chosen.add(val(step, p1))
        best, after = chosen.best()
        assert (best["step"], after) == (20 if step > 10 else 10, since)
        assert chosen.check_patience() == (since >= 2) == chosen.stopped_early
    # Kept twice (steps 10 and 20), each time with the weights as evaluated (the averaged ones).
    assert weights.averaged_uses == 2 and model_dir.best() == {"step": 20, "metric": "P@1", "value": 40.0}
    assert chosen.progress() == " | best val P@1 40.00 (epoch 2)"
    assert [r["step"] for r in model_dir.eval_log()] == [10, 20, 30, 40]
    # Test-split records (periodic evaluation without a val split) are never chosen.
    chosen.add(val(50, 99.0, split="test"))
    assert chosen.best()[0]["step"] == 20 and chosen.evaluated_at(50)


def test_a_resumed_selection_continues_the_history_up_to_its_checkpoint(tmp_path):
    from tfxc.model_dir import ModelDir

    model_dir, weights = ModelDir(str(tmp_path / "m")), Weights()
    first = selection(model_dir, weights)
    for step, p1 in ((10, 50.0), (20, 40.0), (30, 45.0)):
        first.add(val(step, p1))
    model_dir.append_eval_log(val(30, 20.0, split="test"))  # the final test line of the killed run
    assert first.check_patience()  # two evaluations after the best: it had stopped
    # Run again at the end of a run that had stopped early: it stays stopped.
    again = selection(model_dir, weights)
    again.resume(30)
    assert again.check_patience()
    # Resumed from the checkpoint of step 20: the evaluation of step 30 is not part of its history.
    resumed = selection(model_dir, weights)
    resumed.resume(20)
    assert [r["step"] for r in resumed.history] == [10, 20] and not resumed.check_patience()
    resumed.add(val(30, 60.0))  # replaces the killed run's val line of step 30, keeps its test line
    assert [(r["step"], r["split"], r["P@1"]) for r in model_dir.eval_log()] == [
        (10, "val", 50.0), (20, "val", 40.0), (30, "test", 20.0), (30, "val", 60.0)]
    assert model_dir.best()["step"] == 30 and not resumed.check_patience()


def test_only_the_chief_writes_the_eval_log_and_every_worker_keeps_its_own_best(tmp_path):
    from tfxc.model_dir import ModelDir

    model_dir, weights = ModelDir(str(tmp_path / "m")), Weights()
    scratch = ModelDir(model_dir.worker_scratch_dir(1))
    worker = selection(model_dir, weights, chief=False, own_dir=scratch)
    worker.add(val(10, 5.0))
    assert model_dir.eval_log() == [] and model_dir.best() is None
    assert scratch.best() == {"step": 10, "metric": "P@1", "value": 5.0}


def test_the_run_ends_with_the_selected_weights(tmp_path):
    from tfxc.model_dir import ModelDir

    model_dir, weights = ModelDir(str(tmp_path / "m")), Weights()
    chosen = selection(model_dir, weights)
    weights.set(1.0, 1.0)
    chosen.add(val(10, 70.0))
    weights.set(2.0, 2.0)
    chosen.add(val(20, 60.0))
    chosen.check_patience()
    reloaded = []
    assert chosen.use_selected(lambda: reloaded.append(True))["step"] == 10
    assert weights.values() == [1.0, 1.0] and not reloaded  # the newest checkpoint is not needed
    assert chosen.summary() == {"selected_step": 10, "select_metric": "P@1", "selected_val_value": 70.0,
                                "stopped_early": False}


def test_without_a_metric_nothing_is_selected_and_the_average_is_used(tmp_path):
    from types import SimpleNamespace

    from tfxc.errors import ConfigError
    from tfxc.model_dir import ModelDir

    model_dir, weights = ModelDir(str(tmp_path / "m")), Weights()
    chosen = selection(model_dir, weights, select_metric="", patience=0)
    chosen.add(val(10, 70.0))
    assert chosen.best() == (None, 0) and not chosen.check_patience() and not os.path.isdir(model_dir.best_dir)
    copied = []
    average = SimpleNamespace(copy_to_model=lambda: copied.append(True))
    assert chosen.use_selected(lambda: None, average) is None and copied == [True] and chosen.summary() == {}
    with pytest.raises(ConfigError, match="give data.val"):
        selection(model_dir, weights, has_val=False)


def test_the_final_evaluation_names_the_step_whose_weights_it_scores():
    """Item 21: `eval at step 986: ...` was printed for the weights chosen at step 476."""
    from tfxc.training.controller import final_eval_title

    assert final_eval_title(986, None) == "eval at step 986"
    assert final_eval_title(986, {"step": 476, "metric": "P@1", "value": 40.0}) == \
        "eval of the weights from step 476 (the best val P@1), at step 986"
    assert final_eval_title(986, {"step": 986, "metric": "P@1", "value": 40.0}) == \
        "eval at step 986 (the best val P@1)"


def test_a_run_evaluated_at_its_start_keeps_the_start_when_training_does_not_improve_on_it(tmp_path):
    # A model that starts solved (XR-Transformer's XR-Linear ranker) must not end worse than its start: with
    # eval_at_start the starting weights are an evaluation like the others. A step too small to change the
    # ranking leaves every evaluation equal to the start's, and the first of equals is kept.
    config = tiny_config(tmp_path, data={"val_percent": 20}, optimizer={"name": "sgd", "learning_rate": 1e-12},
                         trainer={"train_steps": 0, "epochs": 6, "eval_every_epochs": 1, "select_metric": "P@1",
                                  "patience": 2, "eval_at_start": True})
    model_dir = tmp_path / "m"
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    val = [r for r in read_log(model_dir) if r["split"] == "val"]
    assert val[0]["step"] == 0 and len({r["P@1"] for r in val}) == 1
    metrics = json.loads((model_dir / "metrics.json").read_text())
    assert metrics["selected_step"] == 0 and metrics["stopped_early"] and len(val) == 3
