"""Faults a long run meets: a full disk, a preemption (SIGTERM), kills at random moments.

A full disk is simulated with RLIMIT_FSIZE: writing past the limit fails with EFBIG ("File too large"),
as it fails with ENOSPC on a full file system, and needs neither root nor a special mount.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
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


@pytest.mark.slow(reason='a file-size limit (RLIMIT_FSIZE) on a process of its own')
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


@pytest.mark.slow(reason='kills or signals a process of its own')
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


# Slow: tests/training/test_resume.py::test_killed_run_resumes_to_the_same_weights checks the same contract (a
# killed run resumes to the uninterrupted weights) at a set moment in the default suite; this one kills 3 times.
@pytest.mark.slow(reason='kills or signals a process of its own')
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


# === Damaged files of a model directory and its data directory ===
# Every file of a trained model dir and of its data dir, cut in half in a copy: evaluate, export and a resumed
# run each end in a fallback or in one `tfxc: error:` line naming the file (rc 2), never a traceback, and a
# resumed run never starts over from step 0 beside existing checkpoints.

# The commands run in one process per group of damaged files (TensorFlow's start-up is most of a command's time),
# each through its CLI main as `python -m` would: its exit status and stderr are reported as JSON.
_DRIVER = r"""
import contextlib, io, json, sys, traceback
import tfxc.evaluate, tfxc.export.__main__, tfxc.train

report = []
for name, main, argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = {"evaluate": tfxc.evaluate.main, "export": tfxc.export.__main__.main,
                  "train": tfxc.train.main}[main](argv) or 0
        except SystemExit as e:
            rc = e.code
        except BaseException:
            traceback.print_exc()
            rc = 1
    report.append({"command": name, "rc": rc, "stderr": err.getvalue()})
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """A tiny model with selected weights (best/), its data dir and its config, trained once for this module."""
    base = tmp_path_factory.mktemp("trained")
    config = tiny_config(base, data={"val_percent": 20},
                         trainer={"train_steps": 24, "eval_every_steps": 8, "select_metric": "P@1"})
    run_cli("tfxc.train", "--config", config, "--model-dir", str(base / "model"))
    return base


def _files(base) -> list[str]:
    """The files of the trained model dir and its data dir, relative to `base` (all but the lock)."""
    found = []
    for top in ("model", "data"):
        for root, _, names in os.walk(base / top):
            found += [os.path.relpath(os.path.join(root, n), base) for n in names if n != ".lock"]
    return sorted(found)


def _copy(base, into) -> str:
    """A copy of the fixture's directories whose configs name the copy's data dir; returns the config path."""
    shutil.copytree(base, into)
    for name in ("config.json", "model/config.json"):
        path = into / name
        path.write_text(path.read_text().replace(str(base), str(into)))
    return str(into / "config.json")


# The files cut short, one case each; the next test keeps this list in step with what a run writes.
_DAMAGEABLE = ["model/artifact.json", "data/label_freq.npy", "data/stats.json", "data/test-00000-of-00001.tfrecord",
               "data/train-00000-of-00002.tfrecord", "data/val-00000-of-00001.tfrecord",
               "model/best/best.json", "model/best/ckpt.data-00000-of-00001", "model/best/ckpt.index",
               "model/checkpoints/checkpoint", "model/checkpoints/ckpt-24.data-00000-of-00001",
               "model/checkpoints/ckpt-24.index", "model/config.json", "model/dataset/label_freq.npy",
               "model/dataset/stats.json", "model/eval_log.jsonl", "model/metrics.json", "model/run_info.json"]


def test_the_damage_test_covers_every_file_of_the_directories(trained_once):
    # TensorBoard's event files are written, never read back by tfxc.
    like_a_sibling = {"data/train-00001-of-00002.tfrecord"} | {
        f"model/checkpoints/ckpt-{step}.{kind}" for step in (8, 16) for kind in ("index", "data-00000-of-00001")}
    covered = set(_DAMAGEABLE) | like_a_sibling
    assert {f for f in _files(trained_once) if "tensorboard" not in f} == covered


# The files are damaged a group at a time, each file in its own copy, and a group's commands run in one driver
# process: TensorFlow's start-up, most of a command's time, is paid once a group instead of once a file.
_GROUPS = {"data": [f for f in _DAMAGEABLE if f.startswith("data/")],
           "checkpoints": [f for f in _DAMAGEABLE if f.startswith(("model/best/", "model/checkpoints/"))],
           "records": [f for f in _DAMAGEABLE if f.startswith("model/") and not f.startswith(("model/best/",
                                                                                                "model/checkpoints/"))]}


def test_the_groups_hold_every_damageable_file():
    assert sorted(f for files in _GROUPS.values() for f in files) == sorted(_DAMAGEABLE)


@pytest.mark.parametrize("group", list(_GROUPS))
def test_every_damaged_file_ends_in_a_fallback_or_one_error_naming_it(trained_once, tmp_path, group):
    commands, copies = [], {}
    for n, damaged in enumerate(_GROUPS[group]):
        copy = tmp_path / f"copy{n}"
        config = _copy(trained_once, copy)
        path = copy / damaged
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut short, as by a full disk
        model_dir = str(copy / "model")
        copies[damaged] = len(commands)
        commands += [("evaluate", "evaluate", ["--model-dir", model_dir]),
                     ("export", "export", ["--model-dir", model_dir, "--out", str(copy / "saved")]),
                     ("resume", "train", ["--config", config, "--model-dir", model_dir,
                                          "--set", "trainer.train_steps=32"])]
    result = subprocess.run([sys.executable, "-c", _DRIVER, json.dumps(commands)], cwd=REPO, env=cli_env(),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for damaged, first in copies.items():
        _check_damaged(damaged, report[first:first + 3])


def _check_damaged(damaged: str, runs: list[dict]) -> None:
    """The evaluate, export and resume of a copy with `damaged` cut short: a fallback or one error naming it."""
    for run in runs:
        rc, err = run["rc"], run["stderr"]
        what = f"{run['command']} with {damaged} cut short: rc {rc}\n{err[-3000:]}"
        assert rc in (0, 2) and "Traceback" not in err, what
        if rc == 2:
            errors = [line for line in err.splitlines() if line.startswith("tfxc: error:")]
            assert len(errors) == 1 and os.path.basename(damaged) in errors[0], what
        if run["command"] == "resume" and rc == 0:
            assert "resumed from" in err, what  # never silently from step 0 beside intact checkpoints
    outcome = {run["command"]: run for run in runs}
    # The fallbacks that lose nothing: say so, and work.
    if damaged.startswith("model/best/ckpt"):
        for command in ("evaluate", "export"):
            assert outcome[command]["rc"] == 0 and "SELECTED WEIGHTS IN" in outcome[command]["stderr"], damaged
    if damaged.startswith("model/checkpoints/"):
        assert all(run["rc"] == 0 for run in outcome.values()), damaged
    if damaged == "data/stats.json":  # the data dir's card: converted again from the sources
        assert outcome["resume"]["rc"] == 0 and "converting again" in outcome["resume"]["stderr"]


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
    # Swallowed on the way: the status still says the run was ended, and its output is not committed.
    result = subprocess.run([sys.executable, "-c", SIGNALLED_CLI, out, "SIGTERM", "swallowed"], cwd=REPO,
                            env=cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 143 and os.listdir(tmp_path) == []
    result = subprocess.run([sys.executable, "-c", SIGNALLED_CLI, out, "SIGHUP", "ignored"], cwd=REPO, env=cli_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and open(out).read() == "half and the rest"
