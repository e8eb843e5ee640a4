"""Real tf.distribute: MultiWorkerMirroredStrategy as 2 worker processes on 127.0.0.1 reaches the weights of
single-process training on the same global batches (MirroredStrategy on 2 logical CPUs is checked for every
head by the head harness, tests/head_harness.py)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from helpers import assert_same_weights, checkpoint_weights, finish, run_cli, start_workers, tiny_config

pytestmark = pytest.mark.distributed

# No dropout: masks are drawn per replica, so they legitimately differ between layouts.
MODEL = {"encoder": {"name": "sparse_bow", "embedding_dim": 16, "hidden_units": [16], "dropout": 0.0}}


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("single")
    config = tiny_config(tmp, model=MODEL, eval={"batch_size": 48})  # 6 test batches, 3 per worker
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp / "model"))
    return config, checkpoint_weights(str(tmp / "model")), json.loads((tmp / "model" / "metrics.json").read_text())


def test_multi_worker_two_processes_match_single_process(single_process_run, tmp_path):
    config, reference, reference_metrics = single_process_run
    results = finish(start_workers(config, str(tmp_path / "model"), 2), timeout=240)
    for rc, err in results:
        assert rc == 0, err[-3000:]
    assert_same_weights(checkpoint_weights(str(tmp_path / "model")), reference, atol=2e-5)
    assert not os.path.exists(tmp_path / "model" / ".worker-1-tmp")  # non-chief scratch is cleaned up
    # Each worker evaluated every other batch and the sums were all-reduced: the whole test split, once.
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["num_points"] == reference_metrics["num_points"]
    for name in ("P@1", "P@3", "P@5", "nDCG@5", "PSP@5"):
        assert metrics[name] == pytest.approx(reference_metrics[name], abs=0.01), name


def wait_for_first_checkpoint(model_dir, timeout: float = 240) -> None:
    """Returns once the chief has written a checkpoint; the timeout is a hang guard (two test processes may
    share the cores)."""
    deadline = time.time() + timeout
    while not os.path.exists(os.path.join(model_dir, "checkpoints", "checkpoint")):
        assert time.time() < deadline, "training never reached its first checkpoint"
        time.sleep(0.5)


@pytest.mark.slow(reason='MultiWorkerMirrored: worker processes of their own; it kills one')
def test_dead_worker_ends_the_survivor_with_a_clear_error(tmp_path):
    config = tiny_config(tmp_path, model=MODEL, trainer={"train_steps": 100000, "steps_per_loop": 1})
    procs = start_workers(config, str(tmp_path / "model"), 2, extra=["--set", "runtime.collective_timeout_s=30"])
    try:
        # Wait until training is under way, then kill worker 1 outright.
        wait_for_first_checkpoint(tmp_path / "model")
        os.killpg(procs[1].pid, signal.SIGKILL)
        t_kill = time.time()
        (rc, err), = finish(procs[:1], timeout=90)
    finally:
        finish(procs, timeout=5) if any(p.poll() is None for p in procs) else None
    assert rc != 0
    assert "tfxc: error:" in err and "worker" in err, err[-2000:]
    assert time.time() - t_kill < 90


def test_missing_worker_fails_start_up_within_the_timeout(tmp_path):
    config = tiny_config(tmp_path, model=MODEL)
    t0 = time.time()
    (rc, err), = finish(start_workers(config, str(tmp_path / "model"), 2, start=[0],
                                      extra=["--set", "runtime.startup_timeout_s=8"]), timeout=120)
    assert rc != 0
    assert "did not complete within 8s" in err and "TF_CONFIG" in err
    assert time.time() - t0 < 120


@pytest.mark.slow(reason='MultiWorkerMirrored: worker processes of their own; it signals one')
def test_sigterm_to_one_worker_stops_both_at_the_same_checkpointed_step(tmp_path):
    config = tiny_config(tmp_path, model=MODEL, trainer={"train_steps": 100000, "steps_per_loop": 4,
                                                         "checkpoint_every_steps": 8})
    model_dir = tmp_path / "model"
    procs = start_workers(config, str(model_dir), 2)
    try:
        wait_for_first_checkpoint(model_dir)
        os.kill(procs[1].pid, signal.SIGTERM)  # the non-chief alone is preempted
        results = finish(procs, timeout=120)
    finally:
        finish(procs, timeout=5) if any(p.poll() is None for p in procs) else None
    steps = []
    for rc, err in results:
        assert rc == 128 + signal.SIGTERM, err[-2000:]
        steps.append(int(err.split("stopped by SIGTERM at step ")[1].split()[0]))
    assert steps[0] == steps[1]
    assert os.path.exists(model_dir / "checkpoints" / f"ckpt-{steps[0]}.index")  # the chief saved that step


@pytest.mark.slow(reason='MultiWorkerMirrored: worker processes of their own')
def test_two_workers_keep_the_best_weights_and_stop_early_together(tmp_path):
    config = tiny_config(tmp_path, model=MODEL, data={"val_percent": 20}, optimizer={"learning_rate": 0.05},
                         trainer={"train_steps": 0, "epochs": 40, "eval_every_epochs": 1, "select_metric": "P@1",
                                  "patience": 2})
    results = finish(start_workers(config, str(tmp_path / "model"), 2), timeout=300)
    for rc, err in results:
        assert rc == 0, err[-3000:]
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["stopped_early"] and (tmp_path / "model" / "best" / "best.json").exists()
    assert not os.path.exists(tmp_path / "model" / ".worker-1-tmp")


@pytest.mark.slow(reason='MultiWorkerMirrored: worker processes of their own')
def test_a_text_encoder_on_two_workers_matches_one_process(shared_data, tmp_path):
    # Tokenisation runs in each worker's tf.data; the vocabulary is learnt alike by both (deterministic).
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "encoders"))
    from text_harness import text_config

    config = text_config(tmp_path, shared_data, {"name": "text_cnn", "embedding_dim": 16, "num_filters": 8,
                                                 "max_length": 24, "dropout": 0.0})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(tmp_path / "one"))
    results = finish(start_workers(config, str(tmp_path / "two"), 2), timeout=300)
    for rc, err in results:
        assert rc == 0, err[-3000:]
    assert_same_weights(checkpoint_weights(str(tmp_path / "two")), checkpoint_weights(str(tmp_path / "one")),
                        atol=2e-5)


def test_a_worker_names_the_chiefs_checkpoint_not_its_scratch_copy(tmp_path):
    """A non-chief's manager saves into its scratch directory, which a restart deletes: what a stop keeps
    (and what the restart resumes from) is the chief's checkpoint of that step."""
    from types import SimpleNamespace

    from tfxc.model_dir import ModelDir
    from tfxc.training.saving import RunCheckpoints

    model_dir = ModelDir(str(tmp_path / "mw"))
    scratch = ModelDir(model_dir.worker_scratch_dir(1))
    worker = SimpleNamespace(model_dir=model_dir,
                             manager=SimpleNamespace(latest_checkpoint=os.path.join(scratch.checkpoint_dir, "ckpt-20")))
    kept = RunCheckpoints.kept(worker)
    assert kept == f"the last good checkpoint ({os.path.join(model_dir.checkpoint_dir, 'ckpt-20')}) is kept"
    assert ".worker-1-tmp" not in kept
    worker.manager.latest_checkpoint = None
    assert RunCheckpoints.kept(worker) == "no checkpoint had been written yet"
