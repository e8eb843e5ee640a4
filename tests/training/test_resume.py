"""Kill training mid-run; resuming reaches exactly the weights of an uninterrupted run.

Also: a non-finite loss stops training with a clear message and keeps the last good checkpoint.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
from helpers import REPO, checkpoint_weights, cli_env, run_cli, tiny_config

# Dropout on, so the test also covers the restored dropout RNG state.
TRAINER = {"train_steps": 48, "steps_per_loop": 2, "checkpoint_every_steps": 6, "keep_checkpoints": 20}
MODEL = {"encoder": {"name": "sparse_bow", "embedding_dim": 16, "hidden_units": [16], "dropout": 0.3}}


def latest_step(model_dir) -> int:
    path = os.path.join(model_dir, "checkpoints", "checkpoint")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        match = re.search(r'model_checkpoint_path: "ckpt-(\d+)"', f.read())
    return int(match.group(1)) if match else 0


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    config = tiny_config(tmp_path, trainer=TRAINER, model=MODEL)
    reference_dir, resumed_dir = str(tmp_path / "reference"), str(tmp_path / "resumed")
    run_cli("tfxc.train", "--config", config, "--model-dir", reference_dir)

    proc = subprocess.Popen([sys.executable, "-m", "tfxc.train", "--config", config, "--model-dir", resumed_dir],
                            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 180
        while latest_step(resumed_dir) < 12:
            assert proc.poll() is None, "training ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = latest_step(resumed_dir)
    assert 12 <= killed_at < TRAINER["train_steps"], killed_at

    result = run_cli("tfxc.train", "--config", config, "--model-dir", resumed_dir)
    # "resumed from .../ckpt-N (step N)": the newest intact checkpoint on disk, which a kill between writing a
    # checkpoint and updating the state file leaves newer than the state file says.
    resumed_at = re.search(r"resumed from \S+ \(step (\d+)\)", result.stderr)
    assert resumed_at and killed_at <= int(resumed_at.group(1)) < TRAINER["train_steps"], result.stderr[-2000:]
    reference, resumed = checkpoint_weights(reference_dir), checkpoint_weights(resumed_dir)
    assert reference.keys() == resumed.keys()
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(tmp_path, trainer={"train_steps": 8, "checkpoint_every_steps": 8})
    model_dir = str(tmp_path / "model")
    run_cli("tfxc.train", "--config", config, "--model-dir", model_dir)
    good = checkpoint_weights(model_dir)
    stored = open(os.path.join(model_dir, "config.json")).read()
    result = run_cli("tfxc.train", "--config", config, "--model-dir", model_dir, "--set", "trainer.train_steps=40",
                     "--set", "optimizer.learning_rate=1e30", "--allow-changed-config", check=False)
    assert result.returncode == 2
    assert "training loss became" in result.stderr and "last good checkpoint (" in result.stderr
    assert "ckpt-8)" in result.stderr
    assert latest_step(model_dir) == 8
    after = checkpoint_weights(model_dir)
    for name in good:
        np.testing.assert_array_equal(after[name], good[name])
    # The run saved nothing, so config.json is still the config of ckpt-8, and the command that trained it
    # resumes without --allow-changed-config.
    assert open(os.path.join(model_dir, "config.json")).read() == stored
    result = run_cli("tfxc.train", "--config", config, "--model-dir", model_dir, "--set", "trainer.train_steps=12")
    assert "resumed from" in result.stderr and "(step 8)" in result.stderr


def test_a_loss_that_diverges_before_the_first_checkpoint_says_there_is_none(tmp_path):
    config = tiny_config(tmp_path, trainer={"train_steps": 16}, optimizer={"learning_rate": 1e30})
    result = run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "model"), check=False)
    assert result.returncode == 2 and "no checkpoint had been written yet" in result.stderr
    assert not os.path.exists(tmp_path / "model" / "checkpoints" / "checkpoint")
    assert not os.path.exists(tmp_path / "model" / "config.json")  # written only with a first checkpoint
