"""Faults a long run meets: a full disk, a preemption (SIGTERM), kills at random moments.

A full disk is simulated with RLIMIT_FSIZE: writing past the limit fails with EFBIG ("File too large"),
as it fails with ENOSPC on a full file system, and needs neither root nor a special mount.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import subprocess
import sys
import time

import numpy as np
from helpers import REPO, checkpoint_weights, cli_env, run_cli, tiny_config


def run_limited(args, max_file_bytes: int, timeout: float = 240) -> subprocess.CompletedProcess:
    """Runs `python -m args...` where no file may grow past `max_file_bytes`."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limit)


def leftovers(directory) -> list[str]:
    """Temporary files or directories of interrupted writes under `directory`."""
    found = []
    for root, dirs, files in os.walk(directory):
        found += [os.path.join(root, n) for n in dirs + files if "_temp" in n or ".tmp" in n]
    return found


def test_a_full_disk_ends_each_step_with_one_clear_line_and_nothing_half_written(tmp_path):
    config = tiny_config(tmp_path, trainer={"train_steps": 16, "checkpoint_every_steps": 8})
    # Conversion: the shards (about 150 kB each) do not fit.
    result = run_limited(["tfxc.convert", "--config", config], 50_000)
    assert result.returncode == 2 and "tfxc: error:" in result.stderr and "File too large" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() and not leftovers(tmp_path)

    # Training: the checkpoint (about 60 kB) does not fit; no partial ckpt-8_temp stays behind.
    run_cli("tfxc.convert", "--config", config)
    model_dir = tmp_path / "model"
    result = run_limited(["tfxc.train", "--config", config, "--model-dir", str(model_dir)], 30_000)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "cannot write the checkpoint of step 8" in result.stderr and "File too large" in result.stderr
    assert "no checkpoint had been written yet" in result.stderr
    assert not leftovers(model_dir / "checkpoints")

    # Export: the SavedModel does not fit; the output directory is not created.
    run_cli("tfxc.train", "--config", config, "--model-dir", str(model_dir))
    result = run_limited(["tfxc.export", "--model-dir", str(model_dir), "--out", str(tmp_path / "saved")], 100_000)
    assert result.returncode == 2 and "File too large" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "saved").exists() and not leftovers(tmp_path / "model")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".saved")]


def start_training(config: str, model_dir: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tfxc.train", "--config", config, "--model-dir", model_dir, *extra],
                            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_line(proc: subprocess.Popen, fragment: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stderr.readline()
        if fragment in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError(f"training ended before printing {fragment!r}")
    raise AssertionError(f"no {fragment!r} within {timeout}s")


def test_sigterm_saves_a_checkpoint_and_the_run_resumes_exactly(tmp_path):
    trainer = {"train_steps": 5000, "steps_per_loop": 4, "log_every_steps": 8, "checkpoint_every_steps": 1000}
    config = tiny_config(tmp_path, trainer=trainer)
    model_dir = str(tmp_path / "preempted")
    proc = start_training(config, model_dir)
    wait_for_line(proc, "step 16/5000")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM at step" in err and "Traceback" not in err
    step = int(err.split("stopped by SIGTERM at step ")[1].split()[0])
    assert 16 <= step < 1000  # checkpointed although the interval had not come round
    state = os.listdir(os.path.join(model_dir, "checkpoints"))
    assert f"ckpt-{step}.index" in state

    # Resuming reaches exactly the weights of an uninterrupted run of the same length.
    total = step + 12
    run_cli("tfxc.train", "--config", config, "--model-dir", model_dir, "--set", f"trainer.train_steps={total}")
    reference = str(tmp_path / "reference")
    run_cli("tfxc.train", "--config", config, "--model-dir", reference, "--set", f"trainer.train_steps={total}")
    a, b = checkpoint_weights(model_dir), checkpoint_weights(reference)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_kills_at_random_moments_resume_to_the_uninterrupted_weights(tmp_path):
    # Dropout on, so the restored RNG state matters too; checkpoints often, kills land anywhere.
    model = {"encoder": {"name": "sparse_bow", "embedding_dim": 16, "hidden_units": [16], "dropout": 0.3}}
    # 240 steps run ~1.7 s after tracing here, so most kills land mid-training.
    trainer = {"train_steps": 240, "steps_per_loop": 2, "checkpoint_every_steps": 6, "keep_checkpoints": 3}
    config = tiny_config(tmp_path, trainer=trainer, model=model)
    reference, killed = str(tmp_path / "reference"), str(tmp_path / "killed")
    run_cli("tfxc.train", "--config", config, "--model-dir", reference)
    rng = random.Random(20261122)
    kills = 0
    for _ in range(3):
        proc = start_training(config, killed)
        wait_for_line(proc, "training 240 steps")
        time.sleep(rng.uniform(0.2, 2.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    assert kills >= 1
    run_cli("tfxc.train", "--config", config, "--model-dir", killed)
    a, b = checkpoint_weights(killed), checkpoint_weights(reference)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# A CLI that signals itself while its output is half written (issue 39, D11).
SIGNALLED_CLI = """
import os, signal, sys
from tfxc.cli import main_wrapper
from tfxc.utils.io import atomic_writer

path, sig, mode = sys.argv[1], getattr(signal, sys.argv[2]), sys.argv[3]
if mode == "ignored":
    signal.signal(sig, signal.SIG_IGN)  # as under nohup

@main_wrapper
def main(argv):
    with atomic_writer(path) as f:
        f.write("half")
        f.flush()
        try:
            os.kill(os.getpid(), sig)
        except BaseException:
            if mode == "mangled":  # as TF reports an exception raised in a Python callback of its C++ code
                raise AttributeError("'SymbolicTensor' object has no attribute '_type_spec'")
            if mode != "swallowed":
                raise
        f.write(" and the rest")
    return 0

sys.exit(main())
"""


def test_sigterm_and_sighup_end_a_cli_like_ctrl_c_and_an_ignored_signal_stays_ignored(tmp_path):
    out = str(tmp_path / "out.txt")
    for name, mode in [("SIGTERM", "handled"), ("SIGHUP", "handled"), ("SIGTERM", "mangled")]:
        result = subprocess.run([sys.executable, "-c", SIGNALLED_CLI, out, name, mode], cwd=REPO, env=cli_env(),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 128 + getattr(signal, name), result.stderr
        assert result.stderr == f"tfxc: terminated by {name}\n" and os.listdir(tmp_path) == []
    # Swallowed on the way: the (complete) output stands, and the status still says the run was ended.
    result = subprocess.run([sys.executable, "-c", SIGNALLED_CLI, out, "SIGTERM", "swallowed"], cwd=REPO,
                            env=cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 143 and open(out).read() == "half and the rest"
    os.unlink(out)
    result = subprocess.run([sys.executable, "-c", SIGNALLED_CLI, out, "SIGHUP", "ignored"], cwd=REPO, env=cli_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and open(out).read() == "half and the rest"
