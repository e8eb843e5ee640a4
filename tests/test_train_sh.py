"""train.sh's waiter: any path works, and a part whose shell or tmux window is gone fails the run instead of
hanging it (issue 39, D7). Every run has a hard timeout; the model is a 2-part MACH on tiny synthetic data."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from helpers import REPO, cli_env, tiny_config

MACH_MODEL = {"encoder": {"name": "sparse_bow", "embedding_dim": 16},
              "head": {"name": "mach", "num_buckets": 8, "num_repetitions": 2}}


def start_train_sh(config: str, model_dir: str, use_tmux: bool = False) -> subprocess.Popen:
    env = cli_env({"PYTHON": sys.executable, **({} if use_tmux else {"TFXC_NO_TMUX": "1"})})
    return subprocess.Popen(["bash", "train.sh", config, "2", model_dir], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """(stdout, stderr) of `proc`; kills its process group and fails the test after `timeout` seconds."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"train.sh still waiting after {timeout}s\n{out[-2000:]}\n{err[-2000:]}") from None


def part_python(model_dir: str, part: int, timeout: float = 120) -> int:
    """The pid of the `tfxc.train --part N` process training into `model_dir`, once it runs."""
    wanted = ["--model-dir", model_dir, "--part", str(part)]
    deadline = time.time() + timeout
    while time.time() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = [a.decode() for a in f.read().split(b"\0")]
            except OSError:
                continue
            is_python = os.path.basename(argv[0]).startswith("python")  # not a shell that will run it
            if is_python and "tfxc.train" in argv and any(argv[i:i + 4] == wanted for i in range(len(argv))):
                return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"part {part} did not start within {timeout}s")


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_paths_with_quotes_dollars_and_spaces_train_and_evaluate(tmp_path):
    home = tmp_path / "it's a $HOME `x`"
    home.mkdir()
    config = tiny_config(home, model=MACH_MODEL, trainer={"train_steps": 8})
    model_dir = str(home / "model 'one'")
    out, err = finish(start_train_sh(config, model_dir), timeout=400)
    assert "part 0 done" in out and "part 1 done" in out and "P@1" in out, out[-2000:] + err[-2000:]
    assert "unexpected EOF" not in err
    for r in (0, 1):
        assert open(os.path.join(model_dir, "logs", f"part-00{r}.exit")).read().strip() == "0"


@pytest.mark.slow
@pytest.mark.parametrize("use_tmux", [pytest.param(False, marks=pytest.mark.slow), True])
def test_a_part_whose_shell_dies_fails_the_run_and_a_re_run_completes(tmp_path, use_tmux):
    if use_tmux and shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    config = tiny_config(tmp_path, model=MACH_MODEL, trainer={"train_steps": 8})
    model_dir = str(tmp_path / "model")
    proc = start_train_sh(config, model_dir, use_tmux)
    try:
        python = part_python(model_dir, 0)
        if use_tmux:  # the user closes the part's window: its shell and its python get SIGHUP
            session = next(line.split()[3] for line in proc.stdout if "tmux session" in line)
            subprocess.run(["tmux", "kill-window", "-t", f"={session}:part-000"], check=True, timeout=30)
        else:         # the part's wrapper shell is killed; its python trains on and ends normally
            os.kill(parent_pid(python), signal.SIGKILL)
        out, err = finish(proc, timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, out[-2000:] + err[-2000:]
    log = os.path.join(model_dir, "logs", "part-000.log")
    assert "part 0 ended without an exit status" in err and log in err, err[-2000:]
    assert "not merging" in err and "P@1" not in out

    out, err = finish(start_train_sh(config, model_dir, use_tmux), timeout=400)  # the same command again
    assert "part 0 done" in out and "P@1" in out, out[-2000:] + err[-2000:]


# A tmux that finds its session gone between `has-session` and `new-window` (the user closed the last window
# then): has-session says yes, new-window fails as tmux does, new-session runs the command in the background.
RACING_TMUX = r"""#!/bin/sh
case "$1" in
  has-session) exit 0 ;;
  new-window) echo "no current target" >&2; exit 1 ;;
  new-session) eval "cmd=\${$#}"; sh -c "$cmd" >/dev/null 2>&1 & echo $! ;;
  *) exit 0 ;;
esac
"""


@pytest.mark.slow
def test_a_part_started_when_the_session_has_just_ended_starts_it_again(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "tmux").write_text(RACING_TMUX)
    (fake / "tmux").chmod(0o755)
    config = tiny_config(tmp_path, model=MACH_MODEL, trainer={"train_steps": 8})
    env = cli_env({"PYTHON": sys.executable, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"})
    env.pop("TFXC_NO_TMUX", None)
    proc = subprocess.Popen(["bash", "train.sh", config, "2", str(tmp_path / "model")], cwd=REPO, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    out, err = finish(proc, timeout=300)
    assert proc.returncode == 0, out[-2000:] + err[-2000:]
    assert "part 0 done" in out and "part 1 done" in out and out.count("tmux session") == 2, out
