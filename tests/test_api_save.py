"""`fit` in a script reports its progress (Keras' `verbose`), reads scikit-learn's label forms (a 1-D `y` of
class ids, a dense indicator matrix), and the model it returns saves to a directory `tfxc.load` reads in
another process; `dir(tfxc)` lists the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import cli_env

import tfxc
from tfxc.errors import DataError, TfxcError

CONFIG = {"model": {"encoder": {"name": "sparse_bow", "embedding_dim": 8}, "head": {"name": "one_vs_all"}},
          "optimizer": {"name": "adam", "learning_rate": 0.05},
          "trainer": {"global_batch_size": 16, "train_steps": 8, "steps_per_loop": 4, "log_every_steps": 4,
                      "checkpoint_every_steps": 4, "eval_every_steps": 4}}

SCRIPT = """
import json, sys
import numpy as np, tfxc
X = np.random.default_rng(0).random((60, 12)).astype(np.float32)
y = np.arange(60) % 5                                   # scikit-learn's y: one class id a row
Y_val = np.eye(5, dtype=np.float32)[y[:20]]             # MultiLabelBinarizer's form
model = tfxc.fit(X, y, X_val=X[:20], Y_val=Y_val, config=json.loads(sys.argv[1]), model_dir=sys.argv[2],
                 verbose=int(sys.argv[3]))
if len(sys.argv) > 4:
    p = model.predict(X, k=3)
    np.savez(sys.argv[4] + ".npz", ids=p.ids, scores=p.scores)
    model.save(sys.argv[4])
print("NUM_LABELS", model.num_labels)
"""


def fit_in_a_script(tmp_path, verbose: int, saved: str | None = None) -> subprocess.CompletedProcess:
    args = [json.dumps(CONFIG), str(tmp_path / "model"), str(verbose)] + ([saved] if saved else [])
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, timeout=240,
                          env=cli_env(None), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fitted")
    return fit_in_a_script(tmp, 1, str(tmp / "saved")), tmp


def test_fit_from_a_script_reports_steps_eta_and_validation(fitted):
    proc, _ = fitted
    assert "tfxc.train: step 4/8" in proc.stderr and "ETA" in proc.stderr
    assert "val at step 4" in proc.stderr


def test_fit_with_verbose_0_reports_nothing(tmp_path):
    proc = fit_in_a_script(tmp_path, 0)
    assert "step" not in proc.stderr and "ETA" not in proc.stderr and "val at" not in proc.stderr
    assert "recipe" not in proc.stdout


def test_a_1d_y_is_one_class_a_row_and_a_dense_y_an_indicator_matrix(fitted):
    proc, tmp = fitted
    assert "NUM_LABELS 5" in proc.stdout  # ids 0..4, not the 2 columns of values a dense Y was read as
    model = tfxc.load(str(tmp / "saved"))
    X = np.random.default_rng(0).random((60, 12)).astype(np.float32)
    y = np.arange(60) % 5
    assert model.evaluate(X, np.eye(5)[y]) == model.evaluate(X, [[c] for c in y]) == model.evaluate(X, y)
    with pytest.raises(DataError, match=r"Y, row 0, column 0: .* 0 or 1"):
        model.evaluate(X[:2], np.full((2, 5), 0.3))


def test_a_saved_model_loads_in_another_process_and_predicts_the_same(fitted):
    _, tmp = fitted
    saved = str(tmp / "saved")
    assert not {"sources", "tfrecords", "tensorboard", ".lock"} & set(os.listdir(saved))
    expected = np.load(saved + ".npz")
    p = tfxc.load(saved).predict(np.random.default_rng(0).random((60, 12)).astype(np.float32), k=3)
    np.testing.assert_array_equal(p.ids, expected["ids"])
    np.testing.assert_allclose(p.scores, expected["scores"], rtol=1e-6)


def test_save_refuses_the_model_s_own_directory_inside_it_and_an_existing_path(fitted, tmp_path):
    _, tmp = fitted
    model = tfxc.load(str(tmp / "saved"))
    for path in (tmp / "saved", tmp / "saved" / "copy"):
        with pytest.raises(TfxcError, match="the model's own directory"):
            model.save(str(path))
    (tmp_path / "taken").mkdir()
    with pytest.raises(TfxcError, match="it exists"):
        model.save(str(tmp_path / "taken"))
    assert model.save(str(tmp_path / "again")) == str(tmp_path / "again")
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no temporary left behind


def test_dir_lists_the_api():
    assert {"fit", "load", "load_xc", "Predictor", "Predictions", "__version__"} <= set(dir(tfxc))
    assert set(tfxc.__all__) <= set(dir(tfxc))
