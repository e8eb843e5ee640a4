"""tools/make_pairs.py: LFW's protocol on a folder-per-identity set, the same file for the same seed, read back by
`tfxc.evaluate --pairs`'s reader in both formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, tool_module

from tfxc.eval.verification import read_pairs



def people(root, count=8, lfw_names=False):
    for i in range(count):
        name = f"Person_{i}"
        os.makedirs(root / name)
        for n in range(1, 2 + i % 3):  # one, two or three images each
            (root / name / (f"{name}_{n:04d}.jpg" if lfw_names else f"shot{n}.png")).write_bytes(b"x")
    return str(root)


def test_folds_of_genuine_then_impostor_pairs_over_disjoint_identities(tmp_path):
    root = people(tmp_path / "faces")
    out = str(tmp_path / "pairs.csv")
    run = subprocess.run([sys.executable, os.path.join(REPO, "tools", "make_pairs.py"), "--images", root, "--out",
                          out, "--folds", "2", "--pairs", "3", "--seed", "5"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"identities": 8, "folds": 2, "genuine": 6, "impostor": 6, "format": "csv"}
    pairs, same, folds = read_pairs(out, root)
    assert same.tolist() == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3 and folds.tolist() == [0] * 6 + [1] * 6
    who = lambda path: os.path.basename(os.path.dirname(path))  # noqa: E731
    assert all((who(a) == who(b)) == s and a != b for (a, b), s in zip(pairs, same))
    assert len(set(pairs)) == 12 and all(os.path.exists(p) for pair in pairs for p in pair)
    in_fold = [{who(p) for pair, f in zip(pairs, folds) if f == k for p in pair} for k in (0, 1)]
    assert not in_fold[0] & in_fold[1]  # a fold's threshold is chosen on people it does not hold
    tool = tool_module("make_pairs")
    again = str(tmp_path / "again.csv")
    tool.write_pairs(root, again, folds=2, pairs=3, seed=5)
    assert open(again).read() == open(out).read()
    tool.write_pairs(root, again, folds=2, pairs=3, seed=6)
    assert open(again).read() != open(out).read()


def test_lfw_format_and_what_cannot_be_drawn(tmp_path):
    tool = tool_module("make_pairs")
    root = people(tmp_path / "lfw", lfw_names=True)
    tool.write_pairs(root, str(tmp_path / "pairs.txt"), folds=2, pairs=2, seed=0, fmt="lfw")
    tool.write_pairs(root, str(tmp_path / "pairs.csv"), folds=2, pairs=2, seed=0)
    lfw, csv = read_pairs(str(tmp_path / "pairs.txt"), root), read_pairs(str(tmp_path / "pairs.csv"), root)
    assert lfw[0] == csv[0] and lfw[1].tolist() == csv[1].tolist() and lfw[2].tolist() == csv[2].tolist()
    with pytest.raises(SystemExit, match="8 identities cannot fill 5 folds"):
        tool.write_pairs(root, str(tmp_path / "x.csv"), folds=5, pairs=1)
    with pytest.raises(SystemExit, match="fewer than 9"):
        tool.write_pairs(root, str(tmp_path / "x.csv"), folds=2, pairs=9)
    with pytest.raises(SystemExit, match="not named as LFW's images are"):
        tool.write_pairs(people(tmp_path / "other"), str(tmp_path / "x.txt"), folds=2, pairs=2, fmt="lfw")
