"""The dual-variable state across processes: replica consistency and exact resume.

Single-process training is the reference. MirroredStrategy on 2 logical CPUs
and MultiWorkerMirroredStrategy as 2 worker processes must reach the same
weights *and* the same ν. Training runs two epochs, so the second epoch's
weight gradients depend on the ν stored in the first: a worker whose copy of ν
missed an update would contribute a different gradient to the all-reduce and
the weights would drift from the reference. A run killed right after a
checkpoint resumes to exactly the reference's weights and ν.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, checkpoint_nu, checkpoint_weights, cli_env, run_cli
from helpers import assert_same_weights, finish, start_workers
from test_dual import dense_config

pytestmark = pytest.mark.distributed

SETTINGS = ["--set", "trainer.epochs=2", "--set", "trainer.eval_every_epochs=0"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dual-single")
    config = dense_config(tmp, "scent", learning_rate=2.0, gamma=4.0)
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp / "model"), *SETTINGS)
    nu = checkpoint_nu(str(tmp / "model"))
    assert np.all(nu != 0) and np.all(np.isfinite(nu))
    return config, checkpoint_weights(str(tmp / "model")), nu


def test_mirrored_replicas_share_nu_and_match_single_process(reference, tmp_path):
    config, weights, nu = reference
    model_dir = str(tmp_path / "model")
    result = run_cli("tfxc.train", "--config", config, "--model-dir", model_dir, *SETTINGS,
                     "--set", "runtime.strategy=mirrored", "--set", "runtime.cpu_replicas=2")
    assert "2 replica(s)" in result.stderr
    assert_same_weights(checkpoint_weights(model_dir), weights, atol=1e-5)
    np.testing.assert_allclose(checkpoint_nu(model_dir), nu, atol=1e-5, rtol=0)


def test_multi_worker_nu_matches_single_process(reference, tmp_path):
    config, weights, nu = reference
    model_dir = str(tmp_path / "model")
    for rc, err in finish(start_workers(config, model_dir, 2, extra=SETTINGS), timeout=240):
        assert rc == 0, err[-3000:]
    assert_same_weights(checkpoint_weights(model_dir), weights, atol=1e-5)
    np.testing.assert_allclose(checkpoint_nu(model_dir), nu, atol=1e-5, rtol=0)


CRASH_AFTER_CHECKPOINT = """
import os, sys
from tfxc.config import load_config
from tfxc.data.convert import ensure_converted
from tfxc.training.distribute import make_strategy
from tfxc.training.trainer import Trainer

config_path, model_dir, crash_step = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = load_config(config_path, ["trainer.epochs=2", "trainer.eval_every_epochs=0"])
strategy = make_strategy(config.runtime)
trainer = Trainer(config, model_dir, ensure_converted(config.data), strategy)
save = trainer.controller.checkpoints.save


def save_then_die(step):
    save(step)
    if step >= crash_step:
        os._exit(3)  # no clean-up, like a kill


trainer.controller.checkpoints.save = save_then_die
trainer.train()
"""


def test_run_killed_after_a_checkpoint_resumes_to_the_same_weights_and_nu(reference, tmp_path):
    config, weights, nu = reference
    model_dir = str(tmp_path / "model")
    crashed = subprocess.run([sys.executable, "-c", CRASH_AFTER_CHECKPOINT, config, model_dir, "8"], cwd=REPO,
                             env=cli_env(), capture_output=True, text=True, timeout=240)
    assert crashed.returncode == 3, crashed.stderr[-3000:]
    assert 0 < np.count_nonzero(checkpoint_nu(model_dir)) <= 8 * 64  # mid-run: one epoch's rows at most
    result = run_cli("tfxc.train", "--config", config, "--model-dir", model_dir, *SETTINGS)
    assert "(step 8)" in result.stderr
    resumed = checkpoint_weights(model_dir)
    for name in weights:
        np.testing.assert_array_equal(resumed[name], weights[name], err_msg=name)
    np.testing.assert_array_equal(checkpoint_nu(model_dir), nu)
