"""train.sh --gpus: each part sees one GPU of the list (CUDA_VISIBLE_DEVICES), part slots take the GPUs round-robin,
every part grows its GPU memory on demand, and a bad list is refused before anything starts.

CI has no GPU, so the placement is checked by the environment each process sees: `PYTHON` (which train.sh
honours) points at a stand-in that records its arguments and environment instead of training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, cli_env

# The stand-in for `python`: answers --num-parts, sleeps as long as SLEEP says for its part, and appends one JSON
# line per call to LOG. Its settings are written into it: a part in a tmux window gets the tmux server's
# environment, not the test's.
FAKE_PYTHON = """
import json, os, sys, time

argv = sys.argv[1:]
start = time.time()
if "--num-parts" in argv:
    print(PARTS)
part = int(argv[argv.index("--part") + 1]) if "--part" in argv else None
if part is not None:
    time.sleep(SLEEP.get(str(part), 0.1))
if argv[:2] == ["-m", "tfxc.evaluate"]:
    print("P@1 50.0")
record = {"argv": argv, "part": part, "start": start, "end": time.time(),
          "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"), "growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH")}
fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
os.write(fd, (json.dumps(record) + "\\n").encode())
os.close(fd)
"""


def run_train_sh(tmp_path, args, parts=4, sleep=None, env=None, use_tmux=False, timeout=120):
    """(completed process, the stand-in's records) of `bash train.sh CONFIG args...` with `parts` parts."""
    log = tmp_path / "calls.jsonl"
    fake = tmp_path / "python"
    fake.write_text(f"#!{sys.executable}\nLOG, PARTS, SLEEP = {str(log)!r}, {parts!r}, {sleep or {}!r}\n" + FAKE_PYTHON)
    fake.chmod(0o755)
    base = {k: v for k, v in cli_env().items() if k not in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH")}
    base.update({"PYTHON": str(fake), **({} if use_tmux else {"TFXC_NO_TMUX": "1"}), **(env or {})})
    args = [str(a).replace("MODEL_DIR", str(tmp_path / "model")) for a in args]
    proc = subprocess.run(["bash", "train.sh", *args], cwd=REPO, env=base, text=True, capture_output=True,
                          timeout=timeout, start_new_session=True)
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, records


def parts_of(records) -> dict[int, dict]:
    return {r["part"]: r for r in records if r["part"] is not None}


@pytest.mark.parametrize("use_tmux", [False, True])
def test_each_part_sees_one_gpu_round_robin_with_memory_growth(tmp_path, use_tmux):
    if use_tmux and subprocess.run(["which", "tmux"], capture_output=True).returncode:
        pytest.skip("tmux is not installed")
    # Four parts at a time on two GPUs: two parts share each GPU.
    proc, records = run_train_sh(tmp_path, ["cfg.json", 4, "MODEL_DIR", "--gpus", "0,1", "--set", "a.b=1"],
                                 sleep={str(r): 1.5 for r in range(4)}, use_tmux=use_tmux)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parts = parts_of(records)
    assert {r: parts[r]["cuda"] for r in range(4)} == {0: "0", 1: "1", 2: "0", 3: "1"}
    assert all(p["growth"] == "true" for p in parts.values())
    assert "started part 2 (log" in proc.stdout and ", GPU 0)" in proc.stdout
    # The other steps see the whole list; --gpus reaches no tfxc command, the overrides reach every one.
    others = [r for r in records if r["part"] is None]
    assert [r["argv"][1] for r in others] == ["tfxc.train", "tfxc.convert", "tfxc.train", "tfxc.evaluate"]
    assert all(r["cuda"] == "0,1" for r in others)
    assert not any("--gpus" in r["argv"] for r in records)
    assert all("a.b=1" in r["argv"] for r in records if r["argv"][1] in ("tfxc.train", "tfxc.convert"))


def test_a_part_that_ends_hands_its_gpu_to_the_next_part(tmp_path):
    # Two at a time on GPUs 3 and 5; part 0 trains long, so parts 1, 2 and 3 follow each other on GPU 5.
    sleep = {"0": 6, "1": 0.2, "2": 0.2, "3": 0.2}
    proc, records = run_train_sh(tmp_path, ["cfg.json", 2, "MODEL_DIR", "--gpus=3,5"], sleep=sleep)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    parts = parts_of(records)
    assert [parts[r]["cuda"] for r in range(3)] == ["3", "5", "5"]
    # Never two parts at once on one GPU (PARALLEL equals the GPU count here).
    for a in parts.values():
        for b in parts.values():
            if a is not b and a["cuda"] == b["cuda"]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)


def test_without_parallel_the_gpus_set_how_many_parts_run_at_a_time(tmp_path):
    proc, _ = run_train_sh(tmp_path, ["--gpus", "0,1,2", "cfg.json"], parts=3)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 parts of cfg.json, 3 at a time" in proc.stdout


def test_fewer_slots_than_gpus_leaves_a_note(tmp_path):
    proc, records = run_train_sh(tmp_path, ["cfg.json", 1, "MODEL_DIR", "--gpus", "0,1,2"], parts=2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "GPUs 1 2 stay idle" in proc.stderr
    assert [p["cuda"] for _, p in sorted(parts_of(records).items())] == ["0", "0"]


def test_without_gpus_parts_see_the_environment_as_before(tmp_path):
    proc, records = run_train_sh(tmp_path, ["cfg.json", 2, "MODEL_DIR"], parts=2,
                                 env={"TF_FORCE_GPU_ALLOW_GROWTH": "false"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(r["cuda"] is None for r in records)  # nothing set: as the environment shows them
    assert all(p["growth"] == "false" for p in parts_of(records).values())  # the user's choice stands
    assert "GPU" not in proc.stdout


def test_a_head_that_trains_as_a_whole_sees_every_listed_gpu(tmp_path):
    proc, records = run_train_sh(tmp_path, ["cfg.json", "--gpus", "2,3"], parts=1)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(r["argv"][-1], r["cuda"]) for r in records] == [("--num-parts", "2,3"), ("runs/cfg", "2,3")]


@pytest.mark.parametrize("args,message", [
    (["--gpus", "a,b"], "--gpus takes a comma-separated list of GPU indices such as 0,1 (got 'a,b')"),
    (["--gpus", ""], "(got '')"),
    (["--gpus=0,,1"], "(got '0,,1')"),
    (["--gpus", "1,"], "(got '1,')"),
    (["--gpus", "-1"], "(got '-1')"),
    (["--gpus", "0,1,00"], "--gpus lists GPU 00 twice"),
    (["--gpus"], "--gpus needs a value"),
])
def test_a_bad_gpu_list_is_refused_before_anything_starts(tmp_path, args, message):
    proc, records = run_train_sh(tmp_path, ["cfg.json", 2, "MODEL_DIR", *args])
    assert proc.returncode == 2 and message in proc.stderr and "usage: bash train.sh" in proc.stderr, proc.stderr
    assert records == [] and not os.path.exists(tmp_path / "model")


def test_help_prints_the_usage_text():
    proc = subprocess.run(["bash", "train.sh", "--help"], cwd=REPO, text=True, capture_output=True, timeout=30)
    assert proc.returncode == 0 and "--gpus 0,1 pins each part to one GPU" in proc.stdout
    assert "set -euo" not in proc.stdout and not proc.stdout.startswith("#")
    assert "--parallel N" in proc.stdout and "--model-dir DIR" in proc.stdout  # issue 55: beside the positional forms
