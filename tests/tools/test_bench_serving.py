"""tools/bench_serving.py: a trained model's SavedModel timed next to the empty baseline signature."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from helpers import REPO, cli_env, run_cli, tiny_config


def test_times_the_model_and_the_baseline_for_every_batch_size_and_repetition(tmp_path):
    config = tiny_config(tmp_path)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "model"))
    run_cli("tfxc.export", "--model-dir", str(tmp_path / "model"), "--out", str(tmp_path / "saved"))
    out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench_serving.py"), "--saved-model",
                          str(tmp_path / "saved"), "--data-dir", str(tmp_path / "data"), "--batch-sizes", "1,4",
                          "--calls", "12", "--repeat", "2", "--baseline"],
                         cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=240, check=True).stdout
    lines = re.findall(r"^batch +(\d+) (model|baseline) *: median +([\d.]+) ms", out, flags=re.M)
    assert [(b, name) for b, name, _ in lines] == [("1", "model"), ("1", "baseline")] * 2 + [
        ("4", "model"), ("4", "baseline")] * 2
    assert all(float(ms) > 0 for _, _, ms in lines)
