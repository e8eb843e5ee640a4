"""The records a training run leaves in its model directory, and which weights a model directory's model has."""

from __future__ import annotations

import json
import os

import pytest

from tfxc.errors import DataError
from tfxc.model_dir import ModelDir
from tfxc.model_files import ModelFiles


def test_the_run_records_are_written_and_read_back(tmp_path):
    model_dir = ModelDir(str(tmp_path / "m"))
    os.makedirs(model_dir.path)
    assert isinstance(model_dir, ModelFiles) and isinstance(model_dir.part(2), ModelDir)
    with pytest.raises(DataError, match="metrics.json"):
        model_dir.metrics()
    model_dir.write_metrics({"step": 8, "P@1": 12.5})
    model_dir.write_run_info({"tfxc": "0.1.0", "total_steps": 8})
    assert model_dir.metrics() == {"step": 8, "P@1": 12.5}
    # The files as every tool and test reads them: indented JSON ending in a newline.
    assert (tmp_path / "m" / "metrics.json").read_text() == json.dumps({"step": 8, "P@1": 12.5}, indent=2) + "\n"
    assert json.loads((tmp_path / "m" / "run_info.json").read_text())["total_steps"] == 8
    assert model_dir.eval_log() == []
    for record in ({"step": 4, "split": "val"}, {"step": 8, "split": "val"}, {"step": 8, "split": "test"}):
        model_dir.append_eval_log(record)
    model_dir.append_eval_log({"step": 6, "split": "val", "again": True})  # a resumed run's: later lines go
    assert model_dir.eval_log() == [{"step": 4, "split": "val"}, {"step": 6, "split": "val", "again": True}]
    assert (tmp_path / "m" / "eval_log.jsonl").read_text().count("\n") == 2


class Model:
    def __init__(self, value: float):
        import tensorflow as tf

        self.module = tf.Module()
        self.module.w = tf.Variable([value])

    def value(self) -> float:
        return float(self.module.w.numpy()[0])


def test_the_selected_weights_are_used_and_damaged_ones_fall_back_to_the_newest_checkpoint(tmp_path):
    files = ModelFiles(str(tmp_path / "m"))
    model, restored, copied = Model(1.0), [], []
    average = type("Average", (), {"copy_to_model": lambda self: copied.append(True)})()

    def restore_newest():
        restored.append(True)
        model.module.w.assign([3.0])

    # No selected weights: the newest checkpoint, averaged (restored unless the model holds it already).
    assert files.use_selected(model.module, restore_newest, average) is None
    assert (restored, copied, model.value()) == ([True], [True], 3.0)
    assert files.use_selected(model.module, restore_newest, holds_newest=True) is None and len(restored) == 1
    # Selected weights: they are the model, without the average (best/ holds the averaged weights).
    files.save_best(Model(2.0).module, {"step": 4, "metric": "P@1", "value": 9.0})
    assert files.use_selected(model.module, restore_newest, average, holds_newest=True)["step"] == 4
    assert (model.value(), len(restored), len(copied)) == (2.0, 1, 1)
    # Damaged: the newest checkpoint, restored again even where the model held it (best/ overwrote part of it).
    for name in os.listdir(files.best_dir):
        if name.startswith("ckpt.data"):
            open(os.path.join(files.best_dir, name), "wb").close()
    assert files.use_selected(model.module, restore_newest, average, holds_newest=True) is None
    assert (model.value(), len(restored), len(copied)) == (3.0, 2, 2)
