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


@pytest.mark.slow(reason='train.sh: its parts are processes of their own')
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


@pytest.mark.slow(reason='train.sh: its parts are processes of their own; it kills one')
@pytest.mark.parametrize("use_tmux", [pytest.param(False, marks=pytest.mark.slow(reason="train.sh parts")),
                                      True])
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


@pytest.mark.slow(reason='train.sh: its parts are processes of their own')
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


# The stand-in for `python` of the tests below (issue 55): answers --num-parts with PARTS after NUM_PARTS_S seconds
# (then touches NUM_PARTS_DONE), prints one line per part and sleeps PART_S seconds in it, and records every call's
# arguments in CALLS; tfxc.evaluate prints a metric. No TensorFlow is imported, so each run costs a few seconds.
STUB_PYTHON = """
import os, sys, time

argv = sys.argv[1:]
with open(CALLS, "a") as f:
    f.write(" ".join(argv) + "\\n")
if "--num-parts" in argv:
    time.sleep(NUM_PARTS_S)
    print(PARTS)
    open(NUM_PARTS_DONE, "w").close()
elif "--part" in argv:
    print("part", argv[argv.index("--part") + 1], "training", flush=True)
    time.sleep(PART_S)
elif argv[:2] == ["-m", "tfxc.evaluate"]:
    print("P@1 50.0")
"""


def stub_env(tmp_path, parts=2, num_parts_s=0.0, part_s=0.0) -> dict:
    """The environment of a train.sh whose `python` is STUB_PYTHON (its calls land in tmp_path/calls.txt)."""
    stub = tmp_path / "stub-python"
    stub.write_text(f"#!{sys.executable}\nCALLS, NUM_PARTS_DONE = {str(tmp_path / 'calls.txt')!r}, "
                    f"{str(tmp_path / 'num-parts-done')!r}\nPARTS, NUM_PARTS_S, PART_S = {parts!r}, "
                    f"{num_parts_s!r}, {part_s!r}\n" + STUB_PYTHON)
    stub.chmod(0o755)
    return cli_env({"PYTHON": str(stub), "TFXC_NO_TMUX": "1"})


def run_stubbed(tmp_path, args, timeout=60, **stub) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "train.sh", *map(str, args)], cwd=REPO, env=stub_env(tmp_path, **stub), text=True,
                          capture_output=True, timeout=timeout, start_new_session=True)


@pytest.mark.parametrize("args", [["0"], ["-1"], ["abc"], ["1.5"], ["12345678901"],
                                  ["--parallel", "0"], ["--parallel", ""], ["--parallel=-3"],
                                  ["--gpus", "0,99999999999"]])
def test_a_parallel_that_is_not_a_positive_integer_is_refused_in_one_line_before_anything_is_written(tmp_path, args):
    """Issue 55 P6: PARALLEL 0 divided by zero then looped forever, -1 looped silently, abc ended `unbound variable`."""
    model_dir = tmp_path / "model"
    positional = args[:1] if not args[0].startswith("-") else []
    rest = args[len(positional):]
    proc = run_stubbed(tmp_path, ["c.json", *positional, model_dir, *rest], timeout=30)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    [first] = proc.stderr.splitlines()
    assert first.startswith("train.sh: error: ") and ("PARALLEL" in first or "--gpus" in first), proc.stderr
    assert "unbound" not in proc.stderr and proc.stdout == ""
    assert not model_dir.exists() and not (tmp_path / "calls.txt").exists()


@pytest.mark.parametrize("args, wrong", [(["3", "--parallel", "2"], "PARALLEL is given twice"),
                                         (["2", "MODEL_DIR", "--model-dir", "elsewhere"], "MODEL_DIR is given twice"),
                                         (["--parallel", "2", "--parallel", "2"], "--parallel is given twice")])
def test_parallel_and_model_dir_given_both_ways_in_conflict_are_refused(tmp_path, args, wrong):
    args = [str(tmp_path / "model") if a == "MODEL_DIR" else a for a in args]
    proc = run_stubbed(tmp_path, ["c.json", *args], timeout=30)
    assert proc.returncode == 2 and wrong in proc.stderr, proc.stderr
    assert not (tmp_path / "model").exists() and not (tmp_path / "calls.txt").exists()


def test_parallel_and_model_dir_as_options_train_and_the_start_is_announced_at_once(tmp_path):
    """Issue 55 item 21: --parallel and --model-dir beside the positional forms (options may come after --set);
    train.sh says what it starts, into where, and how to follow the logs, before its first child returns."""
    model_dir = tmp_path / "model dir"
    proc = subprocess.Popen(["bash", "train.sh", "c.json", "--set", "trainer.epochs=1", "--model-dir", str(model_dir),
                             "--parallel", "2"], cwd=REPO, env=stub_env(tmp_path, num_parts_s=3), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        first = proc.stdout.readline()
        assert not (tmp_path / "num-parts-done").exists(), "nothing was printed before --num-parts returned"
        assert str(model_dir) in first and "2 part(s) at a time" in first and "logs" in first, first
        out, err = finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out + err
    assert f"tail -F {model_dir}/logs/part-*.log" in out and "part 1 done" in out and "P@1" in out, out
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    parts = [c for c in calls if "--part " in c]
    assert len(parts) == 2 and all(f"--model-dir {model_dir} --part" in c and c.endswith("trainer.epochs=1")
                                   for c in parts), calls


def test_a_second_train_sh_on_the_same_model_dir_is_refused_and_touches_nothing_of_the_first(tmp_path):
    """Issue 55 P7: the second run removed the first's part-000.pid, truncated its log and wrote its .exit, which
    the first read as its own part's failure."""
    model_dir = tmp_path / "model"
    first = subprocess.Popen(["bash", "train.sh", "c.json", "2", str(model_dir)], cwd=REPO,
                             env=stub_env(tmp_path, parts=2, part_s=3), text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
    try:
        pid_file, log = model_dir / "logs" / "part-000.pid", model_dir / "logs" / "part-000.log"
        deadline = time.time() + 60
        while not (log.exists() and "training" in log.read_text()) and time.time() < deadline:
            time.sleep(0.1)
        pid = pid_file.read_text()
        (tmp_path / "second").mkdir()
        second = run_stubbed(tmp_path / "second", ["c.json", "1", model_dir], timeout=30)
        assert second.returncode == 2, second.stdout + second.stderr
        lines = second.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"train.sh: error: {model_dir} is in use by a train.sh run "
                                                        f"(pid {first.pid} on "), second.stderr
        assert second.stdout == "" and not (tmp_path / "second" / "calls.txt").exists()
        assert pid_file.read_text() == pid and log.read_text() == "part 0 training\n"
        assert not (model_dir / "logs" / "part-000.exit").exists()
        out, err = finish(first, timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0 and "part 0 done" in out and "part 1 done" in out, out + err
    assert log.read_text() == "part 0 training\n"
    assert (model_dir / "logs" / ".lock").read_text() == ""  # the holder's name goes with the lock


def test_a_part_an_earlier_train_sh_left_training_is_not_started_again(tmp_path):
    """The same class as P7: a part whose tmux window outlived its train.sh still trains; a re-run truncated its log
    and removed its pid file under it."""
    model_dir = tmp_path / "model"
    logs = model_dir / "logs"
    logs.mkdir(parents=True)
    part = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "tfxc.train", "--part", "0"])
    try:
        (logs / "part-000.pid").write_text(f"{part.pid}\n")
        (logs / "part-000.log").write_text("step 5\n")
        proc = run_stubbed(tmp_path, ["c.json", "1", model_dir], timeout=30)
    finally:
        part.kill()
        part.wait()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"part 0 of {model_dir} is still training (pid {part.pid}" in proc.stderr, proc.stderr
    assert (logs / "part-000.log").read_text() == "step 5\n" and (logs / "part-000.pid").exists()
    assert not any("--part" in c or "tfxc.convert" in c for c in (tmp_path / "calls.txt").read_text().splitlines())
