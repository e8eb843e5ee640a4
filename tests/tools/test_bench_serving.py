"""tools/bench_serving.py: a trained model's SavedModel timed next to the empty baseline signature."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from helpers import REPO, cli_env, run_cli, tiny_config


@pytest.mark.slow(reason='runs the CLIs from another working directory: processes of their own')
def test_times_the_model_and_the_baseline_for_every_batch_size_and_repetition(tmp_path):
    config = tiny_config(tmp_path)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "model"))
    run_cli("tfxc.export", "--model-dir", str(tmp_path / "model"), "--out", str(tmp_path / "saved"))
    run_cli("tfxc.export", "--model-dir", str(tmp_path / "model"), "--out", str(tmp_path / "twin"), "--format", "onnx")
    out = subprocess.run([sys.executable, os.path.join(REPO, "tools", "bench_serving.py"), "--saved-model",
                          str(tmp_path / "saved"), "--onnx", str(tmp_path / "twin"), "--data-dir",
                          str(tmp_path / "data"), "--batch-sizes", "1,4", "--calls", "12", "--repeat", "2", "--baseline"],
                         cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=240, check=True).stdout
    lines = re.findall(r"^batch +(\d+) (model|onnx|baseline) *: median +([\d.]+) ms", out, flags=re.M)
    assert [(b, name) for b, name, _ in lines] == [("1", "model"), ("1", "onnx"), ("1", "baseline")] * 2 + [
        ("4", "model"), ("4", "onnx"), ("4", "baseline")] * 2
    assert all(float(ms) > 0 for _, _, ms in lines)


def test_a_text_model_s_figures_are_timed_beside_an_empty_text_signature(tmp_path):
    """bench.py's serving figures for a text model: requests of strings, the empty signature takes strings too."""
    sys.path.insert(0, os.path.join(REPO, "tools"))
    from bench_serving import load_baseline, serving_figures

    from tfxc._tf import tf

    baseline = load_baseline(str(tmp_path / "empty"), text=True)
    np_lengths = baseline(text=tf.constant(["ab", "", "héllo"]))["label_ids"].numpy()
    assert np_lengths.tolist() == [2, 0, 6]  # the strings' bytes: it reads its input and nothing more
    singles = [{"text": tf.constant(["one text"])}] * 5
    batches = [{"text": tf.constant(["a", "b", "c", "d"])}] * 4
    figures = serving_figures(baseline, baseline, singles, batches, rounds=1)
    assert figures["latency_ms_median"] > 0 and figures["batch4_rows_per_s"] > 0
