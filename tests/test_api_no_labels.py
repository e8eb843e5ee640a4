"""A data set without labels is refused before training, by every path (the API, a config, the recipe): it
used to abort the process in oneDNN (SIGABRT), end in a NaN loss, or train to P@1 0 without a word."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import cli_env, run_cli

NO_LABELS = "the train split has no labels"


def xc_file(path, declared: int) -> str:
    lines = [f"40 12 {declared}"] + [f" {i % 12}:1 {(i + 3) % 12}:0.5" for i in range(40)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_fit_on_rows_without_labels_is_refused_not_aborted(tmp_path):
    script = ("import numpy as np, tfxc\n"
              "from tfxc.errors import DataError\n"
              "try:\n"
              f"    tfxc.fit(np.random.rand(40, 12).astype('float32'), [[]] * 40, model_dir={str(tmp_path / 'm')!r})\n"
              "except DataError as e:\n"
              "    print('REFUSED', e)\n")
    # A subprocess: the defect this guards against kills the process (SIGABRT), which would take pytest along.
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=cli_env(None),
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "REFUSED" in proc.stdout and NO_LABELS in proc.stdout


@pytest.mark.slow(reason='time: the API test above covers the same check')
@pytest.mark.parametrize("declared", [0, 5])
def test_the_recipe_refuses_an_xc_file_without_labels_naming_it(tmp_path, declared):
    data = xc_file(tmp_path / "nolab.txt", declared)
    proc = run_cli("tfxc.train", "--train", data, "--test", data, "--model-dir", str(tmp_path / "m"), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert NO_LABELS in proc.stderr and "nolab.txt" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow(reason='time: the API test above covers the same check')
def test_a_config_on_an_xc_file_without_labels_is_refused(tmp_path):
    data = xc_file(tmp_path / "nolab.txt", 0)
    config = {"data": {"format": "xc", "train": data, "test": data, "dir": str(tmp_path / "data")},
              "model": {"encoder": {"name": "sparse_bow", "embedding_dim": 8}, "head": {"name": "one_vs_all"}},
              "trainer": {"global_batch_size": 8, "train_steps": 4, "steps_per_loop": 4}}
    (tmp_path / "c.json").write_text(json.dumps(config))
    proc = run_cli("tfxc.train", "--config", str(tmp_path / "c.json"), "--model-dir", str(tmp_path / "m"), check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert NO_LABELS in proc.stderr and "nolab.txt" in proc.stderr
